"""Independent discrete-event simulator for pipeline plans.

Replays one training iteration of a :class:`~distplan.models.pipeline.PipelinePlan`
exactly as the module docstring of :mod:`distplan.models.pipeline` defines it, and
shares no code with the pipeline solvers: it is the referee their plans are
scored by.

Details the contract leaves open, decided here
----------------------------------------------
* Structural errors (wrong lengths, indices out of range, empty stages or GPU
  sets, a GPU in two stages, an edge into an earlier stage, an order that misses
  or repeats tasks) make the plan unreplayable: ``objective`` is None. A schedule
  the problem does not allow, forbidden replication and memory overflow are
  violations too, but the plan is still replayed and ``objective`` is its time.
  Messages of one kind beyond 20 are summarised as ``"... and N more"``.
* The order is not checked against the family named by ``schedule``; any order
  that lists every task once is replayed. A ``B`` listed before its own ``F``
  shows up as a deadlock.
* Every micro-batch of every stage-pair edge is one transfer per overlapping
  (sender replica, receiver replica) pair; replicas whose share intervals only
  touch exchange nothing. Intervals are computed in exact rational arithmetic.
* A stage pair with edges but zero bytes still orders the tasks: its transfers
  cost the route latency and occupy no link. Same-GPU transfers cost nothing
  (they cannot occur in a valid plan, as a GPU serves one stage).
* Link queues are first-come first-served by ready time; transfers ready at the
  same instant are served by (micro-batch, F before B, sender stage and replica,
  receiver stage and replica), pipeline transfers before all-reduce transfers,
  and all-reduce transfers by (stage, ring position). A transfer reserves every
  directed link of its route from ``max(ready, latest release of those links)``.
  A transfer that a chain of zero-duration work makes ready at the same instant
  as one already reserved queues behind it.
* A task starts at ``max(its GPU is free, its last input has arrived)``; a ``B``
  needs its own ``F`` to have finished. The iteration time is the latest end of
  any task or all-reduce; ``compute_end_s`` the latest task end.
* Peak activation memory counts a micro-batch from its ``F`` up to and including
  its ``B`` (the peak over the order of the in-flight count).
* ``busy_fraction`` is the compute seconds of all used GPUs over
  ``iteration_s`` times the number of used GPUs (0 when the iteration takes 0 s).
* Routes: the widest bottleneck per GPU pair comes from a bottleneck
  Floyd-Warshall; the route is then the lexicographically smallest shortest path
  inside the subgraph of links at least that wide (greedy smallest next hop over
  BFS distances). Routes are cached per interconnect (keyed on its matrices).
* ``num_transfers`` counts every inter-GPU transfer of the iteration, including
  zero-byte ones and every all-reduce ring transfer. ``peak_memory_bytes`` is a
  list aligned with the cluster's GPUs (0 for unused ones).
* A deadlock message names, per stuck stage, the task its first stuck replica
  waits at and the stages (or its own forward) it still waits for.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from ...models.pipeline import Cluster, PipelinePlan, PipelineProblem
from ...models.result import Evaluation

__all__ = [
    "Route",
    "SimulationTrace",
    "TaskRecord",
    "TransferRecord",
    "evaluate_plan",
    "simulate",
    "widest_route",
]

_GB = 1e9
_MAX_MESSAGES = 20
_PHASES = ("F", "B")


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    """The route a transfer between two GPUs takes.

    Attributes
    ----------
    gpus:
        GPU indices from source to destination (both included).
    bandwidth_bytes_per_s:
        The bottleneck bandwidth of the route in bytes/s.
    latency_s:
        The sum of the route's link latencies in seconds.
    """

    gpus: tuple[int, ...]
    bandwidth_bytes_per_s: float
    latency_s: float


class _RouteTable:
    """Widest-path routes of one interconnect, computed lazily per GPU pair."""

    def __init__(
        self,
        bandwidth: tuple[tuple[float, ...], ...],
        latency: tuple[tuple[float, ...], ...] | None,
    ):
        self.size = len(bandwidth)
        self._bandwidth = bandwidth
        self._latency = latency
        widest = np.array(bandwidth, dtype=float)
        np.fill_diagonal(widest, np.inf)
        for k in range(self.size):  # bottleneck Floyd-Warshall
            widest = np.maximum(widest, np.minimum(widest[:, k : k + 1], widest[k : k + 1, :]))
        self._widest: list[list[float]] = widest.tolist()
        self._routes: dict[tuple[int, int], Route] = {}
        self._hops: dict[tuple[int, float], list[int]] = {}

    def _hops_to(self, dst: int, threshold: float) -> list[int]:
        """Hop counts to ``dst`` over links of bandwidth >= ``threshold`` (-1: unreachable)."""
        key = (dst, threshold)
        hops = self._hops.get(key)
        if hops is None:
            bandwidth, n = self._bandwidth, self.size
            hops = [-1] * n
            hops[dst] = 0
            frontier = [dst]
            while frontier:
                following = []
                for v in frontier:
                    for u in range(n):
                        if hops[u] < 0 and u != v and bandwidth[u][v] >= threshold:
                            hops[u] = hops[v] + 1
                            following.append(u)
                frontier = following
            self._hops[key] = hops
        return hops

    def route(self, src: int, dst: int) -> Route:
        """The widest route from ``src`` to ``dst`` (ties: fewest hops, then smallest sequence)."""
        route = self._routes.get((src, dst))
        if route is not None:
            return route
        if src == dst:
            route = Route((src,), float("inf"), 0.0)
        else:
            bottleneck = self._widest[src][dst]
            hops = self._hops_to(dst, bottleneck)
            path, current = [src], src
            # Among the shortest paths inside the widest subgraph, the greedy
            # smallest next hop gives the lexicographically smallest sequence.
            while current != dst:
                row = self._bandwidth[current]
                current = next(
                    v
                    for v in range(self.size)
                    if v != current and row[v] >= bottleneck and hops[v] == hops[current] - 1
                )
                path.append(current)
            latency = 0.0
            if self._latency is not None:
                latency = sum(self._latency[u][v] for u, v in zip(path, path[1:], strict=False))
            route = Route(tuple(path), bottleneck, latency)
        self._routes[(src, dst)] = route
        return route


@lru_cache(maxsize=32)
def _route_table(
    bandwidth: tuple[tuple[float, ...], ...], latency: tuple[tuple[float, ...], ...] | None
) -> _RouteTable:
    return _RouteTable(bandwidth, latency)


def _routes_of(cluster: Cluster) -> _RouteTable:
    latency = cluster.latency_s
    return _route_table(
        tuple(map(tuple, cluster.bandwidth_bytes_per_s)),
        None if latency is None else tuple(map(tuple, latency)),
    )


def widest_route(cluster: Cluster, src: int, dst: int) -> Route:
    """Return the route the simulator uses from GPU ``src`` to GPU ``dst``.

    Parameters
    ----------
    cluster:
        The interconnect.
    src, dst:
        GPU indices.

    Returns
    -------
    Route
        The widest path over direct links (bandwidth > 0); ties go to the fewest
        hops, then to the lexicographically smallest GPU sequence.

    Examples
    --------
    >>> from distplan.models.pipeline import GPU, Cluster
    >>> gpus = [GPU(name=f"g{i}", memory_bytes=1e9) for i in range(3)]
    >>> cluster = Cluster(gpus=gpus, bandwidth_bytes_per_s=[[0, 0, 5], [0, 0, 5], [5, 5, 0]])
    >>> widest_route(cluster, 0, 1).gpus
    (0, 2, 1)
    """
    return _routes_of(cluster).route(src, dst)


# ---------------------------------------------------------------------- structure


def _capped(messages: list[str], what: str) -> list[str]:
    if len(messages) <= _MAX_MESSAGES:
        return messages
    return messages[:_MAX_MESSAGES] + [f"... and {len(messages) - _MAX_MESSAGES} more {what}"]


def _stages_text(stages: list[int]) -> str:
    if len(stages) == 1:
        return str(stages[0])
    if len(stages) == 2:
        return f"{stages[0]} and {stages[1]}"
    return ", ".join(map(str, stages[:-1])) + f" and {stages[-1]}"


def _structural_violations(problem: PipelineProblem, plan: PipelinePlan) -> list[str]:
    """Everything that makes the plan impossible to replay."""
    out: list[str] = []
    layers, num_stages, num_gpus = problem.layers, plan.num_stages, problem.num_gpus
    if num_stages == 0:
        return ["the plan has no stages (gpus_of_stage is empty)"]
    stage_of_layer = plan.stage_of_layer
    if len(stage_of_layer) != len(layers):
        out.append(
            f"stage_of_layer has {len(stage_of_layer)} entries, the problem has {len(layers)} layers"
        )
    else:
        bad = [
            f"layer {layer} ({layers[layer].name}) is in stage {stage}, out of range ({num_stages} stages)"
            for layer, stage in enumerate(stage_of_layer)
            if not 0 <= stage < num_stages
        ]
        out += _capped(bad, "layers out of range")
        if not bad:
            used = set(stage_of_layer)
            out += _capped(
                [f"stage {s} is empty" for s in range(num_stages) if s not in used], "empty stages"
            )
            backward = [
                f"layer {u} ({layers[u].name}) is in stage {stage_of_layer[u]} "
                f"but feeds layer {v} ({layers[v].name}) in stage {stage_of_layer[v]}"
                for u, v in problem.edges
                if stage_of_layer[u] > stage_of_layer[v]
            ]
            out += _capped(backward, "edges into earlier stages")
    stages_of_gpu: dict[int, list[int]] = {}
    for stage, gpus in enumerate(plan.gpus_of_stage):
        if not gpus:
            out.append(f"stage {stage} has no GPUs")
        for gpu in gpus:
            if not 0 <= gpu < num_gpus:
                out.append(f"GPU index {gpu} out of range ({num_gpus} GPUs) in stage {stage}")
        for gpu in sorted(set(gpus)):
            if gpus.count(gpu) > 1:
                out.append(f"stage {stage} lists GPU {gpu} {gpus.count(gpu)} times")
            stages_of_gpu.setdefault(gpu, []).append(stage)
    for gpu, stages in sorted(stages_of_gpu.items()):
        if len(stages) > 1:
            out.append(f"GPU {gpu} is used by stages {_stages_text(stages)}")
    if len(plan.order_of_stage) != num_stages:
        out.append(
            f"order_of_stage has {len(plan.order_of_stage)} entries, the plan has {num_stages} stages"
        )
    k = problem.microbatches
    complete = {(m, phase) for m in range(k) for phase in _PHASES}
    for stage, order in enumerate(plan.order_of_stage[:num_stages]):
        tasks = [(m, phase) for m, phase in order]
        if len(tasks) == 2 * k and set(tasks) == complete:
            continue
        problems = [
            f"stage {stage} order has microbatch {m}, out of range ({k} micro-batches)"
            for m, _ in tasks
            if not 0 <= m < k
        ]
        counts: dict[tuple[int, str], int] = {}
        for task in tasks:
            counts[task] = counts.get(task, 0) + 1
        for (m, phase), count in counts.items():
            if count > 1 and 0 <= m < k:
                times = "twice" if count == 2 else f"{count} times"
                problems.append(f"stage {stage} order lists ({m}, {phase}) {times}")
        problems += [
            f"stage {stage} order misses (microbatch {m}, {p})"
            for m, p in sorted(complete - counts.keys())
        ]
        out += _capped(problems, f"problems in the order of stage {stage}")
    return out


def _policy_violations(problem: PipelineProblem, plan: PipelinePlan) -> list[str]:
    """Broken rules of the problem that still leave the plan replayable."""
    out: list[str] = []
    if plan.schedule not in problem.schedules:
        allowed = ", ".join(problem.schedules)
        out.append(f"schedule '{plan.schedule}' not allowed by the problem (allowed: {allowed})")
    if not problem.allow_replication:
        for stage, gpus in enumerate(plan.gpus_of_stage):
            if len(gpus) > 1:
                out.append(
                    f"stage {stage} has {len(gpus)} replicas but the problem forbids replication"
                )
    return out


# ---------------------------------------------------------------------- aggregates

# A transfer specification: (receiver worker, bytes, seconds, directed link ids,
# source GPU, destination GPU). No link ids: the transfer occupies no link.
_Spec = tuple[int, float, float, tuple[int, ...], int, int]


class _Prepared:
    """Per-plan aggregates, computed once in O(layers + edges + replica pairs)."""

    def __init__(self, problem: PipelineProblem, plan: PipelinePlan):
        layers, cluster = problem.layers, problem.cluster
        num_stages, k = plan.num_stages, problem.microbatches
        stage_of_layer = plan.stage_of_layer
        self.k, self.num_stages = k, num_stages
        forward_s, backward_s = [0.0] * num_stages, [0.0] * num_stages
        activation, parameter = [0.0] * num_stages, [0.0] * num_stages
        pair_bytes: dict[tuple[int, int], float] = {}
        successors = problem.successors
        for u, layer in enumerate(layers):
            s = stage_of_layer[u]
            forward_s[s] += layer.forward_s
            backward_s[s] += layer.backward_s
            activation[s] += layer.activation_bytes
            parameter[s] += layer.parameter_bytes
            fed: set[int] = set()
            for v in successors[u]:
                t = stage_of_layer[v]
                if t > s and t not in fed:
                    fed.add(t)
                    pair_bytes[(s, t)] = pair_bytes.get((s, t), 0.0) + layer.activation_bytes
        self.parameter_bytes = parameter

        # Workers: one per (stage, replica), numbered stage by stage.
        speeds = [gpu.speed for gpu in cluster.gpus]
        self.gpu: list[int] = []
        self.stage: list[int] = []
        self.share: list[float] = []
        self.workers_of_stage: list[list[int]] = []
        intervals: list[list[tuple[Fraction, Fraction]]] = []
        self.duration: list[tuple[float, float]] = []
        for s, gpus in enumerate(plan.gpus_of_stage):
            total = sum(speeds[g] for g in gpus)
            exact_total = sum(Fraction(speeds[g]) for g in gpus)
            cumulative, spans, workers = Fraction(0), [], []
            for g in gpus:
                start, cumulative = cumulative, cumulative + Fraction(speeds[g])
                spans.append((start / exact_total, cumulative / exact_total))
                share = speeds[g] / total
                workers.append(len(self.gpu))
                self.gpu.append(g)
                self.stage.append(s)
                self.share.append(share)
                self.duration.append(
                    (share * forward_s[s] / speeds[g], share * backward_s[s] / speeds[g])
                )
            intervals.append(spans)
            self.workers_of_stage.append(workers)
        num_workers = len(self.gpu)
        self.num_workers = num_workers

        routes = _routes_of(cluster)
        self.num_gpus = routes.size
        self.forward_out: list[list[_Spec]] = [[] for _ in range(num_workers)]
        self.backward_out: list[list[_Spec]] = [[] for _ in range(num_workers)]
        self.forward_in: list[list[int]] = [[] for _ in range(num_workers)]
        self.backward_in: list[list[int]] = [[] for _ in range(num_workers)]
        for (s, t), nbytes in sorted(pair_bytes.items()):
            for i, sender in enumerate(self.workers_of_stage[s]):
                a, b = intervals[s][i]
                for j, receiver in enumerate(self.workers_of_stage[t]):
                    c, d = intervals[t][j]
                    overlap = min(b, d) - max(a, c)
                    if overlap <= 0:
                        continue
                    share_bytes = float(overlap) * nbytes
                    self.forward_out[sender].append(
                        self._spec(routes, sender, receiver, share_bytes)
                    )
                    self.backward_out[receiver].append(
                        self._spec(routes, receiver, sender, share_bytes)
                    )
                    self.forward_in[receiver].append(sender)
                    self.backward_in[sender].append(receiver)

        # Ring all-reduce: replica r sends parameter_bytes / R to replica r + 1.
        self.allreduce: list[list[_Spec]] = []
        for s, workers in enumerate(self.workers_of_stage):
            r = len(workers)
            ring = (
                []
                if r < 2
                else [
                    self._spec(routes, workers[p], workers[(p + 1) % r], parameter[s] / r)
                    for p in range(r)
                ]
            )
            self.allreduce.append(ring)

        # Task order as local task ids m * 2 + phase, and the in-flight peak.
        self.order: list[list[int]] = []
        self.peak_in_flight: list[int] = []
        for order in plan.order_of_stage:
            ids, in_flight, peak = [], 0, 0
            for m, phase in order:
                if phase == "F":
                    ids.append(2 * m)
                    in_flight += 1
                    peak = max(peak, in_flight)
                else:
                    ids.append(2 * m + 1)
                    in_flight -= 1
            self.order.append(ids)
            self.peak_in_flight.append(peak)
        self.order_of_worker = [self.order[s] for s in self.stage]
        self.activation_bytes = activation

    def _spec(self, routes: _RouteTable, sender: int, receiver: int, nbytes: float) -> _Spec:
        src, dst = self.gpu[sender], self.gpu[receiver]
        if src == dst:
            return (receiver, nbytes, 0.0, (), src, dst)
        route = routes.route(src, dst)
        if nbytes <= 0.0:
            return (receiver, nbytes, route.latency_s, (), src, dst)
        n = routes.size
        links = tuple(u * n + v for u, v in zip(route.gpus, route.gpus[1:], strict=False))
        return (
            receiver,
            nbytes,
            route.latency_s + nbytes / route.bandwidth_bytes_per_s,
            links,
            src,
            dst,
        )


# ---------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class TaskRecord:
    """One compute task of the replayed iteration (times in seconds)."""

    stage: int
    gpu: int
    microbatch: int
    phase: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class TransferRecord:
    """One inter-GPU transfer (times in seconds, size in bytes).

    ``kind`` is ``"activation"``, ``"gradient"`` or ``"allreduce"``; ``index`` is
    the micro-batch, or the ring step for an all-reduce.
    """

    kind: str
    stage: int
    index: int
    src_gpu: int
    dst_gpu: int
    nbytes: float
    ready_s: float
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SimulationTrace:
    """The replayed iteration.

    ``iteration_s`` is None when the plan deadlocks; ``deadlock`` then says who
    waits for what. ``allreduce_start_s`` / ``allreduce_end_s`` are per stage
    (None for unreplicated stages).
    """

    iteration_s: float | None
    compute_end_s: float
    tasks: tuple[TaskRecord, ...]
    transfers: tuple[TransferRecord, ...]
    allreduce_start_s: tuple[float | None, ...]
    allreduce_end_s: tuple[float | None, ...]
    busy_s_of_worker: tuple[float, ...]
    deadlock: str | None


def _replay(prep: _Prepared, record: bool) -> SimulationTrace:
    """Run the event loop: link transfers in ready order, tasks as early as allowed."""
    k, num_workers, two_k = prep.k, prep.num_workers, 2 * prep.k
    stage_of, order_of, duration = prep.stage, prep.order_of_worker, prep.duration
    forward_out, backward_out = prep.forward_out, prep.backward_out
    missing = [0] * (num_workers * two_k)
    ready_at = [0.0] * (num_workers * two_k)
    end_at = [0.0] * (num_workers * two_k)
    for w in range(num_workers):
        base, f_in, b_in = w * two_k, len(prep.forward_in[w]), len(prep.backward_in[w]) + 1
        for m in range(k):
            missing[base + 2 * m] = f_in
            missing[base + 2 * m + 1] = b_in
    position = [0] * num_workers
    free_at = [0.0] * num_workers
    link_free = [0.0] * (prep.num_gpus * prep.num_gpus)
    heap: list[tuple[float, int, _Spec, int]] = []
    stack = list(range(num_workers))
    done_of_stage = [0] * prep.num_stages
    ring_count = [0] * prep.num_stages
    ring_step = [0] * prep.num_stages
    ring_last = [0.0] * prep.num_stages
    ring_start: list[float | None] = [None] * prep.num_stages
    ring_end: list[float | None] = [None] * prep.num_stages
    allreduce_key = two_k * num_workers * num_workers
    transfers: list[TransferRecord] = []
    start_at = [0.0] * (num_workers * two_k) if record else []

    def launch_ring(s: int, ready: float) -> None:
        base = allreduce_key + s * num_workers
        for p, spec in enumerate(prep.allreduce[s]):
            heapq.heappush(heap, (ready, base + p, spec, -1 - s))

    while True:
        while stack:
            w = stack.pop()
            pos, order = position[w], order_of[w]
            n_tasks = len(order)
            if pos == n_tasks:
                continue
            base, free = w * two_k, free_at[w]
            f_s, b_s = duration[w]
            while pos < n_tasks:
                task = order[pos]
                idx = base + task
                if missing[idx]:
                    break
                start = ready_at[idx] if ready_at[idx] > free else free
                if task & 1:
                    free = start + b_s
                    outs = backward_out[w]
                else:
                    free = start + f_s
                    outs = forward_out[w]
                    missing[idx + 1] -= 1  # the own backward needs this forward
                    if free > ready_at[idx + 1]:
                        ready_at[idx + 1] = free
                end_at[idx] = free
                if record:
                    start_at[idx] = start
                pos += 1
                key = task * num_workers + w
                for spec in outs:
                    target = spec[0]
                    heapq.heappush(
                        heap, (free, key * num_workers + target, spec, target * two_k + task)
                    )
            position[w], free_at[w] = pos, free
            if pos == n_tasks:
                s = stage_of[w]
                done_of_stage[s] += 1
                workers = prep.workers_of_stage[s]
                if done_of_stage[s] == len(workers) and len(workers) > 1:
                    ring_start[s] = ring_last[s] = max(free_at[v] for v in workers)
                    launch_ring(s, ring_last[s])
        if not heap:
            break
        ready, key, spec, target = heapq.heappop(heap)
        links, seconds = spec[3], spec[2]
        start = ready
        for link in links:
            if link_free[link] > start:
                start = link_free[link]
        end = start + seconds
        for link in links:
            link_free[link] = end
        if target >= 0:
            if end > ready_at[target]:
                ready_at[target] = end
            missing[target] -= 1
            if not missing[target]:
                stack.append(target // two_k)
            if record:
                kind = "gradient" if target & 1 else "activation"
                index, stage = (target % two_k) >> 1, stage_of[target // two_k]
                transfers.append(
                    TransferRecord(kind, stage, index, *spec[4:], spec[1], ready, start, end)
                )
            continue
        s = -1 - target
        if record:
            transfers.append(
                TransferRecord("allreduce", s, ring_step[s], *spec[4:], spec[1], ready, start, end)
            )
        if end > ring_last[s]:
            ring_last[s] = end
        ring_count[s] += 1
        replicas = len(prep.workers_of_stage[s])
        if ring_count[s] == replicas:  # the ring step is over
            ring_count[s] = 0
            ring_step[s] += 1
            if ring_step[s] == 2 * (replicas - 1):
                ring_end[s] = ring_last[s]
            else:
                launch_ring(s, ring_last[s])

    busy = tuple(k * (f + b) for f, b in duration)
    compute_end = max(free_at)
    stuck = [w for w in range(num_workers) if position[w] < len(order_of[w])]
    deadlock = _deadlock_message(prep, stuck, position) if stuck else None
    iteration = None if stuck else max([compute_end] + [t for t in ring_end if t is not None])
    tasks: tuple[TaskRecord, ...] = ()
    if record:
        tasks = tuple(
            TaskRecord(
                stage_of[w],
                prep.gpu[w],
                task >> 1,
                _PHASES[task & 1],
                start_at[w * two_k + task],
                end_at[w * two_k + task],
            )
            for w in range(num_workers)
            for task in order_of[w][: position[w]]
        )
    return SimulationTrace(
        iteration,
        compute_end,
        tasks,
        tuple(transfers),
        tuple(ring_start),
        tuple(ring_end),
        busy,
        deadlock,
    )


def _deadlock_message(prep: _Prepared, stuck: list[int], position: list[int]) -> str:
    """Name, per stuck stage, the task its first stuck replica waits at and what it lacks."""
    two_k = 2 * prep.k
    ran: set[int] = set()
    for w in range(prep.num_workers):
        ran.update(w * two_k + task for task in prep.order_of_worker[w][: position[w]])
    waits: list[str] = []
    seen_stages: set[int] = set()
    for w in stuck:
        s = prep.stage[w]
        if s in seen_stages:
            continue
        seen_stages.add(s)
        task = prep.order_of_worker[w][position[w]]
        m, phase = task >> 1, _PHASES[task & 1]
        needs: list[str] = []
        if phase == "B" and w * two_k + 2 * m not in ran:
            needs.append(f"its own forward (mb {m}, F), which comes later in its order")
        sources, what = (
            (prep.forward_in[w], "activations")
            if phase == "F"
            else (prep.backward_in[w], "gradients")
        )
        source_task = 2 * m + (phase == "B")
        late = sorted({prep.stage[v] for v in sources if v * two_k + source_task not in ran})
        if late:
            needs.append(f"{what} from stage{'s' if len(late) > 1 else ''} {_stages_text(late)}")
        gpu = prep.gpu[w]
        waits.append(f"stage {s} (mb {m}, {phase}) on GPU {gpu} needs " + " and ".join(needs))
    return "deadlock: no task can start; waiting: " + "; ".join(waits)


# ---------------------------------------------------------------------- entry points


def _memory_violations(problem: PipelineProblem, prep: _Prepared) -> tuple[list[str], list[float]]:
    gpus = problem.cluster.gpus
    peak = [0.0] * len(gpus)
    out: list[str] = []
    factor = 1.0 + problem.optimizer_state_factor
    for w, g in enumerate(prep.gpu):
        s = prep.stage[w]
        static = factor * prep.parameter_bytes[s]
        dynamic = prep.share[w] * prep.activation_bytes[s] * prep.peak_in_flight[s]
        peak[g] = static + dynamic
        if peak[g] > gpus[g].memory_bytes:
            out.append(
                f"GPU {g} ({gpus[g].name}) of stage {s} needs {_gb(peak[g])} at peak (weights+optimizer "
                f"{_gb(static)}, activations {_gb(dynamic)}), holds {_gb(gpus[g].memory_bytes)}"
            )
    return out, peak


def _gb(nbytes: float) -> str:
    gb = nbytes / _GB
    return f"{gb:.1f} GB" if gb >= 0.1 or gb == 0 else f"{gb:.3g} GB"


def simulate(
    problem: PipelineProblem, plan: PipelinePlan, *, record: bool = True
) -> SimulationTrace:
    """Replay one iteration of ``plan`` and return its trace.

    Parameters
    ----------
    problem:
        The pipeline problem.
    plan:
        A structurally valid plan for it.
    record:
        Whether to record every task and transfer (``tasks`` and ``transfers``
        stay empty otherwise, which is faster).

    Returns
    -------
    SimulationTrace
        Start and end of every task and transfer, in seconds.

    Raises
    ------
    ValueError
        If the plan cannot be replayed; the message lists the structural errors.
    """
    errors = _structural_violations(problem, plan)
    if errors:
        raise ValueError("the plan cannot be replayed: " + "; ".join(errors))
    return _replay(_Prepared(problem, plan), record)


def evaluate_plan(problem: PipelineProblem, plan: PipelinePlan) -> Evaluation:
    """Independently evaluate a pipeline plan by discrete-event simulation.

    Parameters
    ----------
    problem:
        The pipeline problem.
    plan:
        The plan to evaluate.

    Returns
    -------
    Evaluation
        ``objective`` is the simulated iteration time in seconds (None when the
        plan is structurally invalid or deadlocks); ``feasible`` means no
        violations. ``metrics`` holds ``iteration_s``, ``compute_end_s``,
        ``allreduce_s`` (per stage), ``peak_memory_bytes`` (per cluster GPU,
        0 for unused ones), ``busy_fraction``, ``num_transfers`` and
        ``transfer_bytes``.
    """
    errors = _structural_violations(problem, plan)
    if errors:
        return Evaluation(feasible=False, objective=None, violations=errors)
    violations = _policy_violations(problem, plan)
    prep = _Prepared(problem, plan)
    memory, peak = _memory_violations(problem, prep)
    violations += memory
    trace = _replay(prep, record=False)
    metrics: dict[str, Any] = {"peak_memory_bytes": peak}
    if trace.deadlock is not None:
        violations.append(trace.deadlock)
        return Evaluation(feasible=False, objective=None, violations=violations, metrics=metrics)
    iteration = trace.iteration_s
    assert iteration is not None
    k = prep.k
    per_microbatch = [len(out) for out in prep.forward_out]
    ring_transfers = sum(2 * (len(ring) - 1) * len(ring) for ring in prep.allreduce if ring)
    ring_bytes = sum(
        2 * (len(ring) - 1) * sum(spec[1] for spec in ring) for ring in prep.allreduce if ring
    )
    pipeline_bytes = (
        2 * k * sum(spec[1] for out in prep.forward_out for spec in out if spec[4] != spec[5])
    )
    busy = sum(trace.busy_s_of_worker)
    metrics.update(
        iteration_s=iteration,
        compute_end_s=trace.compute_end_s,
        allreduce_s=[
            0.0 if start is None or end is None else end - start
            for start, end in zip(trace.allreduce_start_s, trace.allreduce_end_s, strict=True)
        ],
        busy_fraction=busy / (iteration * prep.num_workers) if iteration > 0 else 0.0,
        num_transfers=2 * k * sum(per_microbatch) + ring_transfers,
        transfer_bytes=pipeline_bytes + ring_bytes,
    )
    return Evaluation(
        feasible=not violations, objective=iteration, violations=violations, metrics=metrics
    )
