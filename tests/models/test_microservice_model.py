"""Tests of the microservice problem model: references, hostability and derived tables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from distplan.models import load_instance, parse_instance
from distplan.models.microservice import MicroserviceProblem

MB = 1_000_000


def problem_data(**changes) -> dict:
    """A valid three-server line 0 - 1 - 2 with two services, as plain JSON data."""
    data = {
        "kind": "microservice",
        "name": "tiny",
        "servers": [
            {"name": "edge-0", "storage_bytes": 300 * MB, "compute_capacity": 2000.0},
            {"name": "edge-1", "storage_bytes": 200 * MB, "compute_capacity": 1500.0},
            {
                "name": "edge-2",
                "storage_bytes": 100 * MB,
                "compute_capacity": 1000.0,
                "registry_bandwidth_bytes_per_s": 0.6 * MB,
            },
        ],
        "links": [
            {"a": 0, "b": 1, "bandwidth_bytes_per_s": 2.0 * MB},
            {"a": 1, "b": 2, "bandwidth_bytes_per_s": 1.0 * MB},
        ],
        "layers": [
            {"digest": "base", "size_bytes": 100 * MB},
            {"digest": "app-a", "size_bytes": 50 * MB},
            {"digest": "app-b", "size_bytes": 80 * MB},
        ],
        "services": [
            {
                "name": "web",
                "image": "web",
                "layers": ["base", "app-a"],
                "compute_per_instance": 500.0,
                "service_rate_rps": 10.0,
            },
            {
                "name": "db",
                "image": "db",
                "layers": ["base", "app-b"],
                "compute_per_instance": 1000.0,
                "service_rate_rps": 30.0,
            },
        ],
        "demands": [
            {"service": 0, "region": 0, "rate_rps": 25.0},
            {"service": 0, "region": 2, "rate_rps": 15.0},
            {"service": 1, "region": 1, "rate_rps": 40.0},
        ],
        "deployment_window_s": 100.0,
    }
    data.update(changes)
    return data


def test_valid_problem_parses_with_derived_tables():
    """A valid problem loads through the union and exposes neighbours, reach and budgets."""
    problem = parse_instance(problem_data())
    assert isinstance(problem, MicroserviceProblem)
    assert problem.neighbours == [[1], [0, 2], [1]]
    assert problem.reach(1) == [1, 0, 2]
    assert problem.image_bytes(1) == 180 * MB
    assert problem.link_bandwidth[(2, 1)] == 1.0 * MB
    assert problem.storable_bytes(2) == pytest.approx(60 * MB)  # registry 0.6 MB/s x 100 s
    # own 300 MB + min(200 MB stored on edge-1, 200 MB link budget)
    assert problem.max_holdable_bytes(0) == pytest.approx(500 * MB)
    # own 60 MB (registry-capped) + min(200 MB, 100 MB link budget)
    assert problem.max_holdable_bytes(2) == pytest.approx(160 * MB)
    assert problem.total_demand_rps == pytest.approx(80.0)


def test_service_needing_more_compute_than_any_server_is_rejected():
    """A compute_per_instance above every server's capacity raises, naming service and sizes."""
    data = problem_data()
    data["services"][1]["compute_per_instance"] = 3000.0
    with pytest.raises(
        ValidationError,
        match=r"services\[1\] \(db\): compute_per_instance 3000.0 millicores exceeds the largest server compute_capacity \(2000.0 millicores\)",
    ):
        parse_instance(data)


def test_image_larger_than_any_server_can_hold_or_borrow_is_rejected():
    """An image above every server's storage plus what neighbours can lend raises with MB sizes."""
    data = problem_data()
    data["layers"][2]["size_bytes"] = (
        900 * MB
    )  # db needs 1000 MB; edge-0 holds at most 300 + 200 MB
    with pytest.raises(
        ValidationError,
        match=r"services\[1\] \(db\): image needs 1000.0 MB but the most any server can hold or borrow is 500.0 MB",
    ):
        parse_instance(data)


def test_image_fitting_only_where_compute_is_too_small_is_rejected():
    """An image that fits only on servers without enough compute raises."""
    data = problem_data()
    data["servers"][0]["compute_capacity"] = 400.0  # edge-0 holds 500 MB but cannot run web or db
    data["servers"][1]["compute_capacity"] = 1000.0
    data["layers"][2]["size_bytes"] = 300 * MB  # db needs 400 MB; edge-1 holds 460, edge-2 160
    parse_instance(data)  # edge-1 can still host db
    data["layers"][2]["size_bytes"] = 380 * MB  # db needs 480 MB: only edge-0 (500 MB) holds it
    with pytest.raises(
        ValidationError,
        match=r"services\[1\] \(db\): image needs 480.0 MB but the most a server with 1000.0 millicores can hold or borrow is 460.0 MB",
    ):
        parse_instance(data)


def test_image_larger_than_own_storage_but_borrowable_is_accepted():
    """A service whose image exceeds every server's own storage is fine when neighbours can lend."""
    data = problem_data()
    data["layers"][0]["size_bytes"] = 350 * MB  # web needs 400 MB > 300 MB of edge-0
    problem = parse_instance(data)
    assert problem.image_bytes(0) == 400 * MB


def test_negative_size_error_names_the_field():
    """A negative layer size is rejected with the field's location in the message."""
    data = problem_data()
    data["layers"][1]["size_bytes"] = -5
    with pytest.raises(ValidationError, match=r"layers\.1\.size_bytes"):
        parse_instance(data)
    data = problem_data()
    data["servers"][2]["storage_bytes"] = -1
    with pytest.raises(ValidationError, match=r"servers\.2\.storage_bytes"):
        parse_instance(data)


def test_unknown_digest_and_bad_link_are_rejected():
    """Cross references name the offending index."""
    data = problem_data()
    data["services"][0]["layers"] = ["base", "nope"]
    with pytest.raises(
        ValidationError, match=r"services\[0\] \(web\): unknown layer digest 'nope'"
    ):
        parse_instance(data)
    data = problem_data()
    data["links"][1]["b"] = 7
    with pytest.raises(ValidationError, match=r"links\[1\]: server index 7 is out of range"):
        parse_instance(data)


def test_shipped_instances_load_and_validate(repo):
    """Every instance file under instances/microservice loads via load_instance."""
    paths = sorted((repo / "instances" / "microservice").glob("*.json"))
    assert paths, "no shipped microservice instances"
    for path in paths:
        problem = load_instance(path)
        assert isinstance(problem, MicroserviceProblem)
        assert problem.name == path.stem
