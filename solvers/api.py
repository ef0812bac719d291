"""The one entry point: ``solve(problem, solver="auto", ...) -> SolveResult``."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from ..models.result import HAS_PLAN, SolveResult, SolveStatus, relative_gap
from .options import InfeasibleProblem, SolveOptions, SolverOutput
from .registry import ProblemKind, get_solver, problem_kind

logger = logging.getLogger(__name__)

#: Relative tolerance when comparing a solver's objective with the evaluator's.
OBJECTIVE_TOLERANCE = 1e-6


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
        Wall-clock seconds; a timed-out exact solver returns its best plan and gap.
    seed
        Random seed; the same problem, solver and seed give the same plan.
    threads
        Worker threads a backend may use.
    options
        Solver-specific options.

    Returns
    -------
    SolveResult
        Every plan is re-checked by the kind's independent evaluator: a plan it
        rejects turns the status into ``error`` with the violations in
        ``metrics["violations"]``; the kind's closed-form bound is merged into
        ``bound``.

    Raises
    ------
    ValueError
        Unknown solver name, or a time limit / thread count out of range.
    """
    if not (time_limit > 0):
        raise ValueError(f"time_limit: must be positive seconds, got {time_limit}")
    if threads < 1:
        raise ValueError(f"threads: must be at least 1, got {threads}")
    kind = problem_kind(problem.kind)
    spec = get_solver(solver, kind.name)
    run_options = SolveOptions(time_limit=time_limit, seed=seed, threads=threads, extra=dict(options or {}))

    reason = kind.precheck(problem) if kind.precheck else None
    if reason is not None:
        output = SolverOutput(SolveStatus.INFEASIBLE, metrics={"reason": reason})
    else:
        try:
            output = spec.function(problem, run_options)
        except InfeasibleProblem as exc:
            output = SolverOutput(SolveStatus.INFEASIBLE, metrics={"reason": str(exc)})
    runtime_s = time.monotonic() - run_options.started_at
    return _finish(problem, kind, spec.name, spec.role, output, runtime_s, seed)


def _finish(problem: Any, kind: ProblemKind, name: str, role: Any, output: SolverOutput, runtime_s: float, seed: int) -> SolveResult:
    """Re-check the plan, merge bounds and build the result."""
    metrics = dict(output.metrics)
    status, objective, plan = output.status, output.objective, output.plan
    if status in HAS_PLAN and plan is None:
        raise RuntimeError(f"solver {name} reported {status} without a plan")
    if plan is not None:
        evaluation = kind.evaluate(problem, plan)
        metrics["evaluator_objective"] = evaluation.objective
        if not evaluation.feasible:
            logger.error("solver %s returned a plan the evaluator rejects: %s", name, evaluation.violations)
            metrics["violations"] = evaluation.violations
            status = SolveStatus.ERROR
        elif objective is None or not _close(objective, evaluation.objective):
            logger.warning("solver %s reports objective %s, evaluator finds %s", name, objective, evaluation.objective)
            metrics["objective_mismatch"] = True
    bound = _merge_bounds(kind, problem, output.bound, metrics)
    if objective is not None and bound is not None and status in HAS_PLAN:
        better = objective < bound if kind.sense == "min" else objective > bound
        if better and not _close(objective, bound):
            raise RuntimeError(f"solver {name}: objective {objective} beats the proven bound {bound}")
        if status in (SolveStatus.FEASIBLE, SolveStatus.TIME_LIMIT) and _close(objective, bound):
            status = SolveStatus.OPTIMAL
    return SolveResult(
        kind=kind.name,
        instance_name=problem.name,
        solver=name,
        role=role,
        sense=kind.sense,
        status=status,
        objective=objective,
        bound=bound,
        gap=relative_gap(objective, bound) if status in HAS_PLAN else None,
        runtime_s=runtime_s,
        seed=seed,
        plan=plan,
        metrics=metrics,
    )


def _merge_bounds(kind: ProblemKind, problem: Any, solver_bound: float | None, metrics: dict[str, Any]) -> float | None:
    """The tighter of the solver's proven bound and the kind's closed-form bound."""
    closed_form = kind.bound(problem) if kind.bound else None
    if closed_form is not None:
        metrics["closed_form_bound"] = closed_form
    candidates = [b for b in (solver_bound, closed_form) if b is not None and math.isfinite(b)]
    if not candidates:
        return None
    return max(candidates) if kind.sense == "min" else min(candidates)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=OBJECTIVE_TOLERANCE, abs_tol=1e-9)
