"""MILP glue: solve a PuLP model with HiGHS (default) or CBC and read status, bound and gap.

Time limits and bounds
----------------------
The time limit handed to the backend is what is left of ``options`` when the
backend starts, *after* PuLP has built the model and passed it on: model
building counts against the limit. When nothing is left, the backend is not
run at all and the outcome is ``no_solution`` without a bound.

A bound is reported only when the backend proved it:

* an LP reports its objective as a bound only when HiGHS declares it optimal;
  an LP cut off by the time limit (HiGHS may stop at any feasible point, e.g.
  all zeros) gives no bound;
* a MILP reports HiGHS's dual bound when it is finite (HiGHS keeps it infinite
  until the root relaxation is solved), so a MILP cut off before its root LP
  gives no bound;
* CBC reports a bound only when it proves optimality.

HiGHS stops a MILP at a relative gap of :data:`MIP_REL_GAP` (1e-6, not its
default 1e-4), so "optimal" is optimal up to that tolerance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pulp

from ..models.result import SolveStatus
from .options import SolveOptions
from .quiet import stdout_to_stderr

T = TypeVar("T")

BACKENDS = ("highs", "cbc")
#: HiGHS LP algorithms (its option ``solver``) selectable with ``lp_method``.
LP_METHODS = ("simplex", "ipm", "ipm_no_crossover", "pdlp")
#: Relative MIP gap at which HiGHS stops and reports optimality.
MIP_REL_GAP = 1e-6


class BuildTimeout(Exception):
    """Raised by a model builder when the time limit passes while it builds (see :func:`check_deadline`)."""


def check_deadline(deadline: float) -> None:
    """Raise :class:`BuildTimeout` when ``time.monotonic()`` has passed ``deadline``.

    Model builders call it between families of variables and constraints, so
    that building a model too large for the time limit stops early.
    """
    if time.monotonic() > deadline:
        raise BuildTimeout("the time limit passed while building the model")


def checked(items: Iterable[T], deadline: float, every: int = 1000) -> Iterator[T]:
    """Yield ``items``, calling :func:`check_deadline` before every ``every``-th one."""
    for k, item in enumerate(items):
        if k % every == 0:
            check_deadline(deadline)
        yield item


@dataclass(frozen=True)
class MilpOutcome:
    """Status, objective and proven bound of one MILP solve (in the model's sense)."""

    status: SolveStatus
    objective: float | None
    bound: float | None
    backend: str

    @property
    def has_solution(self) -> bool:
        """Whether the backend returned a feasible point (not necessarily optimal)."""
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


class _TimedHiGHS(pulp.HiGHS):  # type: ignore[misc, valid-type]
    """PuLP's highspy interface, with the time limit and a MIP start set just before the run.

    PuLP sets HiGHS's ``time_limit`` before it copies the model into HiGHS, so
    that copy would not count; here the limit is what ``options`` has left when
    the copy is done.
    """

    def __init__(
        self,
        options: SolveOptions,
        start: Mapping[pulp.LpVariable, float] | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._run_options = options
        self._start = start
        self.ran = False

    def callSolver(self, lp: pulp.LpProblem) -> None:  # noqa: N802 (PuLP's name)
        import numpy as np

        highs = lp.solverModel
        remaining = self._run_options.remaining()
        if remaining <= 0.0:
            return  # not run: read as no solution
        if not math.isinf(remaining):
            highs.setOptionValue("time_limit", float(remaining))
        if self._start:
            columns = [(var.index, float(value)) for var, value in self._start.items()]
            columns.sort()
            highs.setSolution(
                len(columns),
                np.array([c for c, _ in columns], dtype=np.int32),
                np.array([v for _, v in columns], dtype=np.float64),
            )
        self.ran = True
        highs.run()

    def findSolutionValues(self, lp: pulp.LpProblem) -> tuple[int, int]:  # noqa: N802 (PuLP's name)
        """PuLP's reading, tolerating statuses it does not map (e.g. a node limit).

        The solution is read before PuLP maps the status; the outcome's status
        and bound are read from HiGHS itself (:func:`_read_highs`).
        """
        try:
            return super().findSolutionValues(lp)  # type: ignore[no-any-return]
        except KeyError:
            return pulp.LpStatusNotSolved, pulp.LpSolutionIntegerFeasible


def solve_milp(
    model: pulp.LpProblem,
    options: SolveOptions,
    backend: str | None = None,
    *,
    start: Mapping[pulp.LpVariable, float] | None = None,
    lp_method: str | None = None,
    highs_options: Mapping[str, Any] | None = None,
) -> MilpOutcome:
    """Solve ``model`` within ``options``' remaining time (module docstring).

    Parameters
    ----------
    model:
        The PuLP model.
    options:
        Time limit (seconds, counted from ``options.started_at``), seed, threads;
        ``options.extra["backend"]`` picks the backend when ``backend`` is None.
    backend:
        ``"highs"`` (HiGHS through highspy, the default), ``"cbc"``, or None.
    start:
        A MIP start: values of (some of) the model's variables. HiGHS completes
        a partial start by solving a sub-MIP and ignores an infeasible one; CBC
        receives it through PuLP's ``warmStart``.
    lp_method:
        HiGHS's algorithm for LPs and for the root relaxation: ``"simplex"``
        (HiGHS's default choice), ``"ipm"`` (interior point with crossover to a
        vertex), ``"ipm_no_crossover"`` (its interior optimum, within HiGHS's
        primal and dual feasibility tolerances) or ``"pdlp"`` (first-order);
        None keeps HiGHS's choice.
    highs_options:
        More HiGHS options by name (e.g. ``mip_max_nodes``, a deterministic
        work limit); ignored by CBC.

    Returns
    -------
    MilpOutcome
        Status, objective and a proven bound (or None), in the model's sense.

    Raises
    ------
    ValueError
        When the backend or LP method is unknown or unavailable.
    """
    backend = backend or options.option("backend", None) or (available_backends() or ["highs"])[0]
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown MILP backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend not in available_backends():
        raise ValueError(f"backend: MILP backend {backend!r} is not available here")
    if lp_method is not None and lp_method not in LP_METHODS:
        raise ValueError(
            f"lp_method: unknown LP method {lp_method!r}; valid: {', '.join(LP_METHODS)}"
        )
    if options.expired():
        return MilpOutcome(SolveStatus.NO_SOLUTION, None, None, backend)
    if backend == "highs":
        # HiGHS keeps one thread pool per process; a solve with another thread count
        # than the previous one fails silently unless the pool is reset first.
        import highspy

        highspy.Highs.resetGlobalScheduler(True)
        extra: dict[str, Any] = {"mip_rel_gap": MIP_REL_GAP}
        if lp_method == "ipm_no_crossover":
            extra.update(solver="ipm", run_crossover="off")
        elif lp_method is not None:
            extra["solver"] = lp_method
        extra.update(highs_options or {})
        engine = _TimedHiGHS(
            options, start, msg=False, threads=options.threads, random_seed=options.seed, **extra
        )
        with stdout_to_stderr():
            model.solve(engine)
        if not engine.ran:
            return MilpOutcome(SolveStatus.NO_SOLUTION, None, None, "highs")
        return _read_highs(model)
    limit = options.remaining()
    if start:
        for var, value in start.items():
            var.setInitialValue(value)
    engine = pulp.getSolver(
        _cbc_solver_name(),
        msg=False,
        timeLimit=None if math.isinf(limit) else max(1, math.ceil(limit)),
        threads=options.threads,
        warmStart=bool(start),
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
        if bound is not None and not math.isfinite(bound):
            bound = objective
        return MilpOutcome(status, objective, bound, "highs")
    if model_status == highspy.HighsModelStatus.kInfeasible:
        return MilpOutcome(SolveStatus.INFEASIBLE, None, None, "highs")
    status = SolveStatus.TIME_LIMIT if has_solution else SolveStatus.NO_SOLUTION
    # An LP stopped early proves nothing; a MILP's dual bound is infinite until proven.
    raw = info.mip_dual_bound if is_mip else math.nan
    bound = sign * raw if math.isfinite(raw) else None
    return MilpOutcome(status, objective, bound, "highs")


def _read_cbc(model: pulp.LpProblem) -> MilpOutcome:
    objective = pulp.value(model.objective)
    if model.status == pulp.LpStatusOptimal and model.sol_status == pulp.LpSolutionOptimal:
        return MilpOutcome(SolveStatus.OPTIMAL, objective, objective, "cbc")
    if model.status == pulp.LpStatusInfeasible:
        return MilpOutcome(SolveStatus.INFEASIBLE, None, None, "cbc")
    if (
        model.sol_status in (pulp.LpSolutionIntegerFeasible, pulp.LpSolutionOptimal)
        and objective is not None
    ):
        return MilpOutcome(SolveStatus.TIME_LIMIT, objective, None, "cbc")
    return MilpOutcome(SolveStatus.NO_SOLUTION, None, None, "cbc")
