"""The storage-relaxed integer allocation solved as a MILP: a proven bound and often the optimal plan.

Dropping the storage, registry and link budgets from the ILP of :mod:`.ilp`
leaves the integer allocation of :mod:`.integer_allocation` over every
candidate pair: a relaxation (its optimum bounds the placement's optimum), and
a far smaller MILP (no layer, borrow or deployment variables). On the held-out
Docker Hub instances HiGHS solves it to optimality in seconds where the full
ILP does not close its gap in 60 s (6 servers x 15 services, seed 101: 5176.2
requests/s, proven in about 7 s); and because storage barely binds there, its
deployments usually fit (:func:`~.lp_rounding.choose_layers`), so the bound is
attained by a plan and that plan is proven optimal.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...models.microservice import MicroservicePlan, MicroserviceProblem
from ...models.result import SolveStatus
from ...solvers.milp import BuildTimeout
from ...solvers.options import SolveOptions, SolverOutput
from .formulation import FormulationIndex
from .integer_allocation import AllocationModel, AllocationOutcome, Pair
from .placement import solver_output

__all__ = ["RelaxedSolve", "solve_storage_relaxed"]


@dataclass
class RelaxedSolve:
    """What :func:`solve_storage_relaxed` found.

    Attributes
    ----------
    outcome:
        The relaxed MILP's outcome (its ``bound`` is a proven bound on the
        placement's optimum, requests/s, or None).
    plan:
        The relaxed incumbent's deployments fitted into the budgets, allocated
        and filled up (:func:`~.lp_rounding.fit_allocation`), or None without
        an incumbent.
    """

    outcome: AllocationOutcome
    plan: SolverOutput | None


def _counts_of(plan: MicroservicePlan | None) -> dict[Pair, int]:
    if plan is None:
        return {}
    return {
        (i, n): count
        for i, row in enumerate(plan.instances)
        for n, count in enumerate(row)
        if count > 0
    }


def solve_storage_relaxed(
    problem: MicroserviceProblem,
    index: FormulationIndex,
    options: SolveOptions,
    start: MicroservicePlan | None = None,
) -> RelaxedSolve:
    """Solve the storage-relaxed MILP (module docstring) within ``options`` and fit its plan.

    Parameters
    ----------
    problem, index:
        The problem and its index sets (only pairs, caps, flows and demands are used).
    options:
        Time limit (building counts), seed and threads.
    start:
        A feasible plan whose instance counts start the MILP.

    Returns
    -------
    RelaxedSolve
        The outcome with its proven bound, and the fitted plan (status ``feasible``, no bound).
    """
    from .lp_rounding import fit_allocation

    deadline = options.started_at + options.time_limit
    try:
        model = AllocationModel(problem, index, index.pairs, deadline=deadline)
    except BuildTimeout:
        return RelaxedSolve(AllocationOutcome(SolveStatus.NO_SOLUTION), None)
    outcome = model.solve(options, start=_counts_of(start) or None)
    if outcome.objective is None:
        return RelaxedSolve(outcome, None)
    placement = fit_allocation(problem, index, outcome, deadline=deadline)
    plan = solver_output(
        problem,
        placement.instances,
        placement.stored,
        placement.borrowed,
        SolveStatus.FEASIBLE,
        None,
        {"relaxed_status": str(outcome.status), "relaxed_objective": outcome.objective},
    )
    return RelaxedSolve(outcome, plan)
