"""Layer fusion: receptive-field expansion backwards through a chain, and the simulator accepting overlaps."""

from __future__ import annotations

from distplan.models.edgeflow import Layer
from distplan.planners.edgeflow.builder import Part, build_plan
from distplan.planners.edgeflow.evaluator import simulate
from distplan.planners.edgeflow.examples import tiny_problem
from distplan.planners.edgeflow.fusion import fusable_chain, fused_parts


def _stack():
    conv = {"splittable": True, "kernel_rows": 3, "pad_top_rows": 1}
    layers = [
        Layer(name="input", out_rows=8, out_bytes=800),
        Layer(name="c1", inputs=["input"], work_flops=8e6, out_rows=8, out_bytes=8000, **conv),
        Layer(name="c2", inputs=["c1"], work_flops=8e6, out_rows=8, out_bytes=8000, **conv),
        Layer(
            name="pool",
            inputs=["c2"],
            work_flops=1e5,
            out_rows=4,
            out_bytes=4000,
            splittable=True,
            kernel_rows=2,
            stride_rows=2,
        ),
        Layer(name="fc", inputs=["pool"], work_flops=1e6, out_bytes=40),
    ]
    return tiny_problem("stack", layers, [1e7, 1e7], bytes_per_s=1e6)


def test_chain_stops_at_whole_only_layers() -> None:
    """c1 -> c2 -> pool fuse; the fully connected layer ends the chain."""
    assert fusable_chain(_stack(), "c1") == ["c1", "c2", "pool"]


def test_fused_parts_expand_by_the_receptive_field() -> None:
    """Pool rows [2,4) on d1 need c2 rows [4,8), hence c1 rows [3,8): one halo row per 3x3 layer."""
    parts = fused_parts(_stack(), ["c1", "c2", "pool"], [Part("d0", 0, 2), Part("d1", 2, 4)])
    assert parts[2] == [Part("d0", 0, 2), Part("d1", 2, 4)]
    assert parts[1] == [Part("d0", 0, 4), Part("d1", 4, 8)]
    assert parts[0] == [Part("d0", 0, 5), Part("d1", 3, 8)]


def test_fused_plan_moves_only_the_input_slice_and_is_accepted() -> None:
    """With overlapping (recomputed) rows the simulator accepts the plan; only input rows and pooled rows move."""
    problem = _stack()
    fused = fused_parts(problem, ["c1", "c2", "pool"], [Part("d0", 0, 2), Part("d1", 2, 4)])
    parts = {
        "input": [Part("d0", 0, 8)],
        "c1": fused[0],
        "c2": fused[1],
        "pool": fused[2],
        "fc": [Part("d0", 0, 1)],
    }
    plan, _ = build_plan(problem, parts)
    evaluation = simulate(problem, plan)
    assert evaluation.feasible, evaluation.violations
    # input rows [2,8) (c1 on d1 needs [2,8)) = 600 B, pool rows [2,4) back = 2000 B.
    assert evaluation.metrics["bytes_moved"] == 600 + 2000
