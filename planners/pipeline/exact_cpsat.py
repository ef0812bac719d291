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

The proof needs every replica's task to last at least the model's duration
``work / group speed``. The network is modelled uncontended (route latency and
bottleneck alone): a relaxation, since waiting for a shared NIC or switch port
only delays the simulation. A launch overhead only lengthens replicas'
tasks (``o / speed_g + share_g (t - o) / speed_g >= t / group speed`` with
continuous shares). With whole samples (``samples_per_microbatch`` set) a
replica with fewer samples than its speed-proportional quota runs *shorter*
than the model says, so the mapping fails: the bound is then not reported when
any candidate group has two or more GPUs (``metrics["whole_samples"]``).

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
from typing import TYPE_CHECKING

from ...models.pipeline import PipelinePlan, PipelineProblem
from ...models.result import Evaluation, Role, SolveStatus
from ...solvers.cpsat import CpSatOutcome, solve_cpsat
from ...solvers.lazy import lazy_module
from ...solvers.options import InfeasibleProblem, Option, SolveOptions, SolverOutput
from ...solvers.registry import get_solver, register_solver
from .exact_data import (
    COMBINATIONS_PER_SECOND,
    DEFAULT_MAX_BLOCKS,
    Blocks,
    Network,
    _rings,
    candidate_groups,
    lower_bound_network,
    make_blocks,
)
from .exact_model import CpModel, build_model, horizon_s
from .finalize import best_of, simulate_candidates, to_output
from .list_schedule import list_schedule
from .schedules import Task, make_plan
from .simulator import evaluate_plan

if TYPE_CHECKING:
    from ortools.sat.python import cp_model
else:
    cp_model = lazy_module("ortools.sat.python.cp_model", "ortools")


__all__ = ["solve_exact_cpsat"]

logger = logging.getLogger(__name__)


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
    fixed = cp.model.clone()
    fixed.clear_hints()

    def same(var: cp_model.IntVar) -> cp_model.IntVar:
        return fixed.get_int_var_from_proto_index(var.index)

    for b, stage in enumerate(stage_of_block):
        fixed.add(same(cp.in_stage[b][stage]) == 1)
    for var in chosen:
        fixed.add(same(var) == 1)
    for s in range(len(masks), cp.slots):
        for _, var in cp.uses[s]:
            fixed.add(same(var) == 0)
    entry = [i for i, phase in plan.order_of_stage[0] if phase == "F"]
    label = {original: i for i, original in enumerate(entry)}
    for s, order in enumerate(plan.order_of_stage):
        starts = [(cp.start_f if ph == "F" else cp.start_b)[label[i]][s] for i, ph in order]
        ends = [(cp.end_f if ph == "F" else cp.end_b)[label[i]][s] for i, ph in order]
        for a in range(len(order) - 1):
            fixed.add(same(starts[a + 1]) >= same(ends[a]))
    outcome = solve_model(fixed, SolveOptions(time_limit=max(seconds, 0.01), threads=1))
    if not outcome.has_solution:
        return False
    values = outcome.solver.response_proto.solution
    proto = cp.model.proto
    for index in range(len(proto.variables)):
        cp.model.add_hint(cp.model.get_int_var_from_proto_index(index), values[index])
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

    best: tuple[int, ...] = min(_rings(tuple(gpus)), key=step)
    return list(best)


def extract_plan(
    cp: CpModel, solver: cp_model.CpSolver, blocks: Blocks, problem: PipelineProblem, net: Network
):
    """Read ``(stage_of_layer, gpus_of_stage, order_of_stage)`` off a solution."""
    stage_of_block = [
        next(s for s in range(cp.slots) if solver.boolean_value(cp.in_stage[b][s]))
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
        group = next(group for group, var in cp.uses[s] if solver.boolean_value(var))
        gpus_of_stage.append(ring_order(list(group.gpus), parameters[s], net))
    orders: list[list[Task]] = []
    for s in range(num_stages):
        tasks = []
        for i in range(problem.microbatches):
            tasks.append((solver.value(cp.start_f[i][s]), solver.value(cp.end_f[i][s]), 0, i))
            tasks.append((solver.value(cp.start_b[i][s]), solver.value(cp.end_b[i][s]), 1, i))
        tasks.sort()
        orders.append([(i, "B" if phase else "F") for _, _, phase, i in tasks])
    return stage_of_layer, gpus_of_stage, orders


def best_replica_order(
    problem: PipelineProblem,
    stage_of_layer: list[int],
    gpus_of_stage: list[list[int]],
    orders: list[list[Task]],
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
    deterministic=False,
    kind="pipeline",
    role=Role.EXACT,
    needs=("ortools",),
    description="CP-SAT model of partition, replica groups and per-stage task order; proven bound when uncoarsened",
    extra_options={
        "max_blocks": Option(
            f"layers are merged into at most this many blocks (default {DEFAULT_MAX_BLOCKS}); "
            "with more layers the model is a restriction and reports no bound of its own",
            types=("int",),
            minimum=1,
        ),
        "warm_start": Option(
            "start from the 'topo' heuristic's plan (default true)", types=("bool",)
        ),
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
    """
    max_blocks = int(options.option("max_blocks", DEFAULT_MAX_BLOCKS))
    use_warm_start = bool(options.option("warm_start", True))
    metrics: dict = {}

    net = lower_bound_network(problem)
    # Model building costs about 2 ms per (stage slot, group): keep it near 15% of the time.
    groups, restricted = candidate_groups(
        problem, net, COMBINATIONS_PER_SECOND * options.remaining()
    )
    blocks = make_blocks(problem, max_blocks, problem.num_gpus)
    bound_valid = _bound_is_proven(problem, groups, blocks, restricted, metrics)

    warm = _warm_start(problem, options, metrics) if use_warm_start else None
    metrics["warm_start_objective"] = None if warm is None else warm[1].objective

    slots = min(blocks.count, problem.num_gpus)
    crude = horizon_s(problem, net, slots, blocks.max_span)
    warm_s = None if warm is None else warm[1].objective
    horizon_seconds = crude if warm_s is None else min(crude, warm_s)
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
        own, scheduled = _plans_of_solution(cp, outcome.solver, blocks, problem, net)
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
    _record_sources(best_of(candidates), own, scheduled, metrics)
    proven = cp_status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE)
    status = SolveStatus.FEASIBLE if proven else SolveStatus.TIME_LIMIT
    return to_output(candidates, metrics, bound=bound, status=status)


def _bound_is_proven(
    problem: PipelineProblem, groups: list, blocks: Blocks, restricted: bool, metrics: dict
) -> bool:
    """Whether the model is a relaxation (see the module docstring); the reasons go to ``metrics``."""
    coarsened = blocks.count < len(problem.layers)
    whole_samples = problem.samples_per_microbatch is not None and any(g.size > 1 for g in groups)
    metrics.update(
        coarsened=coarsened,
        restricted=restricted,
        whole_samples=whole_samples,
        num_blocks=blocks.count,
    )
    return not coarsened and not restricted and not whole_samples


def _warm_start(
    problem: PipelineProblem, options: SolveOptions, metrics: dict
) -> tuple[PipelinePlan, Evaluation] | None:
    """The ``topo`` warm start within a fifth of the remaining time (10 s without a limit)."""
    remaining = options.remaining()
    seconds = 0.2 * remaining if math.isfinite(remaining) else 10.0
    started = time.monotonic()
    warm = warm_start(problem, options, seconds)
    metrics["warm_start_s"] = time.monotonic() - started
    return warm


def _plans_of_solution(
    cp: CpModel, solver: cp_model.CpSolver, blocks: Blocks, problem: PipelineProblem, net: Network
) -> tuple[list[tuple[PipelinePlan, Evaluation]], list[tuple[PipelinePlan, Evaluation]]]:
    """The CP-SAT partition with its own orders, and with the list scheduler's (both simulated)."""
    stage_of_layer, gpus_of_stage, orders = extract_plan(cp, solver, blocks, problem, net)
    gpus_of_stage = best_replica_order(problem, stage_of_layer, gpus_of_stage, orders)
    own = simulate_candidates(
        problem, stage_of_layer, gpus_of_stage, list_scheduler=lambda *_: orders
    )
    scheduled: list[tuple[PipelinePlan, Evaluation]] = []
    if "list" in problem.schedules:
        scheduled = simulate_candidates(
            problem, stage_of_layer, gpus_of_stage, ["list"], list_schedule
        )
    return own, scheduled


def _record_sources(
    best: tuple[PipelinePlan, Evaluation] | None,
    own: list[tuple[PipelinePlan, Evaluation]],
    scheduled: list[tuple[PipelinePlan, Evaluation]],
    metrics: dict,
) -> None:
    """Say in ``metrics`` where the returned plan and its order came from."""
    if best is None:
        return
    plan = best[0]
    from_list_scheduler = any(plan is p for p, _ in scheduled)
    from_cp = from_list_scheduler or any(plan is p for p, _ in own)
    metrics["incumbent_source"] = "cpsat" if from_cp else "warm_start"
    metrics["order_source"] = "list_schedule" if from_list_scheduler else plan.schedule
    if from_cp and not from_list_scheduler and plan.schedule == "list":
        metrics["order_source"] = "cpsat"


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
            values = phase1.solver.response_proto.solution
            for index, value in enumerate(values):
                cp.model.add_hint(cp.model.get_int_var_from_proto_index(index), value)
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
