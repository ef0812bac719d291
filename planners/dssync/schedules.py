"""Building blocks of ``dssync`` schedules shared by the solvers (not by the evaluator).

Partitions are lists of member lists (worker names, in ring order); a schedule
is a list of partitions. :func:`pick_by_simulation` scores candidate schedules
with the independent evaluator, the "by simulation" step of the baselines' and
of our parameter choice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ...models.dssync import DssyncPlan, DssyncProblem, GroupAlgorithm
from ...models.result import SolveStatus
from ...solvers.options import SolveOptions, SolverOutput
from .evaluator import Replay, replay

logger = logging.getLogger(__name__)

Members = list[str]
PartitionMembers = list[Members]

__all__ = [
    "Candidate",
    "global_partition",
    "pick_by_simulation",
    "rack_partition",
    "random_equal_partition",
    "workers_by_rack",
]


def workers_by_rack(problem: DssyncProblem) -> list[Members]:
    """Worker names of every rack (racks in order of first appearance, workers as listed)."""
    by_rack: dict[str, Members] = {rack: [] for rack in problem.racks}
    for worker in problem.workers:
        by_rack[worker.rack].append(worker.name)
    return list(by_rack.values())


def rack_partition(problem: DssyncProblem) -> PartitionMembers:
    """One ring per rack."""
    return workers_by_rack(problem)


def global_partition(problem: DssyncProblem) -> PartitionMembers:
    """One group of every worker, rack by rack (a rack-ordered ring)."""
    return [[name for rack in workers_by_rack(problem) for name in rack]]


def random_equal_partition(names: Members, size: int, rng: np.random.Generator) -> PartitionMembers:
    """A uniformly random partition into groups of ``size`` (the last may be smaller)."""
    order = [names[k] for k in rng.permutation(len(names))]
    return [order[k : k + size] for k in range(0, len(order), size)]


@dataclass(frozen=True)
class Candidate:
    """A schedule to score, with a label saying what it is."""

    label: str
    partitions: list[PartitionMembers]
    algorithm: GroupAlgorithm = "ring"
    family: str | None = None

    def plan(self) -> DssyncPlan:
        return DssyncPlan.of_groups(self.partitions, self.algorithm)


def pick_by_simulation(
    problem: DssyncProblem, candidates: Iterable[Candidate], options: SolveOptions
) -> SolverOutput:
    """Score every candidate with the evaluator; keep the fastest to the target loss.

    Ties keep the earlier candidate. Candidates of one ``family`` are a scan
    (e.g. over the period): once one scores no better than the family's previous
    candidate, the rest of that family is skipped. When the time limit passes, the best
    candidate scored so far is returned with status TIME_LIMIT (at least one
    candidate is always scored). When no candidate reaches the target loss the
    status is NO_SOLUTION with the reason.
    """
    best: tuple[float, Candidate, DssyncPlan, Replay] | None = None
    scored: dict[str, float] = {}
    previous: dict[str, float] = {}
    abandoned: set[str] = set()
    status = SolveStatus.FEASIBLE
    for candidate in candidates:
        if best is not None and options.expired():
            status = SolveStatus.TIME_LIMIT
            break
        if candidate.family is not None and candidate.family in abandoned:
            continue
        plan = candidate.plan()
        result = replay(problem, plan)
        objective = result.time_to_target_s
        scored[candidate.label] = objective
        if candidate.family is not None:
            if objective >= previous.get(candidate.family, math.inf):
                abandoned.add(candidate.family)
            previous[candidate.family] = objective
        if best is None or objective < best[0]:
            best = (objective, candidate, plan, result)
    if best is None:
        return SolverOutput(SolveStatus.NO_SOLUTION, metrics={"reason": "no candidate schedule"})
    objective, candidate, plan, chosen = best
    if math.isinf(objective):
        task = problem.training
        reason = (
            f"no schedule tried ({', '.join(scored)}) brings the mean model's loss to "
            f"{task.target_loss:.6g} within {task.max_iterations} iterations"
        )
        return SolverOutput(SolveStatus.NO_SOLUTION, metrics={"reason": reason})
    timed = len(chosen.trace.iteration_end_s)
    logger.debug("picked %s among %s", candidate.label, scored)
    return SolverOutput(
        status,
        plan=plan,
        objective=objective,
        metrics={
            "chosen": candidate.label,
            "candidates_s": scored,
            "iterations_to_target": chosen.run.iterations_to_target,
            "mean_iteration_s": chosen.trace.iteration_end_s[-1] / timed,
        },
    )
