"""The one entry point: ``solve(problem, solver="auto", ...) -> SolveResult``.

Error contract (see :mod:`distplan.models.errors`): bad arguments raise
:class:`BadInput` and a missing backend :class:`BackendMissing`; everything that
goes wrong *inside* a solver or an evaluator comes back as a result with status
``error`` and its ``reason``, never as an exception.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..models.base import ProblemBase
from ..models.errors import BackendMissing, BadInput
from ..models.instance import content_hash
from ..models.result import HAS_PLAN, SolveResult, SolveStatus, relative_gap
from .options import InfeasibleProblem, SolveOptions, SolverOutput
from .registry import ProblemKind, SolverSpec, get_solver, problem_kind

logger = logging.getLogger(__name__)

__all__ = ["MAX_SEED", "MAX_THREADS", "OBJECTIVE_TOLERANCE", "solve"]

#: Relative tolerance when comparing a solver's objective or a bound with the evaluator's objective.
OBJECTIVE_TOLERANCE = 1e-6
#: Seeds are 31-bit non-negative integers (the range every backend accepts).
MAX_SEED = 2**31 - 1
#: Most worker threads a solve may ask for.
MAX_THREADS = 256


def solve(
    problem: Any,
    solver: str = "auto",
    *,
    time_limit: float = math.inf,
    seed: int = 0,
    threads: int = 1,
    options: Mapping[str, Any] | None = None,
) -> SolveResult:
    """Solve ``problem`` with the registered solver ``solver``.

    Parameters
    ----------
    problem
        A problem model (``PipelineProblem``, ``MicroserviceProblem``, ...).
    solver
        A registered solver name for the problem's kind, or ``"auto"``.
    time_limit
        Wall-clock seconds (> 0); a timed-out solver returns its best plan and gap.
    seed
        Random seed in ``[0, 2**31 - 1]``; the same problem, solver and seed give the same plan.
    threads
        Worker threads a backend may use, ``1..256``.
    options
        Solver-specific options; unknown keys are rejected naming the valid ones.

    Returns
    -------
    SolveResult
        Every plan is re-checked by the kind's independent evaluator; the
        evaluator's objective is the one reported. A plan it rejects turns the
        status into ``error`` with the ``violations``; the kind's closed-form
        bound is merged into ``bound``.

    Raises
    ------
    BadInput
        An invalid problem, unknown solver or option, or an argument out of range.
    BackendMissing
        The solver needs a package that is not installed.
    """
    if not isinstance(problem, ProblemBase):
        raise BadInput(
            "problem", f"expected a distplan problem model, got {type(problem).__name__}"
        )
    _check_arguments(time_limit, seed, threads)
    kind = problem_kind(problem.kind)
    problem = _revalidated(problem)
    spec = get_solver(solver, kind.name)
    extra = _checked_options(spec, options)
    run_options = SolveOptions(
        time_limit=float(time_limit), seed=int(seed), threads=int(threads), extra=extra
    )
    output = _run(problem, kind, spec, run_options)
    runtime_s = time.monotonic() - run_options.started_at
    return _finish(problem, kind, spec, output, runtime_s, int(seed))


def _check_arguments(time_limit: Any, seed: Any, threads: Any) -> None:
    if (
        isinstance(time_limit, bool)
        or not isinstance(time_limit, int | float)
        or not (time_limit > 0)
    ):
        raise BadInput("time_limit", f"must be positive seconds, got {time_limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise BadInput("seed", f"must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise BadInput("threads", f"must be an integer from 1 to {MAX_THREADS}, got {threads!r}")


def _revalidated(problem: ProblemBase) -> ProblemBase:
    """The problem validated afresh: ``model_copy(update=...)`` or ``model_construct`` skip validation."""
    try:
        return type(problem).model_validate(problem.model_dump())
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise BadInput(location, first["msg"]) from exc


def _checked_options(spec: SolverSpec, options: Mapping[str, Any] | None) -> dict[str, Any]:
    extra = dict(options or {})
    unknown = sorted(set(extra) - set(spec.extra_options))
    if unknown:
        valid = ", ".join(sorted(spec.extra_options)) or "none"
        raise BadInput(
            f"options.{unknown[0]}",
            f"unknown option for solver {spec.name!r}; valid options: {valid}",
        )
    return {key: spec.extra_options[key].checked(key, value) for key, value in extra.items()}


def _run(problem: Any, kind: ProblemKind, spec: SolverSpec, options: SolveOptions) -> SolverOutput:
    """Run the pre-check and the solver; every failure becomes an output with a reason."""
    try:
        reason = kind.precheck(problem) if kind.precheck else None
        if reason is not None:
            return SolverOutput(SolveStatus.INFEASIBLE, metrics={"reason": reason})
        return spec.function(problem, options)
    except InfeasibleProblem as exc:
        return SolverOutput(SolveStatus.INFEASIBLE, metrics={"reason": str(exc)})
    except BadInput:  # an option value the solver rejects: the caller must fix it
        raise
    except BackendMissing as exc:
        return SolverOutput(SolveStatus.ERROR, metrics={"reason": str(exc)})
    except Exception as exc:  # a solver bug must not escape solve()
        logger.exception("solver %s failed", spec.name)
        return SolverOutput(
            SolveStatus.ERROR,
            metrics={"reason": f"solver {spec.name} failed: {type(exc).__name__}: {exc}"},
        )


def _finish(
    problem: Any,
    kind: ProblemKind,
    spec: SolverSpec,
    output: SolverOutput,
    runtime_s: float,
    seed: int,
) -> SolveResult:
    """Re-check the plan with the evaluator, merge bounds and build the result."""
    metrics = dict(output.metrics)
    reason = metrics.pop("reason", None)
    status, plan = output.status, output.plan
    objective: float | None = None
    evaluator_objective: float | None = None
    violations: list[str] = list(metrics.pop("violations", []) or [])
    if status in HAS_PLAN and plan is None:
        status, reason = SolveStatus.ERROR, f"solver {spec.name} reported {status} without a plan"
    if status not in HAS_PLAN:
        plan = None
    if plan is not None:
        status, objective, evaluator_objective, reason = _check_plan(
            problem, kind, spec, plan, output.objective, metrics, violations, status, reason
        )
    bound = _merge_bounds(
        kind, problem, output.bound, objective if status in HAS_PLAN else None, metrics
    )
    if (
        objective is not None
        and bound is not None
        and status in (SolveStatus.FEASIBLE, SolveStatus.TIME_LIMIT)
    ):
        if _close(objective, bound):
            status = SolveStatus.OPTIMAL
    return SolveResult(
        kind=kind.name,
        instance_name=problem.name,
        instance_hash=content_hash(problem),
        solver=spec.name,
        role=spec.role,
        sense=kind.sense,
        status=status,
        objective=objective if status in HAS_PLAN else None,
        bound=bound,
        gap=relative_gap(objective, bound) if status in HAS_PLAN else None,
        runtime_s=runtime_s,
        seed=seed,
        plan=plan if status in HAS_PLAN or violations else None,
        evaluator_objective=evaluator_objective,
        violations=violations,
        reason=reason,
        metrics=metrics,
    )


def _check_plan(
    problem: Any,
    kind: ProblemKind,
    spec: SolverSpec,
    plan: Any,
    solver_objective: float | None,
    metrics: dict[str, Any],
    violations: list[str],
    status: SolveStatus,
    reason: str | None,
) -> tuple[SolveStatus, float | None, float | None, str | None]:
    """Evaluate ``plan``: (status, reported objective, evaluator objective, reason)."""
    if not isinstance(plan, kind.plan_type):
        return (
            SolveStatus.ERROR,
            None,
            None,
            f"solver {spec.name} returned a {type(plan).__name__}, not a {kind.name} plan",
        )
    try:
        evaluation = kind.evaluate(problem, plan)
    except Exception as exc:
        logger.exception("evaluator of %s failed", kind.name)
        return (
            SolveStatus.ERROR,
            None,
            None,
            f"the {kind.name} evaluator failed: {type(exc).__name__}: {exc}",
        )
    if evaluation.metrics:
        metrics["evaluation"] = evaluation.metrics
    if not evaluation.feasible:
        logger.error(
            "solver %s returned a plan the evaluator rejects: %s", spec.name, evaluation.violations
        )
        violations.extend(evaluation.violations)
        return (
            SolveStatus.ERROR,
            None,
            evaluation.objective,
            f"the evaluator rejects the plan of {spec.name}",
        )
    if evaluation.objective is None or not math.isfinite(evaluation.objective):
        return (
            SolveStatus.ERROR,
            None,
            evaluation.objective,
            "the evaluator found no finite objective",
        )
    if solver_objective is None or not _close(solver_objective, evaluation.objective):
        logger.warning(
            "solver %s reports objective %s, evaluator finds %s",
            spec.name,
            solver_objective,
            evaluation.objective,
        )
        metrics["solver_objective"] = solver_objective
        metrics["objective_mismatch"] = True
    return status, evaluation.objective, evaluation.objective, reason


def _merge_bounds(
    kind: ProblemKind,
    problem: Any,
    solver_bound: float | None,
    objective: float | None,
    metrics: dict[str, Any],
) -> float | None:
    """The tightest valid bound among the solver's and the kind's closed-form one.

    A bound that a feasible plan beats is not a bound: it is dropped and
    reported in ``metrics["dropped_bound"]``.
    """
    closed_form: float | None = None
    if kind.bound is not None:
        try:
            closed_form = kind.bound(problem)
        except Exception as exc:
            logger.exception("closed-form bound of %s failed", kind.name)
            metrics["dropped_bound"] = [f"closed-form bound failed: {type(exc).__name__}: {exc}"]
    if closed_form is not None:
        metrics["closed_form_bound"] = closed_form
    valid: list[float] = []
    for source, value in (("solver", solver_bound), ("closed-form", closed_form)):
        if value is None or not math.isfinite(value):
            continue
        if objective is not None:
            beaten = objective < value if kind.sense == "min" else objective > value
            if beaten and not _close(objective, value):
                logger.warning(
                    "%s bound %s contradicts the feasible objective %s; dropped",
                    source,
                    value,
                    objective,
                )
                metrics.setdefault("dropped_bound", []).append(
                    f"{source} bound {value:.6g} contradicts the feasible objective {objective:.6g}"
                )
                continue
        valid.append(value)
    if not valid:
        return None
    return max(valid) if kind.sense == "min" else min(valid)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=OBJECTIVE_TOLERANCE, abs_tol=1e-9)
