"""The dssync problem and plan: validation messages name the field and the reason."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from distplan.models.dssync import DssyncPlan, DssyncProblem, plan_violations

NETWORK = {
    "nodes": [
        {"name": "sw"},
        {"name": "h0", "role": "compute"},
        {"name": "h1", "role": "compute"},
    ],
    "links": [
        {"source": "h0", "target": "sw", "bandwidth_bytes_per_s": 1e9},
        {"source": "h1", "target": "sw", "bandwidth_bytes_per_s": 1e9},
    ],
}
TASK = {
    "dimension": 4,
    "samples_per_worker": 8,
    "learning_rate": 0.1,
    "batch_size": 4,
    "target_loss": 0.5,
    "max_iterations": 10,
}


def problem_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "p",
        "network": NETWORK,
        "workers": [
            {"name": "a", "host": "h0", "rack": "r", "nic_bytes_per_s": 1e9, "compute_s": 0.1},
            {"name": "b", "host": "h1", "rack": "r", "nic_bytes_per_s": 1e9, "compute_s": 0.1},
        ],
        "model_bytes": 1e6,
        "training": TASK,
    }
    data.update(changes)
    return data


def error_text(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        DssyncProblem.model_validate(data)
    return str(info.value)


def test_valid_problem_loads() -> None:
    """A well-formed instance validates and keeps its kind."""
    assert DssyncProblem.model_validate(problem_data()).kind == "dssync"


def test_duplicate_worker_is_named() -> None:
    """Two workers with one name are rejected with the index."""
    workers = problem_data()["workers"]
    text = error_text(problem_data(workers=[workers[0], {**workers[1], "name": "a"}]))
    assert "workers[1].name: duplicate worker name 'a'" in text


def test_unknown_host_is_named() -> None:
    """A worker on a node the network lacks is rejected."""
    workers = problem_data()["workers"]
    text = error_text(problem_data(workers=[workers[0], {**workers[1], "host": "x"}]))
    assert "workers[1].host: unknown network node 'x'" in text


def test_worker_on_a_switch_is_rejected() -> None:
    """Workers run on compute nodes only."""
    workers = problem_data()["workers"]
    assert "not a compute node" in error_text(problem_data(workers=[{**workers[0], "host": "sw"}]))


@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0, 0.0])
def test_non_finite_or_non_positive_compute_rejected(value: float) -> None:
    """compute_s must be a positive finite number of seconds."""
    workers = problem_data()["workers"]
    text = error_text(problem_data(workers=[{**workers[0], "compute_s": value}, workers[1]]))
    assert "compute_s" in text


def test_background_that_fills_the_link_is_rejected() -> None:
    """Background load at or above the link's capacity leaves nothing: say so."""
    load = {"source": "h0", "target": "sw", "bytes_per_s": 1e9}
    assert "leaves no capacity" in error_text(problem_data(background=[load]))


def test_background_on_missing_link_is_rejected() -> None:
    """Background traffic must sit on an existing directed link."""
    load = {"source": "h0", "target": "h1", "bytes_per_s": 1.0}
    assert "background[0]: no directed link 'h0' -> 'h1'" in error_text(
        problem_data(background=[load])
    )


def test_batch_larger_than_samples_is_rejected() -> None:
    """A minibatch cannot exceed a worker's samples."""
    text = error_text(problem_data(training={**TASK, "batch_size": 9}))
    assert "batch_size: 9 exceeds samples_per_worker 8" in text


def test_unreachable_hosts_are_rejected() -> None:
    """Every pair of worker hosts must be connected."""
    network = {**NETWORK, "links": NETWORK["links"][:1]}
    assert "no route from host" in error_text(problem_data(network=network))


def test_plan_violations_name_the_field() -> None:
    """Unknown, repeated and missing workers are reported with their place in the plan."""
    problem = DssyncProblem.model_validate(problem_data())
    plan = DssyncPlan.of_groups([[["a", "x"], ["a"]]])
    assert plan_violations(problem, plan) == [
        "partitions[0].groups[0].members[1]: unknown worker 'x'",
        "partitions[0].groups[1].members[0]: worker 'a' is already in group 0",
        "partitions[0]: workers 'b' are in no group",
    ]
    assert plan_violations(problem, DssyncPlan.of_groups([[["b", "a"]]])) == []


def test_plan_rejects_unknown_algorithm() -> None:
    """A group algorithm other than ring or hierarchical is a validation error."""
    with pytest.raises(ValidationError, match="algorithm"):
        DssyncPlan.model_validate(
            {"partitions": [{"groups": [{"members": ["a"], "algorithm": "tree"}]}]}
        )
