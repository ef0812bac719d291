"""Tests of the independent microservice evaluator and the throughput bound on hand-checked cases.

The tiny problem is a line edge-0 - edge-1 - edge-2 (window 100 s; link budgets
200 MB and 100 MB; edge-2's registry budget 60 MB) with web = base + app-a
(150 MB, 500 millicores, 10 rps per instance) and db = base + app-b (180 MB,
1000 millicores, 30 rps); demand: web 25 rps in region 0 and 15 in region 2,
db 40 rps in region 1.
"""

from __future__ import annotations

import pytest

from distplan.models.microservice import (
    Borrow,
    Demand,
    EdgeServer,
    ImageLayer,
    Microservice,
    MicroservicePlan,
    MicroserviceProblem,
    Route,
)
from distplan.planners.microservice.bounds import (
    compute_dual_bound,
    flow_relaxation_bound,
    throughput_upper_bound,
)
from distplan.planners.microservice.evaluator import evaluate_plan

MB = 1_000_000
WEB, DB = 0, 1


@pytest.fixture
def problem(make_line_problem) -> MicroserviceProblem:
    return make_line_problem(name="tiny")


def base_plan(**changes) -> MicroservicePlan:
    """Two web on edge-0 (stores base, app-a); one db on edge-1 (stores app-b, borrows base from edge-0)."""
    data = {
        "instances": [[2, 0, 0], [0, 1, 0]],
        "stored_layers": [["base", "app-a"], ["app-b"], []],
        "borrowed_layers": [[], [Borrow(layer="base", from_server=0)], []],
        "routes": [
            Route(service=WEB, region=0, server=0, rate_rps=20.0),
            Route(service=DB, region=1, server=1, rate_rps=30.0),
        ],
    }
    data.update(changes)
    return MicroservicePlan(**data)


def test_feasible_plan_with_borrowed_layer(problem):
    """Borrowing base over edge-0 - edge-1 is feasible; served = 20 (web) + 30 (db) by hand."""
    evaluation = evaluate_plan(problem, base_plan())
    assert evaluation.feasible, evaluation.violations
    assert evaluation.objective == pytest.approx(50.0)
    assert evaluation.metrics == {
        "served_rps": pytest.approx(50.0),
        "instances_deployed": 3,
        "storage_used_bytes": 230 * MB,
        "sum_image_bytes_deployed": 330 * MB,
        "bytes_pulled_registry": 230 * MB,
        "bytes_borrowed": 100 * MB,
        "routed_rps": pytest.approx(50.0),
        "total_demand_rps": pytest.approx(80.0),
    }


def test_objective_is_max_flow_not_the_routes(problem):
    """Served rps comes from max-flow over the placement: web of region 2 reaches edge-1, routes ignored."""
    plan = base_plan(
        instances=[[2, 1, 0], [0, 1, 0]],
        borrowed_layers=[
            [],
            [Borrow(layer="base", from_server=0), Borrow(layer="app-a", from_server=0)],
            [],
        ],
        routes=[],
    )
    evaluation = evaluate_plan(problem, plan)
    assert evaluation.feasible, evaluation.violations
    # web: region 0 -> edge-0 (20 of 25), region 2 -> edge-1 (10 of 15); db: region 1 -> edge-1 (30 of 40)
    assert evaluation.objective == pytest.approx(60.0)
    assert evaluation.metrics["routed_rps"] == 0.0
    assert evaluation.metrics["bytes_borrowed"] == 150 * MB


def test_max_flow_reroutes_shared_capacity(problem):
    """Web on edge-1 serves both region 0 and region 2; max-flow splits it to serve 40 by hand."""
    plan = base_plan(
        instances=[[2, 2, 0], [0, 0, 0]],
        stored_layers=[["base", "app-a"], [], []],
        borrowed_layers=[
            [],
            [Borrow(layer="base", from_server=0), Borrow(layer="app-a", from_server=0)],
            [],
        ],
        routes=[],
    )
    evaluation = evaluate_plan(problem, plan)
    assert evaluation.feasible, evaluation.violations
    # region 0 (25): 20 on edge-0 + 5 on edge-1; region 2 (15): 15 on edge-1 (cap 20)
    assert evaluation.objective == pytest.approx(40.0)


def test_layer_both_stored_and_borrowed_is_not_a_violation(problem):
    """Storing base on edge-1 and also borrowing it is redundant but feasible."""
    plan = base_plan(stored_layers=[["base", "app-a"], ["app-b", "base", "app-b"], []])
    evaluation = evaluate_plan(problem, plan)
    assert evaluation.feasible, evaluation.violations
    assert (
        evaluation.metrics["storage_used_bytes"] == 150 * MB + 180 * MB
    )  # duplicate digest stored once


def test_wrong_shapes_stop_the_replay(problem):
    """Instances not services x servers and per-server lists of wrong length are reported, objective None."""
    plan = base_plan(instances=[[2, 0]], stored_layers=[[], []])
    evaluation = evaluate_plan(problem, plan)
    assert not evaluation.feasible
    assert evaluation.objective is None
    assert evaluation.violations == [
        "instances has 1 rows, expected one per service (2)",
        "instances[0] has 2 entries, expected one per server (3)",
        "stored_layers has 2 lists, expected one per server (3)",
    ]
    plan = base_plan(borrowed_layers=[[]])
    assert evaluate_plan(problem, plan).violations == [
        "borrowed_layers has 1 lists, expected one per server (3)"
    ]


def test_unknown_digests_are_reported(problem):
    """Stored or borrowed digests that are not layers of the problem are violations."""
    plan = base_plan(
        stored_layers=[["base", "app-a", "ghost"], ["app-b"], []],
        borrowed_layers=[
            [],
            [Borrow(layer="base", from_server=0)],
            [Borrow(layer="phantom", from_server=1)],
        ],
    )
    evaluation = evaluate_plan(problem, plan)
    assert not evaluation.feasible
    assert evaluation.violations == [
        "server 0 (edge-0) stores unknown layer 'ghost'",
        "server 2 (edge-2) borrows unknown layer 'phantom'",
    ]


def test_borrow_from_non_neighbour_unknown_or_non_storing_server(problem):
    """Borrowing across two hops, from an unknown server or a server lacking the layer is a violation."""
    plan = base_plan(
        borrowed_layers=[
            [],
            [Borrow(layer="base", from_server=0), Borrow(layer="app-a", from_server=2)],
            [Borrow(layer="base", from_server=0), Borrow(layer="base", from_server=9)],
        ]
    )
    evaluation = evaluate_plan(problem, plan)
    assert not evaluation.feasible
    assert evaluation.violations == [
        "server 1 (edge-1) borrows layer 'app-a' from server 2 (edge-2), which does not store it",
        "server 2 (edge-2) borrows layer 'base' from server 0 (edge-0), which is not a direct neighbour",
        "server 2 (edge-2) borrows layer 'base' from unknown server 9 (there are 3 servers)",
    ]


def test_missing_layer_of_deployed_instance(problem):
    """db on edge-1 without base stored or borrowed is a coverage violation (and still counted by max-flow)."""
    plan = base_plan(borrowed_layers=[[], [], []])
    evaluation = evaluate_plan(problem, plan)
    assert not evaluation.feasible
    assert evaluation.violations == [
        "server 1 (edge-1) runs service 1 (db) but layer(s) 'base' (100.0 MB) are neither stored nor borrowed"
    ]
    assert evaluation.objective == pytest.approx(50.0)


def test_storage_and_registry_budgets(problem):
    """edge-2 storing base + app-a breaks storage (150 > 100 MB) and registry (150 > 60 MB); app-b only the registry."""
    plan = base_plan(stored_layers=[["base", "app-a"], ["app-b"], ["base", "app-a"]])
    assert evaluate_plan(problem, plan).violations == [
        "server 2 (edge-2) stores 150.0 MB, capacity 100.0 MB",
        "server 2 (edge-2) pulls 150.0 MB from the registry, budget 60.0 MB (0.6 MB/s x 100 s)",
    ]
    plan = base_plan(stored_layers=[["base", "app-a"], ["app-b"], ["app-b"]])
    assert evaluate_plan(problem, plan).violations == [
        "server 2 (edge-2) pulls 80.0 MB from the registry, budget 60.0 MB (0.6 MB/s x 100 s)",
    ]


def test_link_budget_counts_both_directions(problem):
    """150 MB to edge-1 plus 80 MB back to edge-0 exceed the 200 MB budget of that link."""
    plan = base_plan(
        borrowed_layers=[
            [Borrow(layer="app-b", from_server=1)],
            [Borrow(layer="base", from_server=0), Borrow(layer="app-a", from_server=0)],
            [],
        ]
    )
    assert evaluate_plan(problem, plan).violations == [
        "link server 0 (edge-0) - server 1 (edge-1) carries 230.0 MB of borrowed layers, budget 200.0 MB (2 MB/s x 100 s)"
    ]


def test_duplicate_borrow_entry_is_one_transfer(problem):
    """The same layer borrowed twice from the same neighbour moves its bytes once."""
    plan = base_plan(borrowed_layers=[[], [Borrow(layer="base", from_server=0)] * 2, []])
    evaluation = evaluate_plan(problem, plan)
    assert evaluation.feasible, evaluation.violations
    assert evaluation.metrics["bytes_borrowed"] == 100 * MB


def test_compute_capacity(problem):
    """Five web instances on edge-0 need 2500 of its 2000 millicores."""
    plan = base_plan(instances=[[5, 0, 0], [0, 1, 0]], routes=[])
    evaluation = evaluate_plan(problem, plan)
    assert evaluation.violations == [
        "server 0 (edge-0) uses 2500.0 millicores, capacity 2000.0 millicores"
    ]
    assert evaluation.objective == pytest.approx(25.0 + 30.0)


def test_route_violations(problem):
    """Routes out of reach, above demand, above instance capacity, without demand or out of range."""
    plan = base_plan(
        routes=[
            Route(service=WEB, region=0, server=0, rate_rps=20.0),
            Route(
                service=WEB, region=2, server=0, rate_rps=1.0
            ),  # edge-0 is two hops from region 2
            Route(service=DB, region=1, server=1, rate_rps=35.0),  # 1 db instance serves 30
            Route(service=DB, region=0, server=1, rate_rps=1.0),  # no db demand in region 0
            Route(service=WEB, region=0, server=0, rate_rps=6.0),  # web region 0 totals 26 > 25
            Route(service=5, region=0, server=0, rate_rps=1.0),
        ]
    )
    assert evaluate_plan(problem, plan).violations == [
        "routes[1]: service 0 (web) from region 2 (edge-2) is routed to server 0 (edge-0), which is neither the region's server nor a neighbour",
        "routes[5]: index out of range (service 5, region 0, server 0; there are 2 services and 3 servers)",
        "service 0 (web) routes 26 requests/s from region 0 (edge-0), demand 25 requests/s",
        "service 1 (db) routes 1 requests/s from region 0 (edge-0), demand 0 requests/s",
        "server 0 (edge-0) is routed 27 requests/s of service 0 (web), its 2 instance(s) serve 20 requests/s",
        "server 1 (edge-1) is routed 36 requests/s of service 1 (db), its 1 instance(s) serve 30 requests/s",
    ]


def test_empty_plan_serves_nothing(problem):
    """No instances, no layers: feasible with zero throughput."""
    plan = MicroservicePlan(
        instances=[[0, 0, 0], [0, 0, 0]], stored_layers=[[], [], []], borrowed_layers=[[], [], []]
    )
    evaluation = evaluate_plan(problem, plan)
    assert evaluation.feasible
    assert evaluation.objective == 0.0
    assert evaluation.metrics["instances_deployed"] == 0


def test_bound_is_above_the_hand_plans(problem):
    """The bound is valid for the hand plans and equals the total demand when compute suffices."""
    assert throughput_upper_bound(problem) == pytest.approx(80.0)
    for plan in (base_plan(), base_plan(instances=[[2, 2, 0], [0, 0, 0]])):
        assert evaluate_plan(problem, plan).objective <= throughput_upper_bound(problem) + 1e-9


def single_server(
    services: list[Microservice], demands: list[Demand], compute: float
) -> MicroserviceProblem:
    return MicroserviceProblem(
        name="one",
        servers=[EdgeServer(name="solo", storage_bytes=10 * MB, compute_capacity=compute)],
        layers=[ImageLayer(digest="l", size_bytes=1 * MB)],
        services=services,
        demands=demands,
        deployment_window_s=60.0,
    )


def test_bound_fractional_knapsack_by_hand():
    """One 1000-millicore server: fast service (w=10) first takes 300, slow one (w=50) gets 700/50 = 14 rps."""
    slow = Microservice(
        name="slow", image="s", layers=["l"], compute_per_instance=500.0, service_rate_rps=10.0
    )
    fast = Microservice(
        name="fast", image="f", layers=["l"], compute_per_instance=200.0, service_rate_rps=20.0
    )
    problem = single_server(
        [slow, fast],
        [Demand(service=0, region=0, rate_rps=30.0), Demand(service=1, region=0, rate_rps=30.0)],
        1000.0,
    )
    assert flow_relaxation_bound(problem) == pytest.approx(44.0)
    assert compute_dual_bound(problem) == pytest.approx(44.0)
    # the integer optimum is 40 (2 fast + 1 slow instances use 900 millicores)
    best = MicroservicePlan(instances=[[1], [2]], stored_layers=[["l"]], borrowed_layers=[[]])
    assert evaluate_plan(problem, best).objective == pytest.approx(40.0)


def test_bound_ignores_demand_out_of_reach():
    """Demand in a region whose reach has no server able to host the service adds nothing."""
    web = Microservice(
        name="web", image="w", layers=["l"], compute_per_instance=500.0, service_rate_rps=10.0
    )
    problem = MicroserviceProblem(
        name="apart",
        servers=[
            EdgeServer(name="big", storage_bytes=10 * MB, compute_capacity=5000.0),
            EdgeServer(name="tiny", storage_bytes=10 * MB, compute_capacity=100.0),
        ],
        layers=[ImageLayer(digest="l", size_bytes=1 * MB)],
        services=[web],
        demands=[
            Demand(service=0, region=0, rate_rps=10.0),
            Demand(service=0, region=1, rate_rps=100.0),
        ],
        deployment_window_s=60.0,
    )
    assert throughput_upper_bound(problem) == pytest.approx(10.0)
    assert flow_relaxation_bound(problem) == pytest.approx(10.0)
    assert compute_dual_bound(problem) == pytest.approx(10.0)


def test_bound_without_demand_is_zero():
    """No demand: bound 0."""
    web = Microservice(
        name="web", image="w", layers=["l"], compute_per_instance=500.0, service_rate_rps=10.0
    )
    assert throughput_upper_bound(single_server([web], [], 1000.0)) == 0.0
