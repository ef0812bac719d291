"""``topo``: our topology-aware pipeline planner (the default for ``solver="auto"``).

Jointly chooses the partition, the replication and the GPU mapping on the
cluster's physical network (shared NICs, switch ports and links are charged
for all the traffic that crosses them, :mod:`.costs`), then the micro-batch
schedule the simulator finds fastest. Steps:

1. **Orderings** (:mod:`.topo_orderings`): a few deterministic orderings of the
   GPUs that keep well-connected GPUs together (bandwidth clustering, greedy
   widest-link chains, fast GPUs first or last, identity).
2. **DP per ordering** (:mod:`.topo_dp`): consecutive blocks of the linearised
   model go to consecutive runs of the ordering (replicas when a run has more
   than one GPU), minimising ``sum(stage + transfers + all-reduce) + (K - 1) *
   bottleneck`` under per-GPU memory, with Alpa-style enumeration of the
   bottleneck; a stage boundary and an all-reduce are costed on the shared
   network (its replicas' transfers share their servers' NICs); the best few
   plans of every ordering are kept. GPUs may stay unused.
3. **Refinement** (:mod:`.topo_search`): the best distinct plans, scored by
   replaying the iteration with the list scheduler's event model (which
   reproduces the simulator), are improved by a first-improvement local search
   (boundary shifts and rebalancing, replica moves, splits and merges, GPU
   swaps), then by iterated local search (random kicks of the best plan),
   within a budget of simulated work (``effort``) and the time limit.
4. **Schedule**: the few best plans of the search are replayed by the
   independent simulator under GPipe, 1F1B and the memory-capped list schedule
   (:mod:`.list_schedule`); the fastest feasible plan and schedule is returned.

**Baselines as candidates** (option ``baseline_candidates``, default true):
the plans of the literature baselines (``alpa_dp``, ``gpipe_dp``,
``balance_by_time``, ``uniform``, ``pipedream_dp``) are computed first (when
the time limit leaves at least :data:`MIN_BASELINE_BUDGET_S`, and only while
30 % of it is spent); those
expressible as bounds on the linearisation seed the local search, and every
one competes in step 4, so ``topo`` is never slower than a baseline. When a
baseline's plan wins unchanged, ``metrics["plan_source"]`` names it (otherwise
``"topo"``), and ``metrics["same_partition_as"]`` lists the baselines whose
partition and placement it equals: the result says honestly where the plan
came from.

The same problem, options and seed give the same plan unless the time limit
cuts the search short.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence

import numpy as np

from ...models.pipeline import PipelinePlan, PipelineProblem
from ...models.result import Role, SolveStatus
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from ..common.linearize import Linearization, candidate_cuts, linearize
from .alpa import alpa_dp
from .baselines import balance_by_time, gpipe_dp, min_max_partition, uniform
from .costs import ClusterView
from .finalize import best_of, objective_s, simulate_candidates, to_output
from .list_schedule import list_schedule
from .pipedream_dp import pipedream_dp
from .simulator import evaluate_plan
from .topo_dp import block_tables, plan_along
from .topo_orderings import gpu_orderings, symmetric_bandwidth
from .topo_search import Plan, PlanScorer, local_search, perturb

__all__ = ["BASELINES", "as_bounds_plan", "baseline_candidates", "plan_topology", "topo"]

logger = logging.getLogger(__name__)

#: The baselines whose plans ``topo`` also considers (option ``baseline_candidates``).
BASELINES = (
    ("alpa_dp", alpa_dp),
    ("gpipe_dp", gpipe_dp),
    ("balance_by_time", balance_by_time),
    ("uniform", uniform),
    ("pipedream_dp", pipedream_dp),
)

#: Least time limit (seconds) under which ``topo`` also runs the baselines (they ignore time limits).
MIN_BASELINE_BUDGET_S = 10.0

#: Most boundary positions the local search considers (all positions below this many layers).
MAX_POSITIONS = 512

#: Most iterated-local-search kicks (small problems exhaust their neighbourhoods long before the effort).
MAX_KICKS = 200

#: Default search effort, in simulated tasks (one replay of W workers with K micro-batches is 2 K W);
#: about 2 s of search on one core.
DEFAULT_EFFORT = 500_000


def _default_blocks(num_gpus: int) -> int:
    """Blocks for the DP: 64 up to 16 GPUs, fewer beyond so that the DP tables stay small."""
    return 64 if num_gpus <= 16 else max(16, int(64 * 16 / num_gpus))


def _seed_plans(problem: PipelineProblem, lin: Linearization) -> list[Plan]:
    """Simple extra starting points: the time-balanced split over the first GPUs, one GPU per stage."""
    num_stages = min(problem.num_gpus, lin.num_layers)
    work = np.diff(lin.forward_s) + np.diff(lin.backward_s)
    bounds, _ = min_max_partition(work, num_stages)
    return [(tuple(bounds), tuple((s,) for s in range(num_stages)))]


def as_bounds_plan(
    lin: Linearization, stage_of_layer: list[int], gpus_of_stage: list[list[int]]
) -> Plan | None:
    """The ``(bounds, groups)`` form of a plan whose stages are contiguous runs of ``lin.order``, else None."""
    stages = [stage_of_layer[layer] for layer in lin.order]
    if any(b < a for a, b in zip(stages, stages[1:], strict=False)) or stages[0] != 0:
        return None
    bounds = [0] + [p for p in range(1, len(stages)) if stages[p] != stages[p - 1]] + [len(stages)]
    if len(bounds) - 1 != len(gpus_of_stage):
        return None
    return tuple(bounds), tuple(tuple(g) for g in gpus_of_stage)


def baseline_candidates(
    problem: PipelineProblem, options: SolveOptions
) -> list[tuple[str, PipelinePlan, float]]:
    """``(solver, plan, simulated seconds)`` of every baseline that finds a plan, in :data:`BASELINES` order."""
    plain = SolveOptions(time_limit=options.remaining(), seed=options.seed, threads=options.threads)
    found: list[tuple[str, PipelinePlan, float]] = []
    remaining = options.remaining()
    if remaining < MIN_BASELINE_BUDGET_S:
        return found  # the baselines do not honour time limits: a short limit goes to the search
    for name, solver in BASELINES:
        if math.isfinite(remaining) and options.remaining() < 0.7 * remaining:
            break  # keep most of the budget for the search
        output = solver(problem, plain)
        if output.plan is not None and output.objective is not None:
            found.append((name, output.plan, float(output.objective)))
    return found


def plan_topology(
    problem: PipelineProblem, options: SolveOptions, seeds: Sequence[Plan] = ()
) -> tuple[list[Plan], dict]:
    """Steps 1-3 of the module docstring: the best plans found (best first) and search metrics.

    Parameters
    ----------
    problem
        The pipeline problem.
    options
        ``time_limit`` and ``seed`` apply; extra options: ``max_blocks``,
        ``orderings``, ``restarts``, ``effort``, ``kicks``.
    seeds
        Extra starting plans (e.g. the baselines'), scored beside the DP's.

    Returns
    -------
    tuple
        ``(plans, metrics)``: up to ``finalists`` plans ``(bounds, groups)``,
        best search score first (empty when no plan fits memory).
    """
    clock = time.monotonic
    started = clock()
    remaining = options.remaining()
    # Leave room for the final replay of every schedule by the simulator.
    deadline = started + 0.85 * remaining if math.isfinite(remaining) else math.inf
    lin = linearize(problem)
    view = ClusterView(problem)
    max_blocks = int(options.option("max_blocks", _default_blocks(problem.num_gpus)))
    tables = block_tables(lin, max_blocks)
    orderings = gpu_orderings(view, seed=options.seed, limit=int(options.option("orderings", 8)))

    overlap = float(options.option("dp_overlap", 1.0))
    backward_s = float(lin.backward_s[-1])
    scorer = PlanScorer(problem, lin)
    scored: list[tuple[float, Plan]] = []
    orderings_done = 0
    candidates = 0
    # The conservative memory rule first; the one-micro-batch rule only when nothing fits it.
    for minimal_memory in (False, True):
        estimates: dict[Plan, float] = {}
        for ordering in orderings:
            if orderings_done and clock() >= started + 0.4 * (deadline - started):
                break
            for found in plan_along(
                problem,
                view,
                tables,
                ordering,
                backward_s=backward_s,
                overlap=overlap,
                minimal_memory=minimal_memory,
            ):
                plan = (found.bounds, found.groups)
                estimates[plan] = min(estimates.get(plan, math.inf), found.estimate_s)
            orderings_done += 1
        if not minimal_memory:
            for plan in [*_seed_plans(problem, lin), *seeds]:
                estimates.setdefault(plan, math.inf)
        candidates += len(estimates)
        for plan in sorted(estimates, key=lambda p: (estimates[p], p)):
            if scored and clock() >= deadline:
                break
            scored.append((scorer.score(plan), plan))
        if any(math.isfinite(value) for value, _ in scored):
            break
    dp_seconds = clock() - started
    scored.sort(key=lambda sp: (sp[0], sp[1]))
    metrics: dict = {
        "orderings": orderings_done,
        "dp_candidates": candidates,
        "dp_seconds": round(dp_seconds, 3),
        "dp_best_simulated_s": scored[0][0] if scored else None,
    }
    starts = [plan for value, plan in scored if math.isfinite(value)][
        : int(options.option("restarts", 3))
    ]
    if not starts:
        return [], metrics

    positions = list(range(lin.num_layers + 1))
    if lin.num_layers > MAX_POSITIONS:
        positions = candidate_cuts(lin, MAX_POSITIONS)
    width = symmetric_bandwidth(view)
    rng = random.Random(options.seed)
    effort = int(options.option("effort", DEFAULT_EFFORT))
    budget_end = scorer.work + effort
    # Half of the effort refines the best start, a quarter the other starts, the rest goes to kicks.
    best_plan, best_value = starts[0], math.inf
    for number, start in enumerate(starts):
        if number == 0:
            limit = scorer.work + effort // 2
        else:
            limit = scorer.work + effort // (4 * max(1, len(starts) - 1))
        plan, value = local_search(
            start,
            scorer,
            positions,
            width,
            rng=rng,
            work_limit=min(limit, budget_end),
            deadline=deadline,
        )
        if value < best_value:
            best_plan, best_value = plan, value
    kicks = 0
    max_kicks = int(options.option("kicks", MAX_KICKS))
    while scorer.work < budget_end and clock() < deadline and kicks < max_kicks:
        kicked = perturb(best_plan, scorer, positions, width, rng)
        plan, value = local_search(
            kicked, scorer, positions, width, rng=rng, work_limit=budget_end, deadline=deadline
        )
        kicks += 1
        if value < best_value:
            best_plan, best_value = plan, value
    logger.debug(
        "topo on %s: %d plans scored, %d kicks, best %.6g s",
        problem.name,
        scorer.evaluations,
        kicks,
        best_value,
    )
    metrics.update(
        evaluations=scorer.evaluations,
        kicks=kicks,
        search_seconds=round(clock() - started - dp_seconds, 3),
        searched_best_s=best_value,
    )
    finalists = [best_plan] + [
        p for p in scorer.best(int(options.option("finalists", 4))) if p != best_plan
    ]
    return finalists[: max(1, int(options.option("finalists", 4)))], metrics


@register_solver(
    "topo",
    deterministic=False,
    kind="pipeline",
    role=Role.HEURISTIC,
    auto_rank=0,
    description="ours: topology-aware joint partition/replication/mapping DP over GPU orderings + simulated local search",
    extra_options={
        "max_blocks": Option(
            "most blocks the layers are coarsened into for the DP (default 64 up to 16 GPUs)",
            types=("int",),
            minimum=1,
        ),
        "orderings": Option(
            "most GPU orderings the DP runs on (default 8)", types=("int",), minimum=1
        ),
        "restarts": Option(
            "plans the local search starts from (default 3)", types=("int",), minimum=1
        ),
        "dp_overlap": Option(
            "stage backward times assumed to hide a later stage's all-reduce in the DP estimate (default 1)",
            types=("float",),
            minimum=0,
            maximum=1,
        ),
        "finalists": Option(
            "best searched plans replayed under every schedule at the end (default 4)",
            types=("int",),
            minimum=1,
        ),
        "kicks": Option(
            f"most iterated-local-search kicks (default {MAX_KICKS})", types=("int",), minimum=0
        ),
        "baseline_candidates": Option(
            "seed the search with the baselines' plans and let them compete (default true)",
            types=("bool",),
        ),
        "effort": Option(
            f"search budget in simulated tasks (default {DEFAULT_EFFORT}; a replay of W workers is 2 K W)",
            types=("int",),
            minimum=0,
        ),
    },
)
def topo(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """Topology-aware planner: DP over GPU orderings, simulated local search, best schedule."""
    lin = linearize(problem)
    baselines = (
        baseline_candidates(problem, options) if options.option("baseline_candidates", True) else []
    )
    seeds = [
        p
        for _, plan, _ in baselines
        if (p := as_bounds_plan(lin, plan.stage_of_layer, plan.gpus_of_stage))
    ]
    plans, metrics = plan_topology(problem, options, seeds)
    best_value, best_candidates, source = math.inf, None, "topo"
    for bounds, groups in plans:
        candidates = simulate_candidates(
            problem,
            lin.stage_of_layer(list(bounds)),
            [list(g) for g in groups],
            list_scheduler=list_schedule,
        )
        found = best_of(candidates)
        if found is not None and objective_s(found[1]) < best_value:
            best_value, best_candidates = objective_s(found[1]), candidates
    for name, plan, _ in baselines:
        candidates = [(plan, evaluate_plan(problem, plan))]
        found = best_of(candidates)
        if found is not None and objective_s(found[1]) < best_value:
            best_value, best_candidates, source = objective_s(found[1]), candidates, name
    if best_candidates is None:
        metrics["reason"] = "no partition and placement fits GPU memory"
        return SolverOutput(SolveStatus.NO_SOLUTION, metrics=metrics)
    metrics["plan_source"] = source
    chosen = best_of(best_candidates)
    assert chosen is not None
    metrics["same_partition_as"] = [
        name
        for name, plan, _ in baselines
        if (plan.stage_of_layer, plan.gpus_of_stage)
        == (chosen[0].stage_of_layer, chosen[0].gpus_of_stage)
    ]
    metrics["baseline_best_s"] = min((v for _, _, v in baselines), default=None)
    return to_output(best_candidates, metrics)
