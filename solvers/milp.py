"""MILP glue: solve a PuLP model with HiGHS (default) or CBC and read status, bound and gap."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pulp

from ..models.result import SolveStatus
from .options import SolveOptions
from .quiet import stdout_to_stderr

BACKENDS = ("highs", "cbc")


@dataclass(frozen=True)
class MilpOutcome:
    """Status, objective and proven bound of one MILP solve (in the model's sense)."""

    status: SolveStatus
    objective: float | None
    bound: float | None
    backend: str

    @property
    def has_solution(self) -> bool:
        return self.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.TIME_LIMIT)


def available_backends() -> list[str]:
    """MILP backends usable on this machine, preferred first."""
    names = set(pulp.listSolvers(onlyAvailable=True))
    found = []
    if "HiGHS" in names:
        found.append("highs")
    if "PULP_CBC_CMD" in names or "COIN_CMD" in names:
        found.append("cbc")
    return found


def solve_milp(model: pulp.LpProblem, options: SolveOptions, backend: str | None = None) -> MilpOutcome:
    """Solve ``model`` within ``options``' remaining time.

    ``backend`` is ``"highs"`` (HiGHS through highspy, the default), ``"cbc"``, or
    None to take ``options.extra["backend"]`` or the first available. HiGHS
    reports its proven dual bound; CBC reports a bound only when it proves
    optimality.

    Raises
    ------
    ValueError
        When the backend is unknown or unavailable.
    """
    backend = backend or options.option("backend", None) or (available_backends() or ["highs"])[0]
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown MILP backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend not in available_backends():
        raise ValueError(f"backend: MILP backend {backend!r} is not available here")
    limit = options.remaining()
    time_limit = None if math.isinf(limit) else max(limit, 0.01)
    if backend == "highs":
        # HiGHS keeps one thread pool per process; a solve with another thread count
        # than the previous one fails silently unless the pool is reset first.
        import highspy

        highspy.Highs.resetGlobalScheduler(True)
        engine = pulp.HiGHS(msg=False, timeLimit=time_limit, threads=options.threads, random_seed=options.seed)
        with stdout_to_stderr():
            model.solve(engine)
        return _read_highs(model)
    engine = pulp.getSolver(
        _cbc_solver_name(),
        msg=False,
        timeLimit=None if time_limit is None else max(1, math.ceil(time_limit)),
        threads=options.threads,
        options=[f"randomSeed {options.seed + 1}", f"randomCbcSeed {options.seed + 1}"],
    )
    with stdout_to_stderr():
        model.solve(engine)
    return _read_cbc(model)


def _cbc_solver_name() -> str:
    """COIN_CMD when a CBC binary is installed, else the CBC that PuLP 3 bundles."""
    return "COIN_CMD" if "COIN_CMD" in pulp.listSolvers(onlyAvailable=True) else "PULP_CBC_CMD"


def _read_highs(model: pulp.LpProblem) -> MilpOutcome:
    import highspy

    highs = model.solverModel
    info = highs.getInfo()
    model_status = highs.getModelStatus()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    sign = -1.0 if model.sense == pulp.LpMaximize else 1.0  # PuLP hands HiGHS a minimisation
    objective = pulp.value(model.objective) if has_solution else None
    is_mip = any(v.cat == pulp.LpInteger for v in model.variables())
    if model_status == highspy.HighsModelStatus.kOptimal:
        status = SolveStatus.OPTIMAL
        bound = sign * info.mip_dual_bound if is_mip else objective
    elif model_status == highspy.HighsModelStatus.kInfeasible:
        return MilpOutcome(SolveStatus.INFEASIBLE, None, None, "highs")
    else:
        status = SolveStatus.TIME_LIMIT if has_solution else SolveStatus.NO_SOLUTION
        raw = info.mip_dual_bound if is_mip else math.nan
        bound = sign * raw if math.isfinite(raw) else None
    return MilpOutcome(status, objective, bound, "highs")


def _read_cbc(model: pulp.LpProblem) -> MilpOutcome:
    objective = pulp.value(model.objective)
    if model.status == pulp.LpStatusOptimal and model.sol_status == pulp.LpSolutionOptimal:
        return MilpOutcome(SolveStatus.OPTIMAL, objective, objective, "cbc")
    if model.status == pulp.LpStatusInfeasible:
        return MilpOutcome(SolveStatus.INFEASIBLE, None, None, "cbc")
    if model.sol_status in (pulp.LpSolutionIntegerFeasible, pulp.LpSolutionOptimal) and objective is not None:
        return MilpOutcome(SolveStatus.TIME_LIMIT, objective, None, "cbc")
    return MilpOutcome(SolveStatus.NO_SOLUTION, None, None, "cbc")
