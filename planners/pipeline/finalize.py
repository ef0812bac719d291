"""Turn a partition and placement into a solver output: pick the schedule, simulate, report.

Every pipeline solver ends here: the candidate schedules allowed by the problem
are replayed by the independent simulator and the fastest memory-feasible one
is returned with the simulated iteration time as the objective. A partition
that fits no allowed schedule is reported as ``no_solution`` with the
simulator's reasons, never as a plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ...models.pipeline import PipelinePlan, PipelineProblem, Schedule
from ...models.result import Evaluation, SolveStatus
from ...solvers.options import Option, SolverOutput
from .schedules import Task, make_plan
from .simulator import evaluate_plan

#: Builds a per-stage task order for the "list" schedule, or None to skip it.
ListScheduler = Callable[[PipelineProblem, list[int], list[list[int]]], list[list[Task]] | None]


def simulate_candidates(
    problem: PipelineProblem,
    stage_of_layer: list[int],
    gpus_of_stage: list[list[int]],
    schedules: Sequence[Schedule] | None = None,
    list_scheduler: ListScheduler | None = None,
) -> list[tuple[PipelinePlan, Evaluation]]:
    """Simulate the partition under each allowed schedule (``schedules`` ∩ ``problem.schedules``)."""
    allowed = [s for s in (schedules or problem.schedules) if s in problem.schedules]
    out: list[tuple[PipelinePlan, Evaluation]] = []
    for schedule in allowed:
        if schedule == "list":
            if list_scheduler is None:
                continue
            order = list_scheduler(problem, stage_of_layer, gpus_of_stage)
            if order is None:
                continue
            plan = make_plan(stage_of_layer, gpus_of_stage, "list", problem.microbatches, order)
        else:
            plan = make_plan(stage_of_layer, gpus_of_stage, schedule, problem.microbatches)
        out.append((plan, evaluate_plan(problem, plan)))
    return out


def best_of(
    candidates: Sequence[tuple[PipelinePlan, Evaluation]],
) -> tuple[PipelinePlan, Evaluation] | None:
    """The feasible candidate with the shortest iteration (ties: first given), or None."""
    feasible = [(p, e) for p, e in candidates if e.feasible and e.objective is not None]
    if not feasible:
        return None
    return min(feasible, key=lambda pe: objective_s(pe[1]))


def objective_s(evaluation: Evaluation) -> float:
    """The evaluation's iteration seconds, ``inf`` when it has none."""
    return math.inf if evaluation.objective is None else float(evaluation.objective)


def to_output(
    candidates: Sequence[tuple[PipelinePlan, Evaluation]],
    metrics: dict | None = None,
    bound: float | None = None,
    status: SolveStatus = SolveStatus.FEASIBLE,
) -> SolverOutput:
    """The best feasible candidate as a solver output, or ``no_solution`` with the reasons."""
    metrics = dict(metrics or {})
    best = best_of(candidates)
    if best is None:
        reasons = sorted({v for _, e in candidates for v in e.violations})
        metrics["reason"] = "; ".join(reasons[:5]) or "no candidate plan"
        return SolverOutput(SolveStatus.NO_SOLUTION, metrics=metrics, bound=bound)
    plan, evaluation = best
    metrics.setdefault("num_stages", plan.num_stages)
    metrics.setdefault("replicas_of_stage", [len(g) for g in plan.gpus_of_stage])
    metrics["schedules_tried"] = {
        p.schedule: e.objective if e.feasible else None for p, e in candidates
    }
    return SolverOutput(
        status, plan=plan, objective=evaluation.objective, bound=bound, metrics=metrics
    )


#: The ``schedules`` option every baseline takes: the common menu (default) or the system's own schedule.
SCHEDULE_OPTION = {
    "schedules": Option(
        "'menu' (default: GPipe, 1F1B and list, the fastest by simulation, as for every solver) "
        "or 'native' (only the system's own schedule)",
        choices=("menu", "native"),
    )
}


def menu_or_native(problem: PipelineProblem, choice: object, native: Schedule) -> list[Schedule]:
    """Schedules to replay a baseline's partition under.

    ``"menu"``: every schedule the problem allows (GPipe, 1F1B, list), so that
    solvers are compared on their partitions; ``"native"``: the system's own
    schedule when allowed, else the other allowed fixed schedules.

    Raises
    ------
    ValueError
        On any other ``choice``.
    """
    if choice == "menu":
        return list(problem.schedules)
    if choice != "native":
        raise ValueError(f"options.schedules: 'menu' or 'native', got {choice!r}")
    if native in problem.schedules:
        return [native]
    return [s for s in problem.schedules if s != "list"] or ["list"]


def simulate_partitions(
    problem: PipelineProblem,
    partitions: Sequence[tuple[list[int], list[list[int]]]],
    schedules: Sequence[Schedule],
    list_scheduler: ListScheduler | None,
) -> tuple[list[tuple[PipelinePlan, Evaluation]], int | None]:
    """Simulate every ``(stage_of_layer, gpus_of_stage)`` under ``schedules``; the best one's candidates.

    Returns the candidates of the partition with the fastest feasible
    schedule (the first partition's when none is feasible, so its reasons are
    reported) and that partition's index (None when none is feasible).
    """
    best: tuple[float, int, list[tuple[PipelinePlan, Evaluation]]] | None = None
    first: list[tuple[PipelinePlan, Evaluation]] = []
    for index, (stage_of_layer, gpus_of_stage) in enumerate(partitions):
        candidates = simulate_candidates(
            problem, stage_of_layer, gpus_of_stage, schedules, list_scheduler
        )
        if index == 0:
            first = candidates
        found = best_of(candidates)
        if found is not None and (best is None or objective_s(found[1]) < best[0]):
            best = (objective_s(found[1]), index, candidates)
    if best is None:
        return first, None
    return best[2], best[1]
