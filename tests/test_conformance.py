"""Conformance: every registered solver honours the result contract on every kind's examples.

Solver and kind lists come from the registry, never from hand-kept lists. For
each (example, solver): the plan passes the kind's independent evaluator, the
reported objective is the evaluator's and agrees with the solver's own, the
bound brackets the objective, the same seed gives the same plan, an exact solver
that proves optimality matches a known optimum and is never worse than any other
solver's plan. The sweep over every shipped instance x every solver is slow
(``-m slow``); ``benchmarks/`` measures it.
"""

from __future__ import annotations

import math
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import distplan
from distplan.models.result import HAS_PLAN, SolveResult, SolveStatus
from distplan.solvers.registry import kinds, problem_kind, solvers

REPO = Path(__file__).resolve().parents[1]
INSTANCE_FILES = sorted((REPO / "instances").glob("*/*.json"))
EXAMPLE_TIME_LIMIT_S = 20.0
SWEEP_TIME_LIMIT_S = 2.0


def _example_cases():
    for kind in kinds():
        examples = problem_kind(kind).examples
        count = len(examples()) if examples else 0
        for index in range(count):
            for spec in solvers(kind):
                if spec.available:
                    yield pytest.param(kind, index, spec.name, id=f"{kind}-{index}-{spec.name}")


@cache
def _solve(kind: str, index: int, solver: str, seed: int = 0) -> SolveResult:
    example = problem_kind(kind).examples()[index]  # type: ignore[misc]
    return distplan.solve(example.problem, solver, time_limit=EXAMPLE_TIME_LIMIT_S, seed=seed)


def _check_contract(problem, result: SolveResult) -> None:
    kind = problem_kind(problem.kind)
    assert result.status is not SolveStatus.ERROR, (result.reason, result.violations)
    if result.status not in HAS_PLAN:
        assert result.reason, f"{result.solver} found no plan and does not say why"
        return
    evaluation = kind.evaluate(problem, result.plan)
    assert evaluation.feasible, evaluation.violations
    assert result.objective is not None and evaluation.objective is not None
    assert math.isclose(result.objective, evaluation.objective, rel_tol=1e-6, abs_tol=1e-9)
    assert "objective_mismatch" not in result.metrics, result.metrics.get("solver_objective")
    assert "dropped_bound" not in result.metrics, result.metrics["dropped_bound"]
    if result.bound is not None:
        if result.sense == "min":
            assert result.bound <= result.objective * (1 + 1e-9) + 1e-12
        else:
            assert result.bound >= result.objective * (1 - 1e-9) - 1e-12


@pytest.mark.parametrize(("kind", "index", "solver"), list(_example_cases()))
def test_example_plan_is_accepted_and_deterministic(kind: str, index: int, solver: str) -> None:
    """The plan passes the evaluator with the reported objective inside the bound; same seed, same plan."""
    example = problem_kind(kind).examples()[index]  # type: ignore[misc]
    result = _solve(kind, index, solver)
    _check_contract(example.problem, result)
    spec = next(s for s in solvers(kind) if s.name == solver)
    # Examples finish before the limit, so every solver must repeat itself; ``deterministic``
    # promises more (the same plan when a time limit cuts the search).
    if result.status is not SolveStatus.TIME_LIMIT:
        again = distplan.solve(example.problem, solver, time_limit=EXAMPLE_TIME_LIMIT_S, seed=0)
        assert again.plan == result.plan, "same instance, solver and seed must give the same plan"
    if spec.exact and result.status is SolveStatus.OPTIMAL and example.optimum is not None:
        assert math.isclose(result.objective, example.optimum, rel_tol=1e-6, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("kind", "index", "solver"),
    [
        c
        for c in _example_cases()
        if next(s for s in solvers(c.values[0]) if s.name == c.values[2]).exact
    ],
)
def test_exact_is_never_worse_than_any_other_solver(kind: str, index: int, solver: str) -> None:
    """An exact solver that proves optimality is at least as good as every other solver's plan."""
    result = _solve(kind, index, solver)
    if result.status is not SolveStatus.OPTIMAL:
        pytest.skip(f"{solver} did not prove optimality within {EXAMPLE_TIME_LIMIT_S} s")
    for other in solvers(kind):
        if other.name == solver or not other.available:
            continue
        rival = _solve(kind, index, other.name)
        if rival.status in HAS_PLAN and rival.objective is not None:
            if result.sense == "min":
                assert result.objective <= rival.objective * (1 + 1e-6), other.name
            else:
                assert result.objective >= rival.objective * (1 - 1e-6), other.name


def test_every_kind_ships_instances() -> None:
    """Every registered kind ships instances under instances/<kind>/."""
    shipped = {path.parent.name for path in INSTANCE_FILES}
    assert set(kinds()) <= shipped, set(kinds()) - shipped


def _sweep_cases():
    for path in INSTANCE_FILES:
        for spec in solvers(path.parent.name):
            if spec.available:
                yield pytest.param(
                    path,
                    spec.name,
                    id=f"{path.parent.name}-{path.stem}-{spec.name}",
                    marks=pytest.mark.slow,
                )


@pytest.mark.parametrize(("path", "solver"), list(_sweep_cases()))
def test_cli_solves_every_shipped_instance_without_traceback(path: Path, solver: str) -> None:
    """`distplan solve` with --time-limit 2 ends with a result (exit 0 or 3), never a traceback."""
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "cli.py"),
            "solve",
            str(path),
            "--solver",
            solver,
            "--time-limit",
            str(SWEEP_TIME_LIMIT_S),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert "Traceback" not in completed.stderr, completed.stderr[-2000:]
    assert completed.returncode in (0, 3), completed.stderr[-2000:]
    result = SolveResult.model_validate_json(completed.stdout)
    _check_contract(distplan.load_instance(path), result)
