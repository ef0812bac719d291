"""The independent simulator against hand-computed timelines and broken plans."""

from __future__ import annotations

import pytest

from distplan.models.edgeflow import Layer
from distplan.planners.edgeflow.evaluator import simulate
from distplan.planners.edgeflow.examples import chain_layers, tiny_problem

from .conftest import plan, unit


def _with(problem, **changes):
    """A validated copy of ``problem`` with top-level fields replaced (model_copy would keep caches)."""
    return type(problem).model_validate({**problem.model_dump(), **changes})


def _chain(**kwargs):
    return tiny_problem("chain", chain_layers(), [1e7, 1e7], **kwargs)


def _chain_split_plan():
    return plan(
        d0=[
            unit("input", 0, 4, sends=[(1, 4, "d1")]),
            unit("conv", 0, 2, needs=[("input", 0, 3, "d0")]),
            unit("fc", 0, 1, needs=[("conv", 0, 2, "d0"), ("conv", 2, 4, "d1")]),
        ],
        d1=[unit("conv", 2, 4, needs=[("input", 1, 4, "d0")], sends=[(2, 4, "d0")])],
    )


def test_chain_split_over_two_devices_matches_hand_timeline() -> None:
    """Halo rows [1,4) reach d1 at 3 ms, its half is back at 205 ms, fc ends at 305 ms."""
    evaluation = simulate(_chain(), _chain_split_plan())
    assert evaluation.feasible, evaluation.violations
    # input -> d1: 3000 B / 1e6 B/s = 0.003; conv halves 0.2 s each; 2000 B back: 0.002; fc 0.1 s.
    assert evaluation.objective == pytest.approx(0.305)
    assert evaluation.metrics["bytes_moved"] == pytest.approx(5000)
    assert evaluation.metrics["busy_s"] == pytest.approx({"d0": 0.3, "d1": 0.2})


def test_link_latency_adds_per_route() -> None:
    """Each route d -> hub -> d' adds both links' latency to every transfer."""
    evaluation = simulate(_chain(latency_s=0.001), _chain_split_plan())
    assert evaluation.objective == pytest.approx(0.305 + 2 * 0.002)


def _diamond():
    layers = [
        Layer(name="input", out_rows=1, out_bytes=1000),
        Layer(name="left", inputs=["input"], work_flops=3e6, out_bytes=1000),
        Layer(name="right", inputs=["input"], work_flops=3e6, out_bytes=1000),
        Layer(name="join", inputs=["left", "right"], work_flops=1e6, out_bytes=100),
    ]
    return tiny_problem("diamond", layers, [1e7, 1e7], bytes_per_s=1e6, latency_s=1e-4)


def test_diamond_branches_run_concurrently() -> None:
    """The right branch on d1 overlaps the left on d0; join waits for its result (402.4 ms)."""
    diamond = plan(
        d0=[
            unit("input", 0, 1, sends=[(0, 1, "d1")]),
            unit("left", 0, 1, needs=[("input", 0, 1, "d0")]),
            unit("join", 0, 1, needs=[("left", 0, 1, "d0"), ("right", 0, 1, "d1")]),
        ],
        d1=[unit("right", 0, 1, needs=[("input", 0, 1, "d0")], sends=[(0, 1, "d0")])],
    )
    evaluation = simulate(_diamond(), diamond)
    assert evaluation.feasible, evaluation.violations
    # input at d1: 0.001 + 0.0002; right ends 0.3012; back at 0.3024; join 0.1 s.
    assert evaluation.objective == pytest.approx(0.4024)


def _concat(shared: bool):
    layers = [
        Layer(name="input", out_rows=2, out_bytes=2000),
        Layer(
            name="a", inputs=["input"], work_flops=1e6, out_rows=2, out_bytes=2000, splittable=True
        ),
        Layer(
            name="b", inputs=["input"], work_flops=1e6, out_rows=2, out_bytes=2000, splittable=True
        ),
        Layer(name="concat", inputs=["a", "b"], out_rows=2, out_bytes=4000, splittable=True),
    ]
    return tiny_problem("concat", layers, [1e7, 1e7, 1e7], bytes_per_s=1e6, shared=shared)


def _concat_plan():
    return plan(
        d0=[
            unit("input", 0, 2, sends=[(0, 2, "d1"), (0, 2, "d2")]),
            unit("concat", 0, 2, needs=[("a", 0, 2, "d1"), ("b", 0, 2, "d2")]),
        ],
        d1=[unit("a", 0, 2, needs=[("input", 0, 2, "d0")], sends=[(0, 2, "d0")])],
        d2=[unit("b", 0, 2, needs=[("input", 0, 2, "d0")], sends=[(0, 2, "d0")])],
    )


def test_concat_transfers_share_the_wireless_medium() -> None:
    """On one WLAN the two input copies and the two results go one after another (208 ms)."""
    evaluation = simulate(_concat(shared=True), _concat_plan())
    assert evaluation.feasible, evaluation.violations
    # input: d1 gets it at 0.002, d2 at 0.004; a ends 0.102, b 0.104; a back 0.104, b back 0.106.
    assert evaluation.objective == pytest.approx(0.106)


def test_switch_ports_still_serialise_on_the_shared_link() -> None:
    """Through a switch the two input copies go in parallel, but both results share link hub -> d0."""
    evaluation = simulate(_concat(shared=False), _concat_plan())
    # d0 -> hub link is shared by both input copies (0.002, 0.004); results share hub -> d0.
    assert evaluation.objective == pytest.approx(0.106)


def test_missing_halo_rows_are_rejected() -> None:
    """A unit that does not require the halo rows its receptive field needs is rejected."""
    bad = plan(
        d0=[
            unit("input", 0, 4, sends=[(2, 4, "d1")]),
            unit("conv", 0, 2, needs=[("input", 0, 3, "d0")]),
            unit("fc", 0, 1, needs=[("conv", 0, 2, "d0"), ("conv", 2, 4, "d1")]),
        ],
        d1=[unit("conv", 2, 4, needs=[("input", 2, 4, "d0")], sends=[(2, 4, "d0")])],
    )
    evaluation = simulate(_chain(), bad)
    assert not evaluation.feasible
    assert any("missing input rows [1, 4)" in v for v in evaluation.violations)


def test_uncovered_rows_partial_whole_layer_and_broken_pins_are_rejected() -> None:
    """Rows no unit computes, a split whole-only layer and a broken pin are each named."""
    problem = _with(_chain(), pins={"conv": "d1"})
    bad = plan(
        d0=[
            unit("input", 0, 4),
            unit("conv", 0, 2, needs=[("input", 0, 3, "d0")]),
            unit("fc", 0, 1, needs=[("conv", 0, 2, "d0")]),
        ]
    )
    violations = simulate(problem, bad).violations
    assert any("rows not covered" in v and "'conv'" in v for v in violations)
    assert any("missing input rows [0, 4) of 'conv'" in v for v in violations)
    assert any("pinned to 'd1'" in v for v in violations)
    partial = plan(
        d0=[
            unit("input", 0, 4),
            unit("conv", 0, 4, needs=[("input", 0, 4, "d0")]),
            unit("fc", 0, 1, needs=[("conv", 0, 4, "d0")]),
        ]
    )
    assert simulate(_chain(), partial).feasible
    whole_only = Layer(name="fc", inputs=["conv"], work_flops=1e6, out_rows=2, out_bytes=40)
    problem2 = _with(
        _chain(), layers=[layer.model_dump() for layer in [*_chain().layers[:2], whole_only]]
    )
    split_fc = plan(
        d0=[
            unit("input", 0, 4),
            unit("conv", 0, 4, needs=[("input", 0, 4, "d0")]),
            unit("fc", 0, 1, needs=[("conv", 0, 4, "d0")]),
        ]
    )
    assert any("not splittable" in v for v in simulate(problem2, split_fc).violations)


def test_unmatched_forwarding_and_requirements_are_rejected() -> None:
    """A forward nobody requires, and a requirement nobody forwards, are both violations."""
    bad = plan(
        d0=[
            unit("input", 0, 4, sends=[(0, 4, "d1")]),
            unit("conv", 0, 4, needs=[("input", 0, 4, "d0")]),
            unit("fc", 0, 1, needs=[("conv", 0, 4, "d1")]),
        ],
    )
    violations = simulate(_chain(), bad).violations
    assert any("which does not require them" in v for v in violations)
    assert any("which has no forwarding entry" in v for v in violations)


def test_deadlock_is_reported() -> None:
    """Units waiting on each other across devices are reported as a deadlock, not hung."""
    layers = [
        Layer(name="input", out_bytes=10),
        Layer(name="a", inputs=["input"], work_flops=1e3, out_bytes=10),
        Layer(name="b", inputs=["a"], work_flops=1e3, out_bytes=10),
        Layer(name="c", inputs=["b"], work_flops=1e3, out_bytes=10),
    ]
    problem = tiny_problem("dl", layers, [1e7, 1e7])
    bad = plan(
        d0=[
            unit("input", 0, 1),
            unit("c", 0, 1, needs=[("b", 0, 1, "d1")]),
            unit("a", 0, 1, needs=[("input", 0, 1, "d0")], sends=[(0, 1, "d1")]),
        ],
        d1=[unit("b", 0, 1, needs=[("a", 0, 1, "d0")], sends=[(0, 1, "d0")])],
    )
    evaluation = simulate(problem, bad)
    assert not evaluation.feasible
    assert any("deadlock" in v for v in evaluation.violations)


def test_memory_and_undelivered_output_are_rejected() -> None:
    """Weights beyond a device's memory, and an output left on another device, are violations."""
    layers = [
        Layer(name="input", out_bytes=10),
        Layer(name="fc", inputs=["input"], work_flops=1e3, out_bytes=10, weight_bytes=5e9),
    ]
    problem = tiny_problem("mem", layers, [1e7, 1e7])
    devices = problem.model_dump()["devices"]
    devices[1]["memory_bytes"] = 1e9
    bad = plan(
        d0=[unit("input", 0, 1, sends=[(0, 1, "d1")])],
        d1=[unit("fc", 0, 1, needs=[("input", 0, 1, "d0")])],
    )
    violations = simulate(_with(problem, devices=devices), bad).violations
    assert any("weights need" in v for v in violations)
    undelivered = simulate(problem, bad)
    assert any("not every row reaches" in v for v in undelivered.violations)
