"""Layer fusion: receptive-field expansion backwards through a chain, and the simulator accepting overlaps."""

from __future__ import annotations

from distplan.planners.edgeflow.builder import Part, build_plan
from distplan.planners.edgeflow.evaluator import simulate
from distplan.planners.edgeflow.fusion import fusable_chain, fused_parts

from .conftest import conv_stack


def test_chain_stops_at_whole_only_layers() -> None:
    """c1 -> c2 -> pool fuse; the fully connected layer ends the chain."""
    assert fusable_chain(conv_stack(), "c1") == ["c1", "c2", "pool"]


def test_fused_parts_expand_by_the_receptive_field() -> None:
    """Pool rows [2,4) on d1 need c2 rows [4,8), hence c1 rows [3,8): one halo row per 3x3 layer."""
    parts = fused_parts(conv_stack(), ["c1", "c2", "pool"], [Part("d0", 0, 2), Part("d1", 2, 4)])
    assert parts[2] == [Part("d0", 0, 2), Part("d1", 2, 4)]
    assert parts[1] == [Part("d0", 0, 4), Part("d1", 4, 8)]
    assert parts[0] == [Part("d0", 0, 5), Part("d1", 3, 8)]


def test_fused_plan_moves_only_the_input_slice_and_is_accepted() -> None:
    """With overlapping (recomputed) rows the simulator accepts the plan; only input rows and pooled rows move."""
    problem = conv_stack()
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
