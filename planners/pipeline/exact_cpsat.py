"""Exact pipeline planner: one CP-SAT model of partition, placement and task order.

The model is ours (a reconstruction in the spirit of Luo et al., INFOCOM 2022,
whose formulation we do not have); it follows the semantics of
:mod:`distplan.models.pipeline` and is built so that, unless the layers are
coarsened into blocks, it is a *relaxation* of the simulator: every plan maps to
a model solution that is no longer than the simulated iteration, so the model's
proven lower bound is a lower bound for the problem.

Model
-----
Decisions
    ``stage_of_block[b][s]`` (blocks are the segments of
    :func:`~distplan.planners.pipeline.linearize.candidate_cuts`), the GPU subset
    ``group[s][A]`` of every stage slot ``s < min(blocks, GPUs)`` (singletons
    only without replication), and per stage, micro-batch and phase an interval
    whose start is a decision.
Partition
    Every block has one stage, every block-graph edge ``(u, v)`` has
    ``stage(u) <= stage(v)`` (the DAG rule of the contract, so non-contiguous
    partitions of a DAG are allowed), the used stages are ``0..S-1`` and none
    is empty; a GPU serves at most one stage.
Stage times
    Exact for any speeds, over precomputed subsets: with group ``A`` chosen,
    ``duration >= floor(sum_b work_b / V_A)`` ticks (per-block sums in 1/1000
    tick), ``V_A`` the group's summed speed, ``work_b`` a block's speed-1 seconds.
Order
    One no-overlap machine per stage (all replicas run the same order);
    ``F(m, s)`` before ``B(m, s)``; ``F(m, s) -> F(m, t)`` and ``B(m, t) -> B(m, s)``
    with a transfer lag whenever a layer of ``s`` has a consumer in ``t``.
    Micro-batches enter stage 0 in index order (they are interchangeable).
Transfers
    ``lag >= latency + bytes * share / (replicas * bandwidth)`` on the widest
    path between the two GPU groups (exact for single-GPU stages; for replicas,
    a lower bound, see below). Link contention is ignored.
All-reduce
    ``2 (R - 1)`` ring steps of ``parameter_bytes / R``: exact for two replicas,
    for more a lower bound over every ring order.
Memory
    Per GPU ``g`` of stage ``s``: ``(1 + optimizer_state_factor) * parameters_s
    + cap_s * share_g * activations_s <= memory_g``, where ``cap_s`` bounds the
    stashed micro-batches, enforced by a cumulative constraint over the intervals
    ``[start F(m, s), end B(m, s))``.
Objective
    Makespan, at least every ``B`` end plus its stage's all-reduce.
Time unit
    A power of ten seconds with ``10**8 <= horizon / tick < 10**9`` (finer than
    1 us up to a 100 s horizon); the horizon is the warm start's simulated time
    (the optimum is no longer) or a serial schedule's. Every coefficient times
    its range stays below ``10**15``.
Search
    Partition and groups first, then tasks left-justified (``FIXED_SEARCH``);
    if that phase ends unproven, a second phase hinted with the best solution
    (or the warm start's) runs CP-SAT's own search. CP-SAT's inclusion presolve
    is off: in OR-Tools 9.15 it declared feasible models of this shape
    infeasible, or optimal above their optimum (``solvers.cpsat.SAFE_PARAMETERS``).
Size
    Replica groups are all GPU subsets while (stage slots x groups) stays
    within ``COMBINATIONS_PER_SECOND`` times the time limit, else subsets up
    to a smaller size (a restriction, reported as ``metrics["restricted"]``).

Why the bound is valid (uncoarsened model)
------------------------------------------
Take any plan and its simulated run. Map every task to the *earliest* start
among its stage's replicas, in ticks rounded down. Replicas run the same order
with equal durations, so the mapped intervals keep the order without overlap.
A receiver replica ``j`` of ``t`` waits for every sender replica overlapping
its share interval, one of which sends at least ``share_j / |A|`` of the bytes;
that transfer takes at least ``min latency + bytes * share_j / (|A| * max
bandwidth to j)`` even without contention, which is the lag in the model. The
in-flight count the model allows (overlapping stash intervals) is always a
prefix count of the order, hence at most the simulator's peak. All-reduce starts
after every replica finished, so after the mapped end. Durations, lags and
bytes are rounded down, capacities up. Route latencies are lower-bounded by the
shortest-latency path among all widest paths (the simulator picks one of them).
Hence the mapped solution is feasible and no longer than the simulation.

When the layers are coarsened into fewer blocks (``layers > max_blocks``) or,
with more than 8 GPUs, replica groups are restricted to pairs, the model is a
restriction: its bound is not reported (the framework adds the closed-form
bound) and ``metrics["coarsened"]`` / ``metrics["restricted"]`` say so.

Extraction: the stage, the GPU group (ring order minimising the all-reduce)
and each stage's order sorted by the model's start times (schedule ``list``),
plus the list scheduler's and the fixed schedules' orders for the same
partition; the simulator scores all of them and the best is returned, or the
warm start (the ``topo`` heuristic) when that simulates faster.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from ...models.pipeline import PipelinePlan, PipelineProblem
from ...models.result import Evaluation, Role, SolveStatus
from ...solvers.cpsat import CpSatOutcome, solve_cpsat
from ...solvers.options import InfeasibleProblem, SolveOptions, SolverOutput
from ...solvers.registry import get_solver, register_solver
from .finalize import best_of, simulate_candidates, to_output
from .linearize import candidate_cuts, linearize
from .list_schedule import list_schedule
from .schedules import make_plan
from .simulator import evaluate_plan

__all__ = ["solve_exact_cpsat"]

logger = logging.getLogger(__name__)

#: Default number of blocks the layers are coarsened to.
DEFAULT_MAX_BLOCKS = 12
#: Replica groups have at most this many GPUs (more would be a restriction).
MAX_FULL_SUBSET_GPUS = 8
#: (Stage slot, replica group) pairs the model may have per second of time limit.
COMBINATIONS_PER_SECOND = 75.0
#: Most (stage pair, sender group, receiver group) lag constraints before a cheaper relaxation.
PAIR_BUDGET = 12_000
#: Relative float noise tolerated when rounding real numbers to the model's integers.
_EPS = 1e-9
#: Largest magnitude a coefficient times its variable's range may reach. CP-SAT's
#: presolve proved feasible models infeasible with terms near 1e17 (OR-Tools 9.15),
#: so every scale below keeps terms under 1e15.
_INT_LIMIT = 10**15
#: Ticks in the horizon: between 10**8 and 10**9 (tick = a power of ten seconds).
_RESOLUTION_DIGITS = 8
#: Sub-ticks per tick in stage-time constraints (per-block rounding costs 1 / _SUBTICKS tick).
_SUBTICKS = 1000


def _down(value: float) -> int:
    """Round down; a value within float noise (``_EPS`` relative) of an integer is that integer."""
    nearest = round(value)
    if abs(value - nearest) <= _EPS * max(1.0, abs(value)):
        return int(nearest)
    return math.floor(value)


def _up(value: float) -> int:
    """Round up; a value within float noise (``_EPS`` relative) of an integer is that integer."""
    nearest = round(value)
    if abs(value - nearest) <= _EPS * max(1.0, abs(value)):
        return int(nearest)
    return math.ceil(value)


def _pow10_at_most(value: float) -> int:
    """The largest power of ten not above ``value`` (at least 1)."""
    return 10 ** max(0, math.floor(math.log10(value))) if value >= 1 else 1


# ------------------------------------------------------------------- instance data


@dataclass(frozen=True)
class Network:
    """Lower-bound view of the interconnect.

    ``bandwidth[i][j]``: widest-path bottleneck in bytes/s (the simulator's
    route has exactly this bottleneck); ``latency[i][j]``: the smallest route
    latency in seconds among all paths with that bottleneck (a lower bound on the
    simulator's route latency).
    """

    bandwidth: list[list[float]]
    latency: list[list[float]]


def lower_bound_network(problem: PipelineProblem) -> Network:
    """Widest bottleneck and the least latency among widest paths, for every GPU pair."""
    cluster = problem.cluster
    n = problem.num_gpus
    direct = cluster.bandwidth_bytes_per_s
    link_latency = cluster.latency_s or [[0.0] * n for _ in range(n)]
    width = [[math.inf if i == j else float(direct[i][j]) for j in range(n)] for i in range(n)]
    for k in range(n):  # bottleneck Floyd-Warshall (exact for the width)
        for i in range(n):
            for j in range(n):
                via = min(width[i][k], width[k][j])
                if via > width[i][j]:
                    width[i][j] = via
    latency = [[0.0] * n for _ in range(n)]
    for src in range(n):
        for dst in range(n):
            if src == dst:
                continue
            threshold = width[src][dst]
            best = [math.inf] * n  # Dijkstra over links at least `threshold` wide
            best[src] = 0.0
            done = [False] * n
            for _ in range(n):
                u = min((v for v in range(n) if not done[v]), key=lambda v: best[v])
                if best[u] == math.inf:
                    break
                done[u] = True
                for v in range(n):
                    if v != u and direct[u][v] > 0 and direct[u][v] >= threshold:
                        best[v] = min(best[v], best[u] + float(link_latency[u][v]))
            latency[src][dst] = best[dst]
    return Network(bandwidth=width, latency=latency)


@dataclass(frozen=True)
class Group:
    """A candidate replica group: its GPUs, summed speed and all-reduce bound terms.

    The all-reduce of ``P`` bytes takes at least ``2 (R - 1) * max(ring_latency_s,
    link_latency_s + P / R * link_s_per_byte)`` seconds for every ring order, and for
    two replicas at least ``2 * (latency + P / 2 / bandwidth)`` of each direction
    (``exact_links``).
    """

    mask: int
    gpus: tuple[int, ...]
    speed: float
    ring_latency_s: float = 0.0
    link_latency_s: float = 0.0
    link_s_per_byte: float = 0.0
    exact_links: tuple[tuple[float, float], ...] = ()

    @property
    def size(self) -> int:
        return len(self.gpus)


def _rings(gpus: tuple[int, ...]):
    """Every directed ring over ``gpus`` (first GPU fixed)."""
    first, rest = gpus[0], gpus[1:]
    for perm in itertools.permutations(rest):
        yield (first, *perm)


def _make_group(gpus: tuple[int, ...], speeds: list[float], net: Network) -> Group:
    mask = sum(1 << g for g in gpus)
    speed = sum(speeds[g] for g in gpus)
    if len(gpus) < 2:
        return Group(mask, gpus, speed)
    ring_latency = link_latency = link_cost = math.inf
    for ring in _rings(gpus):
        links = [(ring[p], ring[(p + 1) % len(ring)]) for p in range(len(ring))]
        lat = [net.latency[a][b] for a, b in links]
        cost = [1.0 / net.bandwidth[a][b] for a, b in links]
        ring_latency = min(ring_latency, max(lat))
        worst = max(range(len(links)), key=lambda k: (cost[k], lat[k]))
        link_latency = min(link_latency, lat[worst])
        link_cost = min(link_cost, cost[worst])
    exact: tuple[tuple[float, float], ...] = ()
    if len(gpus) == 2:
        a, b = gpus
        exact = (
            (net.latency[a][b], 1.0 / net.bandwidth[a][b]),
            (net.latency[b][a], 1.0 / net.bandwidth[b][a]),
        )
    return Group(mask, gpus, speed, ring_latency, link_latency, link_cost, exact)


def candidate_groups(
    problem: PipelineProblem, net: Network, max_combinations: float = math.inf
) -> tuple[list[Group], bool]:
    """Replica groups a stage may use, and whether that list restricts the problem.

    Singletons without replication. With replication, every subset of at most
    ``r`` GPUs, with ``r`` the largest size (at most ``MAX_FULL_SUBSET_GPUS``)
    whose (stage slot, group) pairs stay within ``max_combinations``; ``r < n``
    is a restriction (the model's bound is then not valid for the problem).
    """
    n = problem.num_gpus
    speeds = [g.speed for g in problem.cluster.gpus]
    largest = 1
    if problem.allow_replication:
        slots = min(len(problem.layers), n)
        count = 0
        for r in range(1, min(n, MAX_FULL_SUBSET_GPUS) + 1):
            count += math.comb(n, r)
            if r > 1 and slots * count > max_combinations:
                break
            largest = r
    groups = [
        _make_group(c, speeds, net)
        for r in range(1, largest + 1)
        for c in itertools.combinations(range(n), r)
    ]
    return groups, problem.allow_replication and largest < n


def transfer_lag_terms(
    senders: Group, receivers: Group, net: Network, speeds: list[float]
) -> tuple[float, float]:
    """``(latency_s, s_per_byte)`` with ``lag >= latency_s + bytes * s_per_byte`` from ``senders`` to ``receivers``.

    A receiver ``j`` waits for every sender whose share interval overlaps its own;
    one of them sends at least ``share_j / |senders|`` of the bytes.
    """
    latency = min(net.latency[i][j] for i in senders.gpus for j in receivers.gpus)
    per_byte = min(
        (speeds[j] / receivers.speed)
        / (senders.size * max(net.bandwidth[i][j] for i in senders.gpus))
        for j in receivers.gpus
    )
    return latency, per_byte


def one_sided_lag_terms(
    group: Group, sends: bool, problem: PipelineProblem, net: Network
) -> tuple[float, float] | None:
    """Lag terms valid for any partner group, knowing only one side's group (None: no partner possible).

    The partner's GPUs are outside ``group``; a receiver's share is at least its
    speed over the speed of all GPUs outside the sending group, and at most
    ``n - |group|`` replicas send to one receiver.
    """
    speeds = [g.speed for g in problem.cluster.gpus]
    others = [g for g in range(problem.num_gpus) if not group.mask >> g & 1]
    if not others:
        return None
    replicated = problem.allow_replication
    if sends:
        rest_speed = sum(speeds[j] for j in others)
        latency = min(net.latency[i][j] for i in group.gpus for j in others)
        per_byte = min(
            (speeds[j] / rest_speed if replicated else 1.0)
            / (group.size * max(net.bandwidth[i][j] for i in group.gpus))
            for j in others
        )
    else:
        senders = len(others) if replicated else 1
        latency = min(net.latency[i][j] for i in others for j in group.gpus)
        per_byte = min(
            (speeds[j] / group.speed) / (senders * max(net.bandwidth[i][j] for i in others))
            for j in group.gpus
        )
    return latency, per_byte


@dataclass(frozen=True)
class Blocks:
    """The layers merged into blocks (contiguous segments of a topological order)."""

    layers_of_block: tuple[tuple[int, ...], ...]
    block_of_layer: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]
    max_span: int

    @property
    def count(self) -> int:
        return len(self.layers_of_block)


def make_blocks(problem: PipelineProblem, max_blocks: int, num_slots_cap: int) -> Blocks:
    """Blocks from the candidate cuts, the block graph and the largest stage distance of an edge."""
    lin = linearize(problem)
    cuts = candidate_cuts(lin, max_blocks)
    layers_of_block = tuple(
        tuple(lin.order[p] for p in range(a, b)) for a, b in zip(cuts, cuts[1:], strict=False)
    )
    block_of_layer = [0] * len(problem.layers)
    for b, layers in enumerate(layers_of_block):
        for layer in layers:
            block_of_layer[layer] = b
    edges = sorted(
        {
            (block_of_layer[u], block_of_layer[v])
            for u, v in problem.edges
            if block_of_layer[u] != block_of_layer[v]
        }
    )
    count = len(layers_of_block)
    succ: list[set[int]] = [set() for _ in range(count)]
    for u, v in edges:
        succ[u].add(v)
    descendants: list[set[int]] = [set() for _ in range(count)]
    for b in reversed(range(count)):  # blocks are in topological order
        for v in succ[b]:
            descendants[b] |= {v} | descendants[v]
    ancestors: list[set[int]] = [
        {a for a in range(count) if b in descendants[a]} for b in range(count)
    ]
    # Stages strictly between an edge's ends need blocks that are neither ancestors
    # of its producer nor descendants of its consumer.
    span = 1
    for u, v in edges:
        between = count - 2 - len(ancestors[u]) - len(descendants[v])
        span = max(span, 1 + max(0, between))
    return Blocks(
        layers_of_block, tuple(block_of_layer), tuple(edges), min(span, max(1, num_slots_cap - 1))
    )


# ---------------------------------------------------------------------------- model


@dataclass
class Scales:
    """Integer units of the model: seconds per tick, bytes per memory and transfer unit."""

    tick_s: float
    horizon: int
    memory_unit: float
    memory_q: int
    transfer_unit: float
    lag_q: int


@dataclass
class CpModel:
    """The CP-SAT model and the variables needed to read a plan back."""

    model: cp_model.CpModel
    scales: Scales
    slots: int
    in_stage: list[list[cp_model.IntVar]]
    uses: list[list[tuple[Group, cp_model.IntVar]]]
    start_f: list[list[cp_model.IntVar]]
    start_b: list[list[cp_model.IntVar]]
    end_f: list[list[cp_model.IntVar]]
    end_b: list[list[cp_model.IntVar]]
    makespan: cp_model.IntVar
    lag_mode: str
    sizes: dict[str, int] = field(default_factory=dict)


def horizon_s(problem: PipelineProblem, net: Network, slots: int, span: int) -> float:
    """Seconds a serial schedule of any plan takes in the model (valid start-time horizon)."""
    k = problem.microbatches
    speeds = [g.speed for g in problem.cluster.gpus]
    work = k * sum(x.forward_s + x.backward_s for x in problem.layers) / min(speeds)
    n = problem.num_gpus
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    max_latency = max((net.latency[i][j] for i, j in pairs), default=0.0)
    min_bandwidth = min((net.bandwidth[i][j] for i, j in pairs), default=math.inf)
    activations = sum(x.activation_bytes for x in problem.layers)
    parameters = sum(x.parameter_bytes for x in problem.layers)
    stage_pairs = slots * min(span, slots)
    lags = 2 * k * stage_pairs * (max_latency + activations / min_bandwidth)
    allreduce = 2 * max(n - 1, 0) * (max_latency + parameters / min_bandwidth)
    return 1.01 * (work + lags + allreduce) + 1e-6


def build_model(
    problem: PipelineProblem,
    blocks: Blocks,
    groups: list[Group],
    net: Network,
    horizon_seconds: float,
) -> CpModel:
    """Build the CP-SAT model (see the module docstring).

    Every time lies in ``[0, horizon_seconds]``: a serial schedule of any plan
    fits (see :func:`horizon_s`), and a warm start proves that the optimum fits
    below its own simulated time.
    """
    m = cp_model.CpModel()
    k = problem.microbatches
    n = problem.num_gpus
    speeds = [g.speed for g in problem.cluster.gpus]
    layers = problem.layers
    num_blocks = blocks.count
    slots = min(num_blocks, n)
    span = blocks.max_span
    factor = 1.0 + problem.optimizer_state_factor

    # ---- scales
    # A power of ten with 10**8 <= horizon / tick < 10**9: finer than 1 us up to a
    # 100 s horizon; coarser beyond, where finer ticks would break CP-SAT (see _INT_LIMIT).
    tick = 10.0 ** (math.floor(math.log10(max(horizon_seconds, 1e-300))) - _RESOLUTION_DIGITS)
    horizon = _up(horizon_seconds / tick) + 1
    memory_top = max(
        max(g.memory_bytes for g in problem.cluster.gpus),
        factor * sum(x.parameter_bytes for x in layers),
        k * sum(x.activation_bytes for x in layers),
    )
    memory_unit = memory_top / 1e6
    memory_q = 10**4
    activation_top = max([x.activation_bytes for x in layers] + [1e-300])
    transfer_unit = activation_top * len(layers) / 1e6
    lag_q = _pow10_at_most(_INT_LIMIT / (10 * horizon))
    scales = Scales(tick, horizon, memory_unit, memory_q, transfer_unit, lag_q)

    def ticks_down(seconds: float) -> int:
        """Seconds as ticks rounded down, clipped to the horizon (any larger value is infeasible alike)."""
        return min(max(0, _down(seconds / tick)), horizon + 1)

    def add_lower_bound(
        target, constant_s: float, per_unit_s: float, amount, amount_top: int, literals: list
    ) -> None:
        """``target >= floor((constant_s + per_unit_s * amount) / tick)`` when ``literals`` hold.

        ``lag_q * floor(x) > lag_q * (x - 1)``, so the integer form below admits the
        rounded-down real value; clipping a coefficient only weakens the constraint.
        """
        constant = ticks_down(constant_s)
        coefficient = _down(lag_q * per_unit_s / tick) if amount_top > 0 else 0
        coefficient = min(coefficient, _INT_LIMIT // max(amount_top, 1))
        if coefficient <= 0:
            if constant > 0:
                m.Add(target >= constant).OnlyEnforceIf(literals)
            return
        m.Add(lag_q * target >= lag_q * constant + coefficient * amount - lag_q + 1).OnlyEnforceIf(
            literals
        )

    # ---- partition
    in_stage = [[m.NewBoolVar(f"x_b{b}_s{s}") for s in range(slots)] for b in range(num_blocks)]
    for b in range(num_blocks):
        m.AddExactlyOne(in_stage[b])
    stage_of = [m.NewIntVar(0, slots - 1, f"stage_b{b}") for b in range(num_blocks)]
    for b in range(num_blocks):
        m.Add(stage_of[b] == sum(s * in_stage[b][s] for s in range(slots)))
    for u, v in blocks.edges:
        m.Add(stage_of[u] <= stage_of[v])
    used = [m.NewBoolVar(f"used_s{s}") for s in range(slots)]
    for s in range(slots):
        for b in range(num_blocks):
            m.AddImplication(in_stage[b][s], used[s])
        m.AddBoolOr([in_stage[b][s] for b in range(num_blocks)]).OnlyEnforceIf(used[s])
        if s > 0:
            m.AddImplication(used[s], used[s - 1])
    m.Add(used[0] == 1)

    # ---- replica groups
    uses: list[list[tuple[Group, cp_model.IntVar]]] = []
    for s in range(slots):
        row = [(group, m.NewBoolVar(f"use_s{s}_g{group.mask}")) for group in groups]
        m.Add(sum(v for _, v in row) == used[s])
        uses.append(row)
    for g in range(n):
        m.AddAtMostOne([v for s in range(slots) for group, v in uses[s] if group.mask >> g & 1])

    # ---- per-stage sums in model units
    def block_sum(values: list[float]) -> list[float]:
        return [
            sum(values[layer] for layer in blocks.layers_of_block[b]) for b in range(num_blocks)
        ]

    fwd_block = block_sum([x.forward_s for x in layers])
    bwd_block = block_sum([x.backward_s for x in layers])
    par_block = block_sum([x.parameter_bytes for x in layers])
    act_block = block_sum([x.activation_bytes for x in layers])
    par_q = [max(0, _down(v / memory_unit)) for v in par_block]
    act_q = [max(0, _down(v / memory_unit)) for v in act_block]

    def stage_sum(name: str, per_block: list[int], s: int) -> cp_model.IntVar:
        var = m.NewIntVar(0, sum(per_block), f"{name}_s{s}")
        m.Add(var == sum(per_block[b] * in_stage[b][s] for b in range(num_blocks)))
        return var

    params = [stage_sum("params", par_q, s) for s in range(slots)]
    stash = [stage_sum("stash", act_q, s) for s in range(slots)]

    # ---- durations: floor(work / V_A) ticks, summed per block in sub-ticks
    dur_f = [m.NewIntVar(0, horizon, f"durf_s{s}") for s in range(slots)]
    dur_b = [m.NewIntVar(0, horizon, f"durb_s{s}") for s in range(slots)]
    for s in range(slots):
        for dur, per_block in ((dur_f[s], fwd_block), (dur_b[s], bwd_block)):
            m.Add(dur == 0).OnlyEnforceIf(used[s].Not())
            for group, var in uses[s]:
                sub = [
                    min(_down(w * _SUBTICKS / (group.speed * tick)), _SUBTICKS * (horizon + 1))
                    for w in per_block
                ]
                # _SUBTICKS * floor(x) > _SUBTICKS * x - _SUBTICKS >= sum(sub * in_stage) - _SUBTICKS
                m.Add(
                    _SUBTICKS * dur
                    >= sum(q * in_stage[b][s] for b, q in enumerate(sub)) - _SUBTICKS + 1
                ).OnlyEnforceIf(var)

    # ---- intervals
    start_f = [[m.NewIntVar(0, horizon, f"sf_m{i}_s{s}") for s in range(slots)] for i in range(k)]
    end_f = [[m.NewIntVar(0, horizon, f"ef_m{i}_s{s}") for s in range(slots)] for i in range(k)]
    start_b = [[m.NewIntVar(0, horizon, f"sb_m{i}_s{s}") for s in range(slots)] for i in range(k)]
    end_b = [[m.NewIntVar(0, horizon, f"eb_m{i}_s{s}") for s in range(slots)] for i in range(k)]
    for s in range(slots):
        machine = []
        for i in range(k):
            machine.append(m.NewIntervalVar(start_f[i][s], dur_f[s], end_f[i][s], f"F_m{i}_s{s}"))
            machine.append(m.NewIntervalVar(start_b[i][s], dur_b[s], end_b[i][s], f"B_m{i}_s{s}"))
            m.Add(start_b[i][s] >= end_f[i][s])
        m.AddNoOverlap(machine)
    for i in range(k - 1):
        m.Add(start_f[i][0] <= start_f[i + 1][0])  # micro-batches are interchangeable

    # ---- transfers between stages
    producers = [
        layer
        for layer in range(len(layers))
        if any(
            blocks.block_of_layer[c] != blocks.block_of_layer[layer]
            for c in problem.successors[layer]
        )
    ]
    stage_pairs = [(s, t) for s in range(slots) for t in range(s + 1, min(slots, s + span + 1))]
    consumer_in = {}
    for layer in producers:
        for t in range(1, slots):
            var = m.NewBoolVar(f"y_l{layer}_s{t}")
            for c in problem.successors[layer]:
                if blocks.block_of_layer[c] != blocks.block_of_layer[layer]:
                    m.AddImplication(in_stage[blocks.block_of_layer[c]][t], var)
            consumer_in[layer, t] = var
    transfer_q = {
        layer: max(0, _down(layers[layer].activation_bytes / transfer_unit)) for layer in producers
    }
    pair_count = sum(1 for a in groups for b in groups if not a.mask & b.mask) * len(stage_pairs)
    lag_mode = "pairs" if pair_count <= PAIR_BUDGET else "one-sided"
    for s, t in stage_pairs:
        feeds = m.NewBoolVar(f"feeds_s{s}_t{t}")
        terms = []
        for layer in producers:
            z = m.NewBoolVar(f"z_l{layer}_s{s}_t{t}")
            m.AddBoolOr(
                [in_stage[blocks.block_of_layer[layer]][s].Not(), consumer_in[layer, t].Not(), z]
            )
            m.AddImplication(z, feeds)
            terms.append((transfer_q[layer], z))
        top = sum(q for q, _ in terms)
        nbytes = m.NewIntVar(0, top, f"bytes_s{s}_t{t}")
        m.Add(nbytes >= sum(q * z for q, z in terms))
        lag_f = m.NewIntVar(0, horizon, f"lagf_s{s}_t{t}")
        lag_b = m.NewIntVar(0, horizon, f"lagb_s{s}_t{t}")
        if lag_mode == "pairs":
            for a, va in uses[s]:
                for b, vb in uses[t]:
                    if a.mask & b.mask:
                        continue
                    for lag, (latency, per_byte) in (
                        (lag_f, transfer_lag_terms(a, b, net, speeds)),
                        (lag_b, transfer_lag_terms(b, a, net, speeds)),
                    ):
                        add_lower_bound(
                            lag, latency, per_byte * transfer_unit, nbytes, top, [va, vb, feeds]
                        )
        else:
            for side in (s, t):
                for a, va in uses[side]:
                    for lag, sends in ((lag_f, side == s), (lag_b, side == t)):
                        terms = one_sided_lag_terms(a, sends, problem, net)
                        if terms is not None:
                            latency, per_byte = terms
                            add_lower_bound(
                                lag, latency, per_byte * transfer_unit, nbytes, top, [va, feeds]
                            )
        for i in range(k):
            m.Add(start_f[i][t] >= end_f[i][s] + lag_f).OnlyEnforceIf(feeds)
            m.Add(start_b[i][s] >= end_b[i][t] + lag_b).OnlyEnforceIf(feeds)

    # ---- memory: weights + cap * share * activations, cap >= stashed micro-batches
    alpha = _down(factor * memory_q)
    par_top, act_top = sum(par_q), sum(act_q)
    memory_rows = 0
    for s in range(slots):
        needs: list[tuple[int, list, int, int]] = []  # (c, literals, beta, rhs)
        for group, var in uses[s]:
            kept: list[tuple[float, float]] = []
            for g in sorted(
                group.gpus, key=lambda g: (-speeds[g], problem.cluster.gpus[g].memory_bytes)
            ):
                mem = problem.cluster.gpus[g].memory_bytes
                if any(v >= speeds[g] and mm <= mem for v, mm in kept):
                    continue  # dominated by a faster GPU with less memory
                kept.append((speeds[g], mem))
                share = speeds[g] / group.speed
                rhs = _up(mem / memory_unit * memory_q)
                for c in range(1, k + 1):
                    beta = _down(c * share * memory_q)
                    if alpha * par_top + beta * act_top <= rhs:
                        continue  # cannot bind, whatever the stage holds
                    needs.append((c, [var], beta, rhs))
        if not needs:
            continue
        cap = m.NewIntVar(1, k, f"cap_s{s}")
        at_least = {c: m.NewBoolVar(f"cap_s{s}_ge{c}") for c in range(2, k + 1)}
        for c in range(2, k + 1):
            m.Add(cap >= c).OnlyEnforceIf(at_least[c])
            m.Add(cap <= c - 1).OnlyEnforceIf(at_least[c].Not())
        for c, literals, beta, rhs in needs:
            extra = [at_least[c]] if c >= 2 else []
            m.Add(alpha * params[s] + beta * stash[s] <= rhs).OnlyEnforceIf(literals + extra)
            memory_rows += 1
        if any(c >= 2 for c, *_ in needs):
            held = []
            for i in range(k):
                size = m.NewIntVar(0, horizon, f"held_m{i}_s{s}")
                held.append(m.NewIntervalVar(start_f[i][s], size, end_b[i][s], f"stash_m{i}_s{s}"))
            m.AddCumulative(held, [1] * k, cap)

    # ---- all-reduce and makespan
    makespan = m.NewIntVar(0, horizon, "makespan")
    for s in range(slots):
        allreduce = m.NewIntVar(0, horizon, f"allreduce_s{s}")
        for group, var in uses[s]:
            if group.size < 2:
                continue
            steps = 2 * (group.size - 1)
            add_lower_bound(allreduce, steps * group.ring_latency_s, 0.0, params[s], 0, [var])
            links = ((group.link_latency_s, group.link_s_per_byte), *group.exact_links)
            for latency, s_per_byte in links:
                per_unit = steps * s_per_byte / group.size * memory_unit
                add_lower_bound(allreduce, steps * latency, per_unit, params[s], par_top, [var])
        for i in range(k):
            m.Add(makespan >= end_b[i][s] + allreduce)
        m.Add(makespan >= k * (dur_f[s] + dur_b[s]) + allreduce)
    m.Minimize(makespan)
    # Search: partition and groups first, then every task as early as possible
    # (left-justified schedules; without this a single worker improved the
    # makespan one tick at a time).
    choices = [v for row in in_stage for v in row] + [v for row in uses for _, v in row]
    m.AddDecisionStrategy(choices, cp_model.CHOOSE_FIRST, cp_model.SELECT_MAX_VALUE)
    starts = [v for rows in (start_f, start_b) for row in rows for v in row]
    m.AddDecisionStrategy(starts, cp_model.CHOOSE_LOWEST_MIN, cp_model.SELECT_MIN_VALUE)
    sizes = {
        "blocks": num_blocks,
        "stage_slots": slots,
        "groups": len(groups),
        "stage_pairs": len(stage_pairs),
        "memory_rows": memory_rows,
    }
    return CpModel(
        m, scales, slots, in_stage, uses, start_f, start_b, end_f, end_b, makespan, lag_mode, sizes
    )


# --------------------------------------------------------------------------- solving

#: CP-SAT parameters every solve of this model uses. OR-Tools 9.15's inclusion
#: presolve proved models of this shape infeasible, or optimal above their true
#: optimum, when they were not (found by comparing with presolve off on random
#: instances); with it disabled no such difference was seen.
def solve_model(model: cp_model.CpModel, options: SolveOptions, **parameters) -> CpSatOutcome:
    """Solve with the shared CP-SAT glue (which applies its ``SAFE_PARAMETERS``)."""
    return solve_cpsat(model, options, **parameters)


# ----------------------------------------------------------------------- warm start


def warm_start(
    problem: PipelineProblem, options: SolveOptions, seconds: float
) -> tuple[PipelinePlan, Evaluation] | None:
    """The ``topo`` heuristic's plan and its simulation, or None (not registered, no plan, infeasible)."""
    try:
        spec = get_solver("topo", "pipeline")
    except ValueError:
        return None
    sub = SolveOptions(time_limit=seconds, seed=options.seed, threads=options.threads, extra={})
    try:
        output = spec.function(problem, sub)
    except InfeasibleProblem:
        return None
    if output.plan is None:
        return None
    evaluation = evaluate_plan(problem, output.plan)
    if not evaluation.feasible or evaluation.objective is None:
        return None
    return output.plan, evaluation


def add_hints(
    cp: CpModel, plan: PipelinePlan, blocks: Blocks, problem: PipelineProblem, seconds: float
) -> bool:
    """Hint a complete model solution of the warm start's plan, when it maps onto the model.

    The plan maps when no block is split and every GPU group is a candidate. Its
    partition, groups and task orders are fixed in a copy of the model, whose
    (easy, pure timing) solve gives values for every variable; CP-SAT then starts
    from that solution. Micro-batches are relabelled by their order at stage 0.
    """
    stage_of_block = []
    for layers in blocks.layers_of_block:
        stages = {plan.stage_of_layer[layer] for layer in layers}
        if len(stages) != 1:
            return False  # the plan splits a block
        stage_of_block.append(stages.pop())
    if plan.num_stages > cp.slots:
        return False
    masks = [sum(1 << g for g in gpus) for gpus in plan.gpus_of_stage]
    chosen = []
    for s, mask in enumerate(masks):
        var = next((var for group, var in cp.uses[s] if group.mask == mask), None)
        if var is None:
            return False  # a group the model does not offer
        chosen.append(var)
    fixed = cp.model.Clone()
    fixed.ClearHints()

    def same(var: cp_model.IntVar) -> cp_model.IntVar:
        return fixed.GetIntVarFromProtoIndex(var.Index())

    for b, stage in enumerate(stage_of_block):
        fixed.Add(same(cp.in_stage[b][stage]) == 1)
    for var in chosen:
        fixed.Add(same(var) == 1)
    for s in range(len(masks), cp.slots):
        for _, var in cp.uses[s]:
            fixed.Add(same(var) == 0)
    entry = [i for i, phase in plan.order_of_stage[0] if phase == "F"]
    label = {original: i for i, original in enumerate(entry)}
    for s, order in enumerate(plan.order_of_stage):
        starts = [(cp.start_f if ph == "F" else cp.start_b)[label[i]][s] for i, ph in order]
        ends = [(cp.end_f if ph == "F" else cp.end_b)[label[i]][s] for i, ph in order]
        for a in range(len(order) - 1):
            fixed.Add(same(starts[a + 1]) >= same(ends[a]))
    outcome = solve_model(fixed, SolveOptions(time_limit=max(seconds, 0.01), threads=1))
    if not outcome.has_solution:
        return False
    values = outcome.solver.ResponseProto().solution
    proto = cp.model.Proto()
    for index in range(len(proto.variables)):
        cp.model.AddHint(cp.model.GetIntVarFromProtoIndex(index), values[index])
    return True


# ----------------------------------------------------------------------- extraction


def ring_order(gpus: list[int], parameter_bytes: float, net: Network) -> list[int]:
    """The ring order of ``gpus`` with the shortest contention-free all-reduce (sorted for two or fewer)."""
    gpus = sorted(gpus)
    if len(gpus) <= 2:
        return gpus
    share = parameter_bytes / len(gpus)

    def step(ring: tuple[int, ...]) -> float:
        return max(
            net.latency[a][b] + share / net.bandwidth[a][b]
            for a, b in zip(ring, ring[1:] + ring[:1], strict=True)
        )

    return list(min(_rings(tuple(gpus)), key=step))


def extract_plan(
    cp: CpModel, solver: cp_model.CpSolver, blocks: Blocks, problem: PipelineProblem, net: Network
):
    """Read ``(stage_of_layer, gpus_of_stage, order_of_stage)`` off a solution."""
    stage_of_block = [
        next(s for s in range(cp.slots) if solver.BooleanValue(cp.in_stage[b][s]))
        for b in range(blocks.count)
    ]
    num_stages = max(stage_of_block) + 1
    stage_of_layer = [0] * len(problem.layers)
    for b, layers in enumerate(blocks.layers_of_block):
        for layer in layers:
            stage_of_layer[layer] = stage_of_block[b]
    parameters = [0.0] * num_stages
    for layer, stage in enumerate(stage_of_layer):
        parameters[stage] += problem.layers[layer].parameter_bytes
    gpus_of_stage = []
    for s in range(num_stages):
        group = next(group for group, var in cp.uses[s] if solver.BooleanValue(var))
        gpus_of_stage.append(ring_order(list(group.gpus), parameters[s], net))
    orders = []
    for s in range(num_stages):
        tasks = []
        for i in range(problem.microbatches):
            tasks.append((solver.Value(cp.start_f[i][s]), solver.Value(cp.end_f[i][s]), 0, i))
            tasks.append((solver.Value(cp.start_b[i][s]), solver.Value(cp.end_b[i][s]), 1, i))
        tasks.sort()
        orders.append([(i, "F" if phase == 0 else "B") for _, _, phase, i in tasks])
    return stage_of_layer, gpus_of_stage, orders


def best_replica_order(
    problem: PipelineProblem,
    stage_of_layer: list[int],
    gpus_of_stage: list[list[int]],
    orders: list[list[tuple[int, str]]],
    limit: int = 24,
) -> list[list[int]]:
    """The order of GPUs inside replicated stages (it lays out the share intervals) that simulates fastest.

    Tries the given order first, then other permutations of the replicated
    stages' GPUs, at most ``limit`` variants in all, with the model's task order.
    """
    replicated = [s for s, gpus in enumerate(gpus_of_stage) if len(gpus) > 1]
    if not replicated:
        return gpus_of_stage
    per_stage = [itertools.permutations(gpus_of_stage[s]) for s in replicated]
    best, best_time = gpus_of_stage, math.inf
    for combo in itertools.islice(itertools.product(*per_stage), limit):
        variant = [list(g) for g in gpus_of_stage]
        for s, gpus in zip(replicated, combo, strict=True):
            variant[s] = list(gpus)
        plan = make_plan(stage_of_layer, variant, "list", problem.microbatches, orders)
        evaluation = evaluate_plan(problem, plan)
        if evaluation.objective is not None and evaluation.objective < best_time:
            best, best_time = variant, evaluation.objective
    return best


# ---------------------------------------------------------------------------- solver


@register_solver(
    "cpsat",
    kind="pipeline",
    role=Role.EXACT,
    needs=("ortools",),
    description="CP-SAT model of partition, replica groups and per-stage task order; proven bound when uncoarsened",
    extra_options={
        "max_blocks": f"layers are merged into at most this many blocks (default {DEFAULT_MAX_BLOCKS}); "
        "with more layers the model is a restriction and reports no bound of its own",
        "warm_start": "start from the 'topo' heuristic's plan (default true)",
    },
)
def solve_exact_cpsat(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """Solve the pipeline problem with one CP-SAT model (see the module docstring).

    Parameters
    ----------
    problem
        The pipeline problem.
    options
        ``time_limit`` (seconds), ``seed``, ``threads``; extra ``max_blocks`` (int)
        and ``warm_start`` (bool).

    Returns
    -------
    SolverOutput
        The best plan by simulated iteration time (seconds) of the CP-SAT
        solution and the warm start, the CP-SAT lower bound when the model is a
        relaxation (None when coarsened), status ``feasible`` after a proof,
        ``time_limit`` otherwise, ``no_solution`` without a plan.

    Raises
    ------
    InfeasibleProblem
        When the uncoarsened model is proven infeasible (no plan fits memory).
    ValueError
        When ``max_blocks`` is not a positive integer.
    """
    max_blocks = options.option("max_blocks", DEFAULT_MAX_BLOCKS)
    if isinstance(max_blocks, bool) or not isinstance(max_blocks, int) or max_blocks < 1:
        raise ValueError(f"max_blocks: must be a positive integer, got {max_blocks!r}")
    use_warm_start = bool(options.option("warm_start", True))
    metrics: dict = {}

    net = lower_bound_network(problem)
    # Model building costs about 2 ms per (stage slot, group): keep it near 15% of the time.
    groups, restricted = candidate_groups(
        problem, net, COMBINATIONS_PER_SECOND * options.remaining()
    )
    blocks = make_blocks(problem, max_blocks, problem.num_gpus)
    coarsened = blocks.count < len(problem.layers)
    bound_valid = not coarsened and not restricted
    metrics.update(coarsened=coarsened, restricted=restricted, num_blocks=blocks.count)

    warm = None
    if use_warm_start:
        remaining = options.remaining()
        seconds = 0.2 * remaining if math.isfinite(remaining) else 10.0
        started = time.monotonic()
        warm = warm_start(problem, options, seconds)
        metrics["warm_start_s"] = time.monotonic() - started
    metrics["warm_start_objective"] = None if warm is None else warm[1].objective

    slots = min(blocks.count, problem.num_gpus)
    crude = horizon_s(problem, net, slots, blocks.max_span)
    horizon_seconds = crude if warm is None else min(crude, warm[1].objective)
    started = time.monotonic()
    cp = build_model(problem, blocks, groups, net, max(horizon_seconds, 1e-12))
    metrics.update(
        build_s=time.monotonic() - started,
        tick_s=cp.scales.tick_s,
        lag_mode=cp.lag_mode,
        **cp.sizes,
    )

    outcome, bound_ticks = run_cpsat(cp, warm, blocks, problem, options, metrics)
    cp_status = SolveStatus.NO_SOLUTION if outcome is None else outcome.status
    bound = None
    if bound_valid and bound_ticks is not None and cp_status != SolveStatus.INFEASIBLE:
        bound = bound_ticks * cp.scales.tick_s
    own: list[tuple[PipelinePlan, Evaluation]] = []
    scheduled: list[tuple[PipelinePlan, Evaluation]] = []
    if outcome is not None and outcome.has_solution:
        stage_of_layer, gpus_of_stage, orders = extract_plan(
            cp, outcome.solver, blocks, problem, net
        )
        gpus_of_stage = best_replica_order(problem, stage_of_layer, gpus_of_stage, orders)
        own = simulate_candidates(
            problem, stage_of_layer, gpus_of_stage, list_scheduler=lambda *_: orders
        )
        if "list" in problem.schedules:
            scheduled = simulate_candidates(
                problem, stage_of_layer, gpus_of_stage, ["list"], list_schedule
            )
    metrics["cp_status"] = metrics.get("cp_status", "not_run")
    if cp_status == SolveStatus.INFEASIBLE:
        if warm is None and bound_valid:
            raise InfeasibleProblem(
                "CP-SAT proved that no partition, placement and order fits the GPUs' memory"
            )
        if warm is not None and bound_valid:
            logger.error(
                "CP-SAT found its relaxation infeasible although the warm start is a feasible plan"
            )
    candidates = own + scheduled + ([warm] if warm is not None else [])
    best = best_of(candidates)
    if best is not None:
        plan = best[0]
        from_list_scheduler = any(plan is p for p, _ in scheduled)
        from_cp = from_list_scheduler or any(plan is p for p, _ in own)
        metrics["incumbent_source"] = "cpsat" if from_cp else "warm_start"
        metrics["order_source"] = "list_schedule" if from_list_scheduler else plan.schedule
        if from_cp and not from_list_scheduler and plan.schedule == "list":
            metrics["order_source"] = "cpsat"
    proven = cp_status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE)
    status = SolveStatus.FEASIBLE if proven else SolveStatus.TIME_LIMIT
    return to_output(candidates, metrics, bound=bound, status=status)


def run_cpsat(
    cp: CpModel,
    warm: tuple[PipelinePlan, Evaluation] | None,
    blocks: Blocks,
    problem: PipelineProblem,
    options: SolveOptions,
    metrics: dict,
):
    """Solve the model in up to two phases; return the outcome with a solution and the best bound (ticks).

    Phase 1 follows the model's decision strategy (``FIXED_SEARCH``) without
    hints for 30% of the budget when it is finite: small models are proven
    there (hints made CP-SAT's single-worker search slower). If it stops
    unproven, phase 2 starts from a complete hinted solution (phase 1's, else
    the warm start's) for the rest of the budget with CP-SAT's own branching
    and the stronger LP relaxation (``linearization_level=2``).
    """
    remaining = options.remaining()
    finite = math.isfinite(remaining)
    budget = remaining - (min(1.0, 0.1 * remaining) + 0.05) if finite else math.inf
    if budget <= 0.01:
        metrics["cp_status"] = "not_run"
        return None, None
    started = time.monotonic()
    first_budget = 0.3 * budget if finite else math.inf
    phase1 = solve_model(
        cp.model,
        SolveOptions(time_limit=first_budget, seed=options.seed, threads=options.threads),
        search_branching=cp_model.FIXED_SEARCH,
    )
    outcome, bound = phase1, phase1.bound
    metrics["cp_phases"] = 1
    done = phase1.status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE)
    left = budget - (time.monotonic() - started)
    if not done and left > 0.05:
        hinted = False
        if phase1.has_solution:
            values = phase1.solver.ResponseProto().solution
            for index, value in enumerate(values):
                cp.model.AddHint(cp.model.GetIntVarFromProtoIndex(index), value)
            hinted = True
        elif warm is not None:
            hinted = add_hints(cp, warm[0], blocks, problem, 0.2 * left)
        metrics["warm_start_hinted"] = hinted and not phase1.has_solution
        left = budget - (time.monotonic() - started)
        phase2 = solve_model(
            cp.model,
            SolveOptions(time_limit=max(left, 0.01), seed=options.seed, threads=options.threads),
            linearization_level=2,
        )
        metrics["cp_phases"] = 2
        if phase2.has_solution or not phase1.has_solution:
            outcome = phase2
        if phase2.bound is not None:
            bound = phase2.bound if bound is None else max(bound, phase2.bound)
        if phase2.status == SolveStatus.OPTIMAL:
            outcome, bound = phase2, phase2.bound
    tick = cp.scales.tick_s
    metrics["cp_solve_s"] = time.monotonic() - started
    metrics["cp_status"] = str(outcome.status)
    metrics["cp_model_objective_s"] = (
        None if outcome.objective is None else outcome.objective * tick
    )
    metrics["cp_model_bound_s"] = None if bound is None else bound * tick
    return outcome, bound
