"""Pipeline problem model: validation messages and derived graph facts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from distplan.models import parse_instance
from distplan.models.errors import BadInput
from distplan.models.pipeline import Cluster, PipelineLayer, PipelineProblem

GPU = {"name": "g", "memory_bytes": 1e9, "speed": 1.0}


def layer(name: str) -> dict:
    return {
        "name": name,
        "forward_s": 1.0,
        "backward_s": 2.0,
        "activation_bytes": 10,
        "parameter_bytes": 5,
    }


def problem_dict(**overrides) -> dict:
    data = {
        "kind": "pipeline",
        "name": "p",
        "layers": [layer("a"), layer("b"), layer("c")],
        "edges": [[2, 1], [0, 2]],
        "cluster": {
            "gpus": [dict(GPU, name="g0"), dict(GPU, name="g1")],
            "bandwidth_bytes_per_s": [[0, 1e9], [1e9, 0]],
        },
        "microbatches": 2,
    }
    data.update(overrides)
    return data


def test_topological_order_and_neighbours() -> None:
    """Topological order follows the edges, not the layer indices."""
    problem = parse_instance(problem_dict())
    assert isinstance(problem, PipelineProblem)
    assert problem.topological_order == [0, 2, 1]
    assert problem.successors[0] == [2] and problem.predecessors[1] == [2]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"edges": [[0, 1], [1, 0]]}, "cycle"),
        ({"edges": [[0, 7]]}, "out of range"),
        ({"edges": [[1, 1]]}, "self-loop"),
        ({"microbatches": 0}, "greater than 0"),
        ({"layers": [dict(layer("a"), forward_s=-1)]}, "greater than or equal to 0"),
        ({"layers": [dict(layer("a"), flops=3)]}, "Extra inputs"),
    ],
)
def test_invalid_problem_messages(overrides: dict, message: str) -> None:
    """Malformed instances raise a ValidationError whose message says why."""
    with pytest.raises(ValidationError, match=message):
        parse_instance(problem_dict(**overrides))


def test_cluster_shape_and_connectivity() -> None:
    """A wrong-sized matrix or a disconnected GPU is rejected naming the field."""
    with pytest.raises(ValidationError, match="bandwidth_bytes_per_s must be a 2x2"):
        Cluster(gpus=[GPU | {"name": "a"}, GPU | {"name": "b"}], bandwidth_bytes_per_s=[[0, 1]])
    with pytest.raises(ValidationError, match=r"GPUs \[1\] are not connected"):
        Cluster(
            gpus=[GPU | {"name": "a"}, GPU | {"name": "b"}], bandwidth_bytes_per_s=[[0, 0], [0, 0]]
        )


def test_kind_discriminates() -> None:
    """An unknown kind is rejected naming the field and the known kinds."""
    with pytest.raises(
        BadInput, match="kind: unknown problem kind 'nope'; known kinds: .*pipeline"
    ):
        parse_instance(problem_dict(kind="nope"))


def test_layer_is_frozen() -> None:
    """Models are immutable."""
    item = PipelineLayer(**layer("a"))
    with pytest.raises(ValidationError):
        item.forward_s = 3.0  # type: ignore[misc]


def network_cluster(**overrides) -> dict:
    data = {
        "gpus": [dict(GPU, name="g0", server="s0"), dict(GPU, name="g1", server="s1")],
        "network": {
            "nodes": [
                {"name": "g0", "role": "compute"},
                {"name": "g1", "role": "compute"},
                {"name": "switch"},
            ],
            "links": [
                {"source": "g0", "target": "switch", "bandwidth_bytes_per_s": 1e9},
                {"source": "g1", "target": "switch", "bandwidth_bytes_per_s": 1e9},
            ],
        },
    }
    data.update(overrides)
    return data


def test_network_form_loads_and_routes_through_the_switch() -> None:
    """A cluster in the network form validates; GPU routes cross the switch."""
    cluster = Cluster.model_validate(network_cluster())
    route = cluster.route(0, 1)
    assert route is not None and route.nodes == ("g0", "switch", "g1")
    assert cluster.server_of_gpu == ["s0", "s1"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bandwidth_bytes_per_s": [[0, 1e9], [1e9, 0]]}, "exactly one of network"),
        ({"gpus": [dict(GPU, name="g0"), dict(GPU, name="g0")]}, r"gpus\[1\]\.name: duplicate"),
        ({"gpus": [dict(GPU, name="g0"), dict(GPU, name="g1", node="switch")]}, r"gpus\[1\]\.node"),
        ({"gpus": [dict(GPU, name="g0"), dict(GPU, name="g1", node="g0")]}, "already hosts"),
        ({"gpus": [dict(GPU, name="g0"), dict(GPU, name="g1", speed=float("inf"))]}, "finite"),
    ],
)
def test_network_form_errors_name_the_field(overrides: dict, message: str) -> None:
    """A bad network-form cluster is rejected with a message naming the field."""
    with pytest.raises(ValidationError, match=message):
        Cluster.model_validate(network_cluster(**overrides))


def test_samples_per_microbatch_must_be_a_positive_whole_number() -> None:
    """N is a whole number >= 1; fractions and zero are rejected."""
    assert parse_instance(problem_dict(samples_per_microbatch=8)).samples_per_microbatch == 8
    for bad in (0, 2.5):
        with pytest.raises(ValidationError, match="samples_per_microbatch"):
            parse_instance(problem_dict(samples_per_microbatch=bad))
