"""Fluid network simulator of a DS-Sync schedule (part of the independent evaluator).

Replays the timing semantics of :mod:`distplan.models.dssync`: workers compute,
groups wait only for their own members, every group's averaging is a sequence of
phases of fluid flows (rings and chains) that share directed links max-min
fairly (progressive filling with crossing counts, NIC caps, residual capacity
after background traffic), re-filled whenever a flow starts or ends or a
background trace steps. Imports only ``models/`` and numpy; shares no code with
the solvers.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from ...models.dssync import DssyncPlan, DssyncProblem

__all__ = [
    "FlowSpec",
    "NetworkTrace",
    "Resources",
    "fair_rates",
    "group_phases",
    "simulate_network",
]

_EPS = 1e-12


@dataclass(frozen=True)
class FlowSpec:
    """One fluid flow of a group's averaging phase.

    ``usage`` counts how often the flow's hops cross every resource (index into
    the simulator's resource list); every hop moves ``bytes_per_hop`` bytes at
    the flow's rate after ``latency_s`` seconds; ``rate_cap`` is the smallest NIC
    rate of the hops' endpoints (bytes/s).
    """

    usage: np.ndarray
    bytes_per_hop: float
    latency_s: float
    rate_cap: float


@dataclass
class NetworkTrace:
    """What the fluid simulation measured.

    ``iteration_end_s[t]`` is when the last worker finished iteration ``t``
    (seconds); ``bytes_on_resource`` the bytes each resource carried;
    ``resource_names`` names them.
    """

    iteration_end_s: list[float]
    bytes_on_resource: np.ndarray
    resource_names: list[str]
    resource_capacity: np.ndarray
    rate_refills: int = 0
    overcommitted: list[str] = field(default_factory=list)


def fair_rates(usage: np.ndarray, residual: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Max-min fair rates by progressive filling (bytes/s).

    ``usage[f, r]`` = crossings of flow ``f`` over resource ``r``; ``residual[r]``
    the bytes/s free on ``r``; ``caps[f]`` each flow's own ceiling.
    """
    flows = usage.shape[0]
    rates = np.zeros(flows)
    active = np.ones(flows, dtype=bool)
    left = residual.astype(float).copy()
    scale = np.maximum(residual, 1.0)
    while active.any():
        load = usage[active].sum(axis=0)
        used = load > 0
        increment = float(np.min(caps[active] - rates[active]))
        if used.any():
            increment = min(increment, float(np.min(np.maximum(left[used], 0.0) / load[used])))
        if math.isinf(increment):
            rates[active] = math.inf
            break
        rates[active] += increment
        left -= increment * load
        saturated = used & (left <= 1e-12 * scale)
        frozen = active & (
            (caps - rates <= 1e-12 * np.maximum(rates, 1.0)) | (usage[:, saturated] > 0).any(axis=1)
        )
        if not frozen.any():  # pragma: no cover - numerical safety
            break
        active &= ~frozen
    return rates


class Resources:
    """Directed links and capacitated media of the network, numbered."""

    def __init__(self, problem: DssyncProblem) -> None:
        net = problem.network
        self.names = [f"link:{d.source}->{d.target}" for d in net.directed_links]
        capacity = [d.bandwidth_bytes_per_s for d in net.directed_links]
        self.index = {f"link:{d.index}": d.index for d in net.directed_links}
        for node in net.nodes:
            if node.capacity_bytes_per_s is not None:
                self.index[f"node:{node.name}"] = len(self.names)
                self.names.append(f"node:{node.name}")
                capacity.append(node.capacity_bytes_per_s)
        self.capacity = np.array(capacity, dtype=float)
        link_of = {(d.source, d.target): d.index for d in net.directed_links}
        self.loads = [(link_of[(b.source, b.target)], b) for b in problem.background]
        self.trace_steps = sorted(
            {b.trace_step_s for b in problem.background if b.trace_step_s is not None}
        )

    def residual(self, time_s: float) -> np.ndarray:
        free = self.capacity.copy()
        for link, load in self.loads:
            free[link] -= load.at(time_s)
        return free

    def next_trace_change(self, time_s: float) -> float:
        best = math.inf
        for step in self.trace_steps:
            best = min(best, (math.floor(time_s / step + 1e-9) + 1) * step)
        return best


def _hop_usage(problem: DssyncProblem, res: Resources, hops: list[tuple[int, int]]) -> np.ndarray:
    usage = np.zeros(len(res.names))
    for a, b in hops:
        source, target = problem.workers[a].host, problem.workers[b].host
        path = problem.network.route(source, target)
        assert path is not None  # the problem validator proved every host pair reachable
        for resource in path.resources:
            usage[res.index[resource]] += 1
    return usage


def _flow(
    problem: DssyncProblem, res: Resources, hops: list[tuple[int, int]], nbytes: float, steps: int
) -> FlowSpec:
    ends = {w for hop in hops for w in hop}
    cap = min(problem.workers[w].nic_bytes_per_s for w in ends)
    return FlowSpec(_hop_usage(problem, res, hops), nbytes, steps * problem.alpha_s, cap)


def _ring(problem: DssyncProblem, res: Resources, members: list[int]) -> FlowSpec | None:
    k = len(members)
    if k < 2:
        return None
    hops = [(members[i], members[(i + 1) % k]) for i in range(k)]
    return _flow(problem, res, hops, 2 * (k - 1) / k * problem.model_bytes, 2 * (k - 1))


def group_phases(
    problem: DssyncProblem, res: Resources, members: list[int], algorithm: str
) -> list[list[FlowSpec]]:
    """The phases of one group's averaging, each a list of concurrent flows (see model docs)."""
    if algorithm == "ring":
        ring = _ring(problem, res, members)
        return [[ring]] if ring else []
    by_rack: dict[str, list[int]] = {}
    for w in members:
        by_rack.setdefault(problem.workers[w].rack, []).append(w)
    reduce_flows, broadcast_flows = [], []
    for rack_members in by_rack.values():
        if len(rack_members) < 2:
            continue
        chain = list(zip(rack_members[1:], rack_members[:-1], strict=True))[::-1]
        steps = len(rack_members) - 1
        reduce_flows.append(_flow(problem, res, chain, problem.model_bytes, steps))
        back = [(b, a) for a, b in chain]
        broadcast_flows.append(_flow(problem, res, back, problem.model_bytes, steps))
    leaders = _ring(problem, res, [rack_members[0] for rack_members in by_rack.values()])
    phases = [reduce_flows, [leaders] if leaders else [], broadcast_flows]
    return [phase for phase in phases if phase]


@dataclass(eq=False)
class _ActiveFlow:
    spec: FlowSpec
    group: tuple[int, int]
    start_s: float
    remaining: float


def simulate_network(problem: DssyncProblem, plan: DssyncPlan, iterations: int) -> NetworkTrace:
    """Simulate ``iterations`` iterations of ``plan`` (a valid plan) on ``problem``'s network."""
    res = Resources(problem)
    index = problem.worker_index
    n = len(problem.workers)
    members_of: list[list[list[int]]] = []
    group_of: list[np.ndarray] = []
    for partition in plan.partitions[:iterations]:
        groups, owner = [], np.zeros(n, dtype=int)
        for g, group in enumerate(partition.groups):
            members = [index[m] for m in group.members]
            owner[members] = g
            groups.append(members)
        members_of.append(groups)
        group_of.append(owner)
    period = len(plan.partitions)
    phases_of: dict[tuple[int, int], list[list[FlowSpec]]] = {}

    def phases(p: int, g: int) -> list[list[FlowSpec]]:
        """The group's phases, built on first use (a long period is rarely replayed whole)."""
        if (p, g) not in phases_of:
            algorithm = plan.partitions[p].groups[g].algorithm
            phases_of[p, g] = group_phases(problem, res, members_of[p][g], algorithm)
        return phases_of[p, g]

    iteration_end = [0.0] * iterations
    bytes_moved = np.zeros(len(res.names))
    arrived: dict[tuple[int, int], list[float]] = {}
    events: list[tuple[float, int, int, int]] = []  # (time, order, worker, iteration)
    order = 0
    for w in range(n):
        heapq.heappush(events, (problem.workers[w].compute_seconds(0), order, w, 0))
        order += 1
    phase_of: dict[tuple[int, int], int] = {}
    running: list[_ActiveFlow] = []
    in_flight: dict[tuple[int, int], int] = {}
    rates = np.zeros(0)
    dirty = True
    refills = 0
    now = 0.0
    done_workers = 0

    def finish_group(key: tuple[int, int], at: float) -> None:
        nonlocal order, done_workers
        t, g = key
        for w in members_of[t % period][g]:
            iteration_end[t] = max(iteration_end[t], at)
            if t + 1 < iterations:
                heapq.heappush(
                    events, (at + problem.workers[w].compute_seconds(t + 1), order, w, t + 1)
                )
                order += 1
            else:
                done_workers += 1

    def start_phase(key: tuple[int, int], at: float) -> None:
        nonlocal dirty
        t, g = key
        steps = phases(t % period, g)
        phase = phase_of.get(key, 0)
        if phase >= len(steps):
            phase_of.pop(key, None)
            finish_group(key, at)
            return
        phase_of[key] = phase
        in_flight[key] = len(steps[phase])
        for spec in steps[phase]:
            running.append(_ActiveFlow(spec, key, at + spec.latency_s, spec.bytes_per_hop))
        dirty = True

    while events or running:
        if dirty:
            moving = [f for f in running if f.start_s <= now + _EPS]
            rates = np.zeros(len(running))
            if moving:
                usage = np.array([f.spec.usage for f in moving])
                caps = np.array([f.spec.rate_cap for f in moving])
                crossed = usage.any(axis=0)
                moving_rates = fair_rates(usage[:, crossed], res.residual(now)[crossed], caps)
                k = 0
                for i, f in enumerate(running):
                    if f.start_s <= now + _EPS:
                        rates[i] = moving_rates[k]
                        k += 1
            refills += 1
            dirty = False
        horizon = events[0][0] if events else math.inf
        for i, f in enumerate(running):
            if f.start_s > now + _EPS:
                horizon = min(horizon, f.start_s)
            elif rates[i] > 0:
                horizon = min(horizon, now + f.remaining / rates[i])
        if running:
            horizon = min(horizon, res.next_trace_change(now))
            if math.isinf(horizon):  # pragma: no cover - a flow with no capacity at all
                raise RuntimeError("fluid simulation stalled: a flow has no capacity")
        elapsed = horizon - now
        for i, f in enumerate(running):
            if f.start_s <= now + _EPS and rates[i] > 0:
                moved = min(f.remaining, rates[i] * elapsed)
                f.remaining -= moved
                bytes_moved += moved * f.spec.usage
        if running and res.trace_steps:
            dirty = True
        now = horizon
        finished = [
            f
            for i, f in enumerate(running)
            if f.start_s <= now + _EPS and f.remaining <= 1e-9 * max(1.0, f.spec.bytes_per_hop)
        ]
        if any(f.start_s <= now + _EPS and rates[i] == 0 for i, f in enumerate(running)):
            dirty = True  # a flow's latency wait just ended
        if finished:
            gone = {id(f) for f in finished}
            running = [f for f in running if id(f) not in gone]
            dirty = True
            for f in finished:
                in_flight[f.group] -= 1
            for key in dict.fromkeys(f.group for f in finished):
                if in_flight[key] == 0:
                    del in_flight[key]
                    phase_of[key] += 1
                    start_phase(key, now)
        while events and events[0][0] <= now + _EPS:
            at, _, w, t = heapq.heappop(events)
            key = (t, int(group_of[t % period][w]))
            waiting = arrived.setdefault(key, [])
            waiting.append(at)
            if len(waiting) == len(members_of[t % period][key[1]]):
                del arrived[key]
                start_phase(key, max(waiting))
    return NetworkTrace(iteration_end, bytes_moved, res.names, res.capacity, refills)
