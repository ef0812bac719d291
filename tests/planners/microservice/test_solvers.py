"""Tests of every microservice solver on hand-built instances and the small shipped one.

Hand-built instances (sizes in MB = 1e6 bytes, window 100 s):

* ``line``: edge-0 - edge-1 - edge-2 with web = base + app-a and db = base +
  app-b (the evaluator tests' instance);
* ``borrow``: edge-0 (60 MB, 1000 millicores) - edge-1 (100 MB, no compute);
  one service of two 50 MB layers demanded 20 rps in region 0 -- it runs only
  if edge-0 borrows a layer that edge-1 stores for it;
* ``shared``: four servers on a ring sharing a 100 MB base layer among four
  services, storage for about two images per server;
* ``idle``: ``line`` without demand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import distplan
from distplan.models.microservice import (
    Demand,
    EdgeServer,
    ImageLayer,
    Microservice,
    MicroserviceProblem,
    ServerLink,
)
from distplan.models.result import HAS_PLAN, SolveStatus
from distplan.planners.microservice.routing import ServiceFlow, route_demand, service_flows
from distplan.solvers.registry import solvers

MB = 1_000_000
REPO = Path(__file__).resolve().parents[3]
SMALL = REPO / "instances" / "microservice" / "small-4x10.json"
#: Every registered microservice solver, exact ones first (from the registry, never kept by hand).
EXACT = tuple(spec.name for spec in solvers("microservice") if spec.exact)
HEURISTICS = tuple(spec.name for spec in solvers("microservice") if not spec.exact)
ALL = (*EXACT, *HEURISTICS)
#: HiGHS stops at a relative MIP gap of 1e-6 (solvers.milp.MIP_REL_GAP).
MIP_GAP = 1e-6


def borrow_problem() -> MicroserviceProblem:
    return MicroserviceProblem(
        name="borrow",
        servers=[
            EdgeServer(name="edge-0", storage_bytes=60 * MB, compute_capacity=1000.0),
            EdgeServer(name="edge-1", storage_bytes=100 * MB, compute_capacity=0.0),
        ],
        links=[ServerLink(a=0, b=1, bandwidth_bytes_per_s=10.0 * MB)],
        layers=[
            ImageLayer(digest="l1", size_bytes=50 * MB),
            ImageLayer(digest="l2", size_bytes=50 * MB),
        ],
        services=[
            Microservice(
                name="app",
                image="app",
                layers=["l1", "l2"],
                compute_per_instance=500.0,
                service_rate_rps=10.0,
            )
        ],
        demands=[Demand(service=0, region=0, rate_rps=20.0)],
        deployment_window_s=100.0,
    )


def shared_problem() -> MicroserviceProblem:
    names = ["api", "auth", "cart", "feed"]
    return MicroserviceProblem(
        name="shared",
        servers=[
            EdgeServer(
                name=f"edge-{n}",
                storage_bytes=(180 + 20 * n) * MB,
                compute_capacity=2000.0 + 1000.0 * (n % 2),
            )
            for n in range(4)
        ],
        links=[
            ServerLink(a=n, b=(n + 1) % 4, bandwidth_bytes_per_s=(0.5 + 0.25 * n) * MB)
            for n in range(4)
        ],
        layers=[ImageLayer(digest="base", size_bytes=100 * MB)]
        + [ImageLayer(digest=f"app-{k}", size_bytes=(40 + 15 * k) * MB) for k in range(4)],
        services=[
            Microservice(
                name=name,
                image=name,
                layers=["base", f"app-{k}"],
                compute_per_instance=250.0 * (k + 1),
                service_rate_rps=10.0 + 10.0 * k,
            )
            for k, name in enumerate(names)
        ],
        demands=[
            Demand(service=k, region=n, rate_rps=float(15 + 7 * ((3 * k + n) % 5)))
            for k in range(4)
            for n in range(4)
            if (k + n) % 3 != 0
        ],
        deployment_window_s=100.0,
    )


TINY = ("borrow", "line", "shared")


@pytest.fixture(scope="module")
def tiny_builders(make_line_problem):
    """Builder of every tiny instance, by name."""
    return {"line": make_line_problem, "borrow": borrow_problem, "shared": shared_problem}


@pytest.fixture(scope="module")
def tiny_results(tiny_builders):
    """Every solver on every tiny instance (seed 0, ample time)."""
    return {
        (name, solver): distplan.solve(tiny_builders[name](), solver, time_limit=60.0, seed=0)
        for name in TINY
        for solver in ALL
    }


@pytest.fixture(scope="module")
def small():
    return distplan.load_instance(SMALL)


@pytest.fixture(scope="module")
def small_results(small):
    """Every solver on the small shipped instance; the exact solvers stop after 2 s (not proven)."""
    limits = {"ilp": 2.0, "cpsat": 2.0}
    return {
        solver: distplan.solve(small, solver, time_limit=limits.get(solver, 60.0), seed=0)
        for solver in ALL
    }


def _check_accepted(result) -> None:
    assert result.status in HAS_PLAN, result.metrics
    assert not result.violations, result.violations
    assert "objective_mismatch" not in result.metrics
    assert math.isclose(result.objective, result.evaluator_objective, rel_tol=1e-6, abs_tol=1e-9)
    assert result.bound is not None and result.bound >= result.objective * (1 - 1e-9)


@pytest.mark.parametrize("solver", ALL)
@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_plans_are_accepted(tiny_results, name: str, solver: str) -> None:
    """Every solver's plan on a hand-built instance passes the evaluator with the same objective, inside the bound."""
    _check_accepted(tiny_results[(name, solver)])


@pytest.mark.parametrize("solver", ALL)
def test_small_shipped_plans_are_accepted(small_results, solver: str) -> None:
    """Every solver's plan on the small shipped instance passes the evaluator with the same objective, inside the bound."""
    _check_accepted(small_results[solver])


@pytest.mark.parametrize("name", sorted(TINY))
def test_ilp_is_optimal_and_dominates(tiny_results, name: str) -> None:
    """On hand-built instances the ILP proves optimality; LP bound >= ILP >= every other solver."""
    ilp = tiny_results[(name, "ilp")]
    assert ilp.status is SolveStatus.OPTIMAL
    lp_bound = tiny_results[(name, "lp_round")].metrics["lp_objective"]
    assert lp_bound >= ilp.objective * (1 - 1e-9)
    for solver in (s for s in ALL if s != "ilp"):
        assert tiny_results[(name, solver)].objective <= ilp.objective * (1 + MIP_GAP) + 1e-9, (
            solver
        )


@pytest.mark.parametrize("name", sorted(TINY))
def test_cpsat_matches_ilp_with_a_valid_bound(tiny_results, name: str) -> None:
    """CP-SAT on exactly scaled data finds the ILP optimum and proves it."""
    cp, ilp = tiny_results[(name, "cpsat")], tiny_results[(name, "ilp")]
    assert math.isclose(cp.objective, ilp.objective, rel_tol=MIP_GAP)
    assert cp.status is SolveStatus.OPTIMAL
    assert cp.metrics["exact_data"]


def test_borrowing_is_necessary() -> None:
    """When the image fits only with a neighbour's storage, greedy serves the demand and greedy_intra nothing."""
    problem = borrow_problem()
    greedy = distplan.solve(problem, "greedy")
    intra = distplan.solve(problem, "greedy_intra")
    assert greedy.objective == pytest.approx(20.0)
    assert intra.objective == 0.0
    assert any(plan_borrows for plan_borrows in greedy.plan.borrowed_layers)


def test_layer_oblivious_charges_whole_images() -> None:
    """Layer-oblivious accounting cannot fit two images sharing a base that fit with layer sharing."""
    problem = MicroserviceProblem(
        name="two-on-one",
        servers=[EdgeServer(name="edge-0", storage_bytes=250 * MB, compute_capacity=2000.0)],
        layers=[
            ImageLayer(digest=d, size_bytes=s * MB)
            for d, s in (("base", 150), ("a", 40), ("b", 40))
        ],
        services=[
            Microservice(
                name=n,
                image=n,
                layers=["base", n],
                compute_per_instance=500.0,
                service_rate_rps=10.0,
            )
            for n in ("a", "b")
        ],
        demands=[
            Demand(service=0, region=0, rate_rps=20.0),
            Demand(service=1, region=0, rate_rps=20.0),
        ],
        deployment_window_s=100.0,
    )
    assert distplan.solve(problem, "greedy").objective == pytest.approx(40.0)
    assert distplan.solve(problem, "layer_oblivious").objective == pytest.approx(20.0)
    assert distplan.solve(problem, "ilp").objective == pytest.approx(40.0)


@pytest.mark.parametrize("solver", ALL)
def test_no_demand_serves_nothing_optimally(make_line_problem, solver: str) -> None:
    """Without demand every solver deploys nothing, serves 0 requests/s and is optimal."""
    result = distplan.solve(make_line_problem(name="idle", demands=False), solver)
    assert result.status is SolveStatus.OPTIMAL
    assert result.objective == 0.0
    assert sum(map(sum, result.plan.instances)) == 0


def test_lp_round_within_three_percent_of_ilp_on_small(small_results) -> None:
    """LP rounding serves at least 97 % of the ILP's best plan on the small shipped instance."""
    assert small_results["lp_round"].objective >= 0.97 * small_results["ilp"].objective


def test_lp_round_reports_lp_bound_and_gap(small_results) -> None:
    """lp_round's bound is its relaxation's LP optimum (or tighter) and bound_gap relates it to the plan."""
    result = small_results["lp_round"]
    lp = result.metrics["lp_objective"]
    assert result.bound <= lp + 1e-6
    assert result.bound >= result.objective - 1e-6
    assert result.metrics["bound_gap"] == pytest.approx(
        (result.bound - result.objective) / result.objective
    )


@pytest.mark.parametrize("solver", HEURISTICS)
def test_same_seed_same_plan(small, small_results, solver: str) -> None:
    """The same instance, solver and seed give the same plan."""
    again = distplan.solve(small, solver, time_limit=60.0, seed=0)
    assert again.plan == small_results[solver].plan


def test_service_flow_matches_networkx(small) -> None:
    """Incremental per-service flows (with additions and removals) equal networkx's maximum flow."""
    flows = service_flows(small)
    instances = [[0] * len(small.servers) for _ in small.services]
    for step, (i, n) in enumerate((i, n) for i in sorted(flows) for n in range(len(small.servers))):
        count = 1 + step % 3
        if flows[i].reaches(n):
            instances[i][n] += count
            flows[i].add_capacity(n, count * small.services[i].service_rate_rps)
        if step % 4 == 3 and instances[i][n] > 0:
            instances[i][n] -= 1
            flows[i].remove_capacity(n, small.services[i].service_rate_rps)
    total = sum(flow.served_rps for flow in flows.values())
    assert total == pytest.approx(route_demand(small, instances).served_rps, rel=1e-9)


def test_service_flow_augmentable() -> None:
    """The augmentable flow of a server is what a large capacity there would add."""
    flow = ServiceFlow({0: 10.0, 1: 5.0}, {0: [0, 1], 1: [1]})
    flow.add_capacity(1, 8.0)
    assert flow.served_rps == pytest.approx(8.0)
    assert flow.augmentable(0) == pytest.approx(7.0)
    assert flow.augmentable(1) == pytest.approx(7.0)
    assert flow.copy().add_capacity(0, 100.0) == pytest.approx(7.0)


@pytest.mark.parametrize("name", sorted(TINY))
def test_ilp_with_cbc_matches_highs(tiny_results, tiny_builders, name: str) -> None:
    """The ILP solved by CBC (option backend='cbc') reaches the HiGHS optimum."""
    from distplan.solvers.milp import available_backends

    if "cbc" not in available_backends():
        pytest.skip("CBC is not installed")
    result = distplan.solve(tiny_builders[name](), "ilp", options={"backend": "cbc"})
    assert result.status is SolveStatus.OPTIMAL
    assert result.metrics["backend"] == "cbc"
    assert result.objective == pytest.approx(tiny_results[(name, "ilp")].objective, rel=MIP_GAP)


def test_ilp_time_limit_returns_plan_and_gap(small) -> None:
    """Stopped by its time limit, the ILP returns its best plan with a proven bound and gap."""
    result = distplan.solve(small, "ilp", time_limit=1.0)
    assert result.status in (SolveStatus.TIME_LIMIT, SolveStatus.OPTIMAL)
    assert result.has_plan and not result.violations
    assert result.gap is not None and result.bound >= result.objective
