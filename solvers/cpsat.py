"""CP-SAT glue: solve a model with time limit, seed and workers; read status and bound.

OR-Tools is imported when a model is solved, so kinds register (and their other
solvers run) without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..models.result import SolveStatus
from .options import SolveOptions

if TYPE_CHECKING:
    from ortools.sat.python import cp_model


@dataclass(frozen=True)
class CpSatOutcome:
    """Status, objective and proven bound of one CP-SAT solve, with the solver to read values from."""

    status: SolveStatus
    objective: float | None
    bound: float | None
    solver: cp_model.CpSolver

    @property
    def has_solution(self) -> bool:
        return self.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.TIME_LIMIT)


#: Parameters applied to every solve. OR-Tools 9.15's inclusion presolve was seen to
#: declare feasible scheduling models infeasible and to prove "optimal" values above
#: the true optimum (found on random pipeline models, checked against brute force);
#: switching that step off removed every wrong answer in ~450 random models.
SAFE_PARAMETERS: dict[str, Any] = {"presolve_inclusion_work_limit": 0}


def solve_cpsat(model: cp_model.CpModel, options: SolveOptions, **parameters: Any) -> CpSatOutcome:
    """Solve ``model`` within ``options``' remaining time.

    ``parameters`` override CP-SAT ``SatParameters`` fields (after
    ``SAFE_PARAMETERS``). Deterministic for a given seed when ``threads == 1``
    and the solve finishes before the time limit; with more workers CP-SAT runs
    its portfolio.
    """
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    limit = options.remaining()
    if not math.isinf(limit):
        solver.parameters.max_time_in_seconds = max(limit, 0.01)
    solver.parameters.random_seed = options.seed
    solver.parameters.num_workers = options.threads
    solver.parameters.log_search_progress = False
    for name, value in {**SAFE_PARAMETERS, **parameters}.items():
        setattr(solver.parameters, name, value)
    code = solver.Solve(model)
    has_objective = model.has_objective()
    if code == cp_model.OPTIMAL:
        value = solver.ObjectiveValue() if has_objective else None
        return CpSatOutcome(SolveStatus.OPTIMAL, value, value, solver)
    if code == cp_model.FEASIBLE:
        value = solver.ObjectiveValue() if has_objective else None
        bound = solver.BestObjectiveBound() if has_objective else None
        return CpSatOutcome(SolveStatus.TIME_LIMIT, value, bound, solver)
    if code == cp_model.INFEASIBLE:
        return CpSatOutcome(SolveStatus.INFEASIBLE, None, None, solver)
    # Without a solution CP-SAT's bound has been seen to be meaningless (0 for a
    # maximisation interrupted at once): report none.
    return CpSatOutcome(SolveStatus.NO_SOLUTION, None, None, solver)
