"""MILP and CP-SAT glue: statuses, proven bounds and time limits on tiny models."""

from __future__ import annotations

import pulp
import pytest
from ortools.sat.python import cp_model

from distplan.models.result import SolveStatus
from distplan.solvers.cpsat import solve_cpsat
from distplan.solvers.milp import available_backends, solve_milp
from distplan.solvers.options import SolveOptions


class AlmostNoTime(SolveOptions):
    """Options that always have 0.1 ms left: the backend starts and is cut off at once."""

    def remaining(self) -> float:
        return 1e-4


def dense_model(integer: bool) -> pulp.LpProblem:
    """A random dense packing model (300 variables, 40 binding rows) HiGHS needs well over 0.1 ms for."""
    import random

    rng = random.Random(3)
    model = pulp.LpProblem("dense", pulp.LpMaximize)
    cat = "Integer" if integer else "Continuous"
    xs = [pulp.LpVariable(f"x{i:03d}", 0, 1, cat=cat) for i in range(300)]
    model += pulp.lpSum(rng.randint(1, 100) * x for x in xs)
    for _ in range(40):
        model += pulp.lpSum(rng.randint(1, 100) * x for x in xs) <= 50 * 300 // 4
    return model


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
    n = 250
    weights = [rng.randint(1000, 2000) for _ in range(n)]
    model = pulp.LpProblem("hard", pulp.LpMaximize)
    xs = [pulp.LpVariable(f"x{i}", cat="Binary") for i in range(n)]
    model += pulp.lpSum(w * x for w, x in zip(weights, xs, strict=True))
    for k in range(30):
        model += pulp.lpSum(rng.randint(1000, 2000) * x for x in xs) <= sum(weights) // 3 + k
    outcome = solve_milp(model, SolveOptions(time_limit=0.5), backend="highs")
    assert outcome.status is SolveStatus.TIME_LIMIT, (
        "the model must be hard enough to hit the limit"
    )
    assert outcome.has_solution
    assert (
        outcome.bound is not None and outcome.bound > outcome.objective
    )  # a real gap, not a proof


def test_highs_thread_count_can_change_between_solves() -> None:
    """Two HiGHS solves in one process with different thread counts both succeed."""
    first = solve_milp(knapsack(pulp.LpMaximize), SolveOptions(threads=1), backend="highs")
    second = solve_milp(knapsack(pulp.LpMaximize), SolveOptions(threads=2), backend="highs")
    assert first.status is second.status is SolveStatus.OPTIMAL


def test_cut_off_lp_gives_no_bound() -> None:
    """An LP stopped by the time limit (at whatever point HiGHS holds) reports no bound and is never optimal."""
    outcome = solve_milp(dense_model(integer=False), AlmostNoTime(), backend="highs")
    assert outcome.status is not SolveStatus.OPTIMAL
    assert outcome.bound is None
    solved = solve_milp(dense_model(integer=False), SolveOptions(), backend="highs")
    assert solved.status is SolveStatus.OPTIMAL and solved.bound == pytest.approx(solved.objective)


def test_cut_off_milp_before_root_gives_no_bound() -> None:
    """A MILP stopped before its root relaxation is solved reports neither plan nor bound."""
    outcome = solve_milp(dense_model(integer=True), AlmostNoTime(), backend="highs")
    assert outcome.status is SolveStatus.NO_SOLUTION
    assert outcome.bound is None


def test_expired_options_do_not_run_the_backend() -> None:
    """When the time limit has passed before the solve, the outcome is no_solution without a bound."""
    import time

    options = SolveOptions(time_limit=0.5, started_at=time.monotonic() - 1.0)
    outcome = solve_milp(knapsack(pulp.LpMaximize), options, backend="highs")
    assert outcome.status is SolveStatus.NO_SOLUTION and outcome.bound is None


def test_mip_start_is_kept_when_cut_off() -> None:
    """A feasible MIP start handed to HiGHS is the incumbent even when the search is cut off at once."""
    model = dense_model(integer=True)
    variables = sorted(model.variables(), key=lambda v: v.name)
    start = {v: float(k < 10) for k, v in enumerate(variables)}
    value = sum(model.objective.get(v, 0.0) * start[v] for v in variables)
    outcome = solve_milp(model, AlmostNoTime(), backend="highs", start=start)
    assert outcome.has_solution and outcome.objective >= value - 1e-9
    assert outcome.status is not SolveStatus.OPTIMAL


def test_unknown_lp_method() -> None:
    """An unknown LP method is a ValueError naming the valid ones."""
    with pytest.raises(ValueError, match="ipm"):
        solve_milp(knapsack(pulp.LpMaximize), SolveOptions(), lp_method="barrier")


def test_lp_by_interior_point_matches_simplex() -> None:
    """The LP optimum is the same with HiGHS's interior point method as with its simplex."""
    simplex = solve_milp(dense_model(integer=False), SolveOptions(), lp_method="simplex")
    ipm = solve_milp(dense_model(integer=False), SolveOptions(), lp_method="ipm")
    assert ipm.status is simplex.status is SolveStatus.OPTIMAL
    assert ipm.objective == pytest.approx(simplex.objective, rel=1e-7)
