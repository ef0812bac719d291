"""Conformance: every registered solver on every shipped instance honours the result contract.

For each (instance, solver): the plan is accepted by the kind's independent
evaluator, the reported objective equals the evaluator's, the bound brackets
the objective, and the same seed gives the same plan. Exact solvers run with a
short time limit here; their optimality is tested on small instances in
``tests/planners``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import distplan
from distplan.models.result import HAS_PLAN, SolveStatus
from distplan.solvers.registry import problem_kind, solvers

REPO = Path(__file__).resolve().parents[1]
INSTANCE_FILES = sorted((REPO / "instances").glob("*/*.json"))
EXACT_TIME_LIMIT_S = 5.0
#: Instances on which exact solvers run in the default suite; the rest are marked slow
#: (``benchmarks/*.py`` run exact solvers on every instance).
EXACT_DEFAULT = ("alexnet__nvswitch-8__k4", "alexnet__2x4-10gbe__k4", "small-4x10", "medium-8x30")
#: Instances on which the same-seed re-solve is checked (every solver).
DETERMINISM = ("alexnet__4x4-mixed__k4", "inception_v3__dgx1-8__k16", "small-4x10", "medium-12x50")


def cases():
    for path in INSTANCE_FILES:
        kind = path.parent.name
        for spec in solvers(kind):
            if not spec.available:
                continue
            marks = [pytest.mark.slow] if spec.exact and path.stem not in EXACT_DEFAULT else []
            yield pytest.param(path, spec.name, id=f"{path.stem}-{spec.name}", marks=marks)


@pytest.fixture(scope="module")
def problems():
    return {path: distplan.load_instance(path) for path in INSTANCE_FILES}


def test_instances_are_shipped():
    """Both problem kinds ship instances."""
    assert {p.parent.name for p in INSTANCE_FILES} >= {"pipeline", "microservice"}


@pytest.mark.parametrize(("path", "solver"), list(cases()))
def test_plan_is_accepted_and_objective_matches(problems, path: Path, solver: str) -> None:
    """The solver's plan passes the independent evaluator with the same objective, inside the bound."""
    problem = problems[path]
    spec = next(s for s in solvers(problem.kind) if s.name == solver)
    limit = EXACT_TIME_LIMIT_S if spec.exact else 60.0
    result = distplan.solve(problem, solver, time_limit=limit, seed=0)
    assert result.status is not SolveStatus.ERROR, result.metrics.get("violations")
    if result.status not in HAS_PLAN:
        assert spec.role.value == "baseline", f"{solver} found no plan: {result.metrics.get('reason')}"
        assert result.metrics.get("reason"), "a baseline without a plan must say why"
        return
    evaluation = problem_kind(problem.kind).evaluate(problem, result.plan)
    assert evaluation.feasible, evaluation.violations
    assert math.isclose(result.objective, evaluation.objective, rel_tol=1e-6, abs_tol=1e-9)
    assert "objective_mismatch" not in result.metrics
    assert result.bound is not None
    if result.sense == "min":
        assert result.bound <= result.objective * (1 + 1e-9)
    else:
        assert result.bound >= result.objective * (1 - 1e-9)
    if not spec.exact and path.stem in DETERMINISM:
        again = distplan.solve(problem, solver, time_limit=limit, seed=0)
        assert again.plan == result.plan, "same instance, solver and seed must give the same plan"
