"""The edgeflow problem model: validation messages and the receptive-field rule."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

import distplan
from distplan.models.edgeflow import EdgeflowProblem, Layer, required_rows
from distplan.planners.edgeflow.examples import chain_layers, tiny_problem


def _raw() -> dict:
    return json.loads(tiny_problem("t", chain_layers(), [1e9, 1e9]).model_dump_json())


def _message(raw: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        EdgeflowProblem.model_validate(raw)
    return str(caught.value)


def test_instance_round_trips_through_the_kind_registry(tmp_path) -> None:
    """A problem written as JSON loads back, by its kind, as the same problem."""
    problem = tiny_problem("t", chain_layers(), [1e9, 1e9])
    path = tmp_path / "t.json"
    path.write_text(problem.model_dump_json())
    assert distplan.load_instance(path) == problem


def test_unknown_producer_is_named() -> None:
    """An input naming a missing layer is rejected with its index and name."""
    raw = _raw()
    raw["layers"][1]["inputs"] = ["nope"]
    assert "layers[1].inputs[0]: unknown layer 'nope'" in _message(raw)


def test_duplicate_layer_and_cycle_are_rejected() -> None:
    """Duplicate layer names and cyclic inputs are rejected with the reason."""
    raw = _raw()
    raw["layers"][1]["name"] = "input"
    assert "duplicate layer name 'input'" in _message(raw)
    raw = _raw()
    raw["layers"].append({"name": "x", "inputs": ["y"], "work_flops": 1.0})
    raw["layers"].append({"name": "y", "inputs": ["x"], "work_flops": 1.0})
    assert "cycle" in _message(raw)


def test_non_finite_and_negative_numbers_are_rejected() -> None:
    """NaN/inf speeds and negative work never enter a problem."""
    for bad in (math.nan, math.inf, -1.0, 0.0):
        raw = _raw()
        raw["devices"][0]["flops_per_s"] = bad
        assert "flops_per_s" in _message(raw)
    raw = _raw()
    raw["layers"][1]["work_flops"] = -5.0
    assert "work_flops" in _message(raw)


def test_device_must_be_a_compute_node_and_pins_known() -> None:
    """Devices reference compute nodes of the network; pins name known layers and devices."""
    raw = _raw()
    raw["devices"][1]["name"] = "hub"
    assert "unknown compute node 'hub'" in _message(raw)
    raw = _raw()
    raw["pins"] = {"conv": "d9"}
    assert "unknown device 'd9'" in _message(raw)
    raw = _raw()
    raw["input_device"] = "zz"
    assert "input_device: unknown device 'zz'" in _message(raw)


def test_input_tensor_has_no_work() -> None:
    """A layer without inputs is the input tensor and may not carry work."""
    raw = _raw()
    raw["layers"][0]["work_flops"] = 5.0
    assert "must have no work" in _message(raw)


@pytest.mark.parametrize(
    ("kernel", "stride", "pad", "rows", "producer_rows", "expected"),
    [
        (3, 1, 1, (0, 2), 4, (0, 3)),  # SAME 3x3: one halo row below, padding above
        (3, 1, 1, (2, 4), 4, (1, 4)),  # last rows: one halo row above, padding below
        (3, 2, 0, (1, 3), 9, (2, 7)),  # VALID 3x3 stride 2: rows 2*1 .. 2*2+3
        (3, 2, 1, (0, 1), 8, (0, 2)),  # stride 2 with top padding: clipped at 0
        (7, 1, 3, (5, 6), 8, (2, 8)),  # 7x1 kernel: three halo rows each side, clipped
        (1, 1, 0, (3, 5), 8, (3, 5)),  # element-wise / concat: the same rows
    ],
)
def test_receptive_field_rows(kernel, stride, pad, rows, producer_rows, expected) -> None:
    """Output rows need exactly the input rows their windows touch, clipped to the input."""
    producer = Layer(name="p", out_rows=producer_rows, out_bytes=1.0)
    layer = Layer(
        name="c",
        inputs=["p"],
        work_flops=1.0,
        out_rows=8,
        splittable=True,
        kernel_rows=kernel,
        stride_rows=stride,
        pad_top_rows=pad,
    )
    assert required_rows(layer, producer, *rows) == expected


def test_whole_only_layer_needs_every_input_row() -> None:
    """A non-splittable layer (fully connected) needs all rows of its input."""
    producer = Layer(name="p", out_rows=7, out_bytes=1.0)
    layer = Layer(name="fc", inputs=["p"], work_flops=1.0)
    assert required_rows(layer, producer, 0, 1) == (0, 7)
