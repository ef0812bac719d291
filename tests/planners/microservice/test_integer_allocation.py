"""The instance-rounding line, the integer allocation MILP and lp_round's relax-and-fix steps."""

from __future__ import annotations

import math
import random

import pytest

import distplan
from distplan.models.errors import BadInput
from distplan.models.result import SolveStatus
from distplan.planners.microservice.formulation import formulation_index
from distplan.planners.microservice.instance_rounding import rounding_line
from distplan.planners.microservice.integer_allocation import AllocationModel
from distplan.solvers.options import SolveOptions

from .test_brute_force import SEEDS, brute_force_optimum, random_problem


@pytest.fixture(scope="module")
def optima() -> dict[int, float]:
    """Brute-force optimum of every random instance of the brute-force tests, by seed."""
    return {seed: brute_force_optimum(random_problem(seed)) for seed in SEEDS}


def test_rounding_line_is_the_hull_of_integer_points() -> None:
    """The line is above min(mu X, D) at every integer X, tight at q and q + 1, None when D/mu is whole."""
    rng = random.Random(7)
    for _ in range(200):
        rate = rng.choice((5.0, 12.5, 30.0, rng.uniform(1, 50)))
        demand = rng.uniform(0, 200)
        line = rounding_line(rate, demand)
        whole = math.floor(demand / rate + 1e-9)
        if line is None:
            assert demand - rate * whole <= 1e-9 * max(1.0, demand)
            continue
        rest, intercept = line
        for count in range(whole + 4):
            assert intercept + rest * count >= min(rate * count, demand) - 1e-9
        assert intercept + rest * whole == pytest.approx(rate * whole)
        assert intercept + rest * (whole + 1) == pytest.approx(demand)
    assert rounding_line(10.0, 30.0) is None


def test_storage_relaxed_allocation_bounds_every_optimum(optima: dict[int, float]) -> None:
    """Over every candidate pair, the allocation's LP and its MILP optimum stay above the brute-force optimum."""
    tighter = 0
    for seed in SEEDS:
        problem = random_problem(seed)
        index = formulation_index(problem, merge_layers=True)
        model = AllocationModel(problem, index, index.pairs)
        lp, _ = model.relaxation(SolveOptions())
        integer = model.solve(SolveOptions())
        assert integer.status is SolveStatus.OPTIMAL, seed
        assert lp is not None and lp >= integer.bound - 1e-6, seed
        assert integer.bound >= optima[seed] - 1e-6, seed
        tighter += integer.bound < lp - 1e-6
    assert tighter >= 1  # integrality of the counts bites on some instance


def test_allocation_window_and_start_are_respected() -> None:
    """Counts stay in the window, and from a feasible start the MILP never serves less than the start."""
    problem = random_problem(3)
    index = formulation_index(problem, merge_layers=True)
    model = AllocationModel(problem, index, index.pairs)
    free = model.solve(SolveOptions())
    window = {pair: (0, 1) for pair in index.pairs}
    capped = model.solve(SolveOptions(), window=window)
    assert all(count <= 1 for count in capped.counts.values())
    assert capped.objective <= free.objective + 1e-6
    started = model.solve(SolveOptions(), start=capped.counts, max_nodes=1)
    assert started.objective >= capped.objective - 1e-6
    again = model.solve(SolveOptions())  # windows do not leak into later solves
    assert again.objective == pytest.approx(free.objective)


def test_lp_round_brackets_and_meets_optimum_on_random(optima: dict[int, float]) -> None:
    """lp_round's plans are valid, its bound is above the optimum, and it finds the optimum on most instances."""
    found = 0
    for seed in SEEDS:
        result = distplan.solve(random_problem(seed), "lp_round", seed=0)
        assert result.has_plan and not result.violations, seed
        assert result.objective <= optima[seed] + 1e-6, seed
        assert result.bound >= optima[seed] - 1e-6, seed
        found += result.objective >= optima[seed] - 1e-6
    assert found >= len(SEEDS) // 2


def _roomy(seed: int):
    """The random instance of ``seed`` with storage and links that never bind."""
    problem = random_problem(seed)
    data = problem.model_dump()
    for server in data["servers"]:
        server["storage_bytes"] = 10**12
        server["registry_bandwidth_bytes_per_s"] = None
    return type(problem).model_validate(data)


def test_ilp_proves_optimum_by_the_storage_relaxed_milp() -> None:
    """When storage never binds, the relaxed MILP's plan meets its bound: the ILP is optimal without building."""
    from .test_brute_force import brute_force_optimum as optimum

    for seed in (0, 1, 2):
        problem = _roomy(seed)
        result = distplan.solve(problem, "ilp", time_limit=30.0, seed=0)
        assert result.status is SolveStatus.OPTIMAL, seed
        assert "storage-relaxed" in result.metrics["plan_from"], seed
        assert "variables" not in result.metrics, seed  # the ILP was not built
        assert result.objective == pytest.approx(optimum(problem), rel=1e-6, abs=1e-6), seed


def test_ilp_relaxed_stage_is_optional_and_checked(optima: dict[int, float]) -> None:
    """relaxed_share=0 skips the relaxed MILP (the ILP alone proves each optimum); a share outside [0, 1] is refused."""
    for seed in SEEDS:
        result = distplan.solve(
            random_problem(seed), "ilp", time_limit=30.0, options={"relaxed_share": 0.0}
        )
        assert result.status is SolveStatus.OPTIMAL, seed
        assert result.metrics["relaxed_bound"] is None, seed
        assert result.objective == pytest.approx(optima[seed], rel=1e-6, abs=1e-6), seed
    with pytest.raises(BadInput, match="relaxed_share"):
        distplan.solve(random_problem(0), "ilp", options={"relaxed_share": 1.5})


def test_exclusion_cuts_keep_the_relaxed_bound_above_every_optimum(
    optima: dict[int, float],
) -> None:
    """The relaxed MILP cut by conflicting deployment sets still bounds the brute-force optimum; cuts occur."""
    excluded = 0
    for seed in SEEDS:
        result = distplan.solve(random_problem(seed), "ilp", time_limit=30.0, seed=0)
        assert result.status is SolveStatus.OPTIMAL, seed
        assert result.metrics["relaxed_bound"] >= optima[seed] - 1e-6, seed
        excluded += result.metrics["exclusions"]
    assert excluded >= 1
