"""MILP and CP-SAT glue: statuses, proven bounds and time limits on tiny models."""

from __future__ import annotations

import pulp
import pytest
from ortools.sat.python import cp_model

from distplan.models.result import SolveStatus
from distplan.solvers.cpsat import solve_cpsat
from distplan.solvers.milp import available_backends, solve_milp
from distplan.solvers.options import SolveOptions


def knapsack(sense: int) -> pulp.LpProblem:
    """max 5a + 4b + 3c s.t. 2a + 3b + c <= 5, binary: optimum 9 (a, c... ) -> a=1,b=1 gives 9, a=1,c=1 gives 8."""
    model = pulp.LpProblem("knap", sense)
    a, b, c = (pulp.LpVariable(n, cat="Binary") for n in "abc")
    objective = 5 * a + 4 * b + 3 * c
    model += objective if sense == pulp.LpMaximize else -objective
    model += 2 * a + 3 * b + c <= 5
    return model


@pytest.mark.parametrize("backend", available_backends())
def test_maximisation_optimum_and_bound(backend: str) -> None:
    """A maximisation reports the optimum and a bound equal to it, in the model's own sense."""
    outcome = solve_milp(knapsack(pulp.LpMaximize), SolveOptions(), backend=backend)
    assert outcome.status is SolveStatus.OPTIMAL
    assert outcome.objective == pytest.approx(9.0)
    assert outcome.bound == pytest.approx(9.0)


@pytest.mark.parametrize("backend", available_backends())
def test_minimisation_sign(backend: str) -> None:
    """A minimisation's bound keeps the minimisation's sign."""
    outcome = solve_milp(knapsack(pulp.LpMinimize), SolveOptions(), backend=backend)
    assert outcome.objective == pytest.approx(-9.0)
    assert outcome.bound == pytest.approx(-9.0)


def test_infeasible_model() -> None:
    """An infeasible MILP maps to the infeasible status."""
    model = pulp.LpProblem("bad", pulp.LpMinimize)
    x = pulp.LpVariable("x", 0, 1, cat="Integer")
    model += x
    model += x >= 2
    assert solve_milp(model, SolveOptions(), backend="highs").status is SolveStatus.INFEASIBLE


def test_unknown_backend() -> None:
    """An unknown backend name is a ValueError naming the valid ones."""
    with pytest.raises(ValueError, match="highs"):
        solve_milp(knapsack(pulp.LpMaximize), SolveOptions(), backend="gurobi")


def test_cpsat_optimum_bound_and_infeasible() -> None:
    """CP-SAT glue reports optimum, bound and infeasibility."""
    model = cp_model.CpModel()
    x = model.NewIntVar(0, 10, "x")
    y = model.NewIntVar(0, 10, "y")
    model.Add(2 * x + 3 * y <= 12)
    model.Maximize(x + y)
    outcome = solve_cpsat(model, SolveOptions(seed=3))
    assert outcome.status is SolveStatus.OPTIMAL
    assert outcome.objective == outcome.bound == 6
    model.Add(x + y >= 7)
    assert solve_cpsat(model, SolveOptions()).status is SolveStatus.INFEASIBLE


def test_highs_time_limit_returns_incumbent_and_gap() -> None:
    """A time-limited hard MILP returns a plan with a bound that brackets it."""
    import random

    rng = random.Random(1)
    n = 60
    weights = [rng.randint(1000, 2000) for _ in range(n)]
    model = pulp.LpProblem("hard", pulp.LpMaximize)
    xs = [pulp.LpVariable(f"x{i}", cat="Binary") for i in range(n)]
    model += pulp.lpSum(w * x for w, x in zip(weights, xs, strict=True))
    for k in range(8):
        model += pulp.lpSum(rng.randint(1000, 2000) * x for x in xs) <= sum(weights) // 3 + k
    outcome = solve_milp(model, SolveOptions(time_limit=0.5), backend="highs")
    assert outcome.has_solution
    assert outcome.bound is not None and outcome.bound >= outcome.objective - 1e-6


def test_highs_thread_count_can_change_between_solves() -> None:
    """Two HiGHS solves in one process with different thread counts both succeed."""
    first = solve_milp(knapsack(pulp.LpMaximize), SolveOptions(threads=1), backend="highs")
    second = solve_milp(knapsack(pulp.LpMaximize), SolveOptions(threads=2), backend="highs")
    assert first.status is second.status is SolveStatus.OPTIMAL
