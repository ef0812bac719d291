"""Ours (progressive partitioning): placement orders, arrival-time re-sharing, rebalanced layouts, the pass portfolio."""

from __future__ import annotations

import distplan
from distplan.models.edgeflow import Layer
from distplan.planners.edgeflow.builder import Part, PlanBuilder, whole
from distplan.planners.edgeflow.evaluator import simulate
from distplan.planners.edgeflow.examples import chain_layers, tiny_problem
from distplan.planners.edgeflow.fusion import arrival_shares, fused_parts
from distplan.planners.edgeflow.progressive import level_order, placement_orders, portfolio
from distplan.planners.edgeflow.rollout import follow_trial
from distplan.solvers.registry import solvers

from .conftest import conv_stack

BASELINES = [spec.name for spec in solvers("edgeflow") if spec.role.value == "baseline"]


def _two_branches():
    """input -> a1 -> a2 and input -> b1 -> b2, joined: listing order puts branch a first."""
    conv = {"splittable": True, "out_rows": 4, "out_bytes": 4000, "work_flops": 4e6}
    layers = [
        Layer(name="input", out_rows=4, out_bytes=4000),
        Layer(name="a1", inputs=["input"], **conv),
        Layer(name="a2", inputs=["a1"], **conv),
        Layer(name="b1", inputs=["input"], **conv),
        Layer(name="b2", inputs=["b1"], **conv),
        Layer(name="join", inputs=["a2", "b2"], work_flops=1e6, out_bytes=40),
    ]
    return tiny_problem("branches", layers, [1e7, 1e7])


def _even_fused_trials(problem):
    """The stack's conv-conv-pool chain fused, pooled rows split 2/2 over d0 and d1 (input on d0)."""
    builder = PlanBuilder(problem)
    builder.place("input", whole(problem, "input", "d0"))
    chain = ["c1", "c2", "pool"]
    trials = []
    for name, parts in zip(
        chain, fused_parts(problem, chain, [Part("d0", 0, 2), Part("d1", 2, 4)]), strict=True
    ):
        trials.append(builder.trial(name, parts))
        builder.commit(trials[-1], record=False)
    return trials


def test_level_order_interleaves_parallel_branches_and_is_topological() -> None:
    """Level order runs a1, b1 before a2, b2; the problem's own order keeps branch a together."""
    problem = _two_branches()
    assert problem.topological_names == ["input", "a1", "a2", "b1", "b2", "join"]
    assert level_order(problem) == ["input", "a1", "b1", "a2", "b2", "join"]
    assert list(placement_orders(problem)) == ["level", "topological"]
    chain = tiny_problem("chain", chain_layers(), [1e7, 1e7])
    assert list(placement_orders(chain)) == ["level"]  # a chain has one order: no duplicate passes


def test_portfolio_runs_every_plain_pass_before_any_roll_out() -> None:
    """Plain passes (every width, both orders) come first, so a time limit cuts only roll-outs."""
    passes = portfolio(_two_branches(), lookahead=8)
    depths = [p.lookahead for p in passes]
    assert depths == sorted(depths, key=lambda depth: depth > 0)
    plain = {(p.order, p.max_split) for p in passes if p.lookahead == 0}
    assert plain == {(o, w) for o in ("level", "topological") for w in (1, 2)}
    assert {p.share_refinements for p in passes if p.lookahead > 0} == {0, 2}
    assert passes[-1].fused_layers > passes[0].fused_layers  # long fused chains come last
    assert all(p.lookahead == 0 for p in portfolio(_two_branches(), lookahead=0))


def test_a_slice_that_arrives_late_gets_fewer_rows() -> None:
    """Fused split over d0 (holds the input) and d1: with a 0.5 s input transfer d1 gets 1 of 4 rows.

    Even split: both spend 0.9 s per 2 pooled rows (0.45 s/row); d1 starts at 0.5 s.
    Water-fill: 0.45 x0 = 0.5 + 0.45 x1, x0 + x1 = 4 -> x0 = 2.56, x1 = 1.44 -> [3, 1].
    """
    slow = conv_stack(bytes_per_s=1e3)
    assert arrival_shares(slow, _even_fused_trials(slow), ["d0", "d1"], 4) == [3, 1]
    fast = conv_stack(bytes_per_s=1e9)  # the slice arrives at once: the split stays even
    assert arrival_shares(fast, _even_fused_trials(fast), ["d0", "d1"], 4) == [2, 2]


def test_balanced_follow_reshares_an_uneven_layout_by_speed() -> None:
    """A 3/1 layout on equal devices is kept as 3/1, or rebalanced to 2/2 with balanced=True."""
    problem = conv_stack(bytes_per_s=1e6)
    builder = PlanBuilder(problem)
    builder.place("input", whole(problem, "input", "d0"))
    builder.place("c1", [Part("d0", 0, 6), Part("d1", 6, 8)])
    kept = follow_trial(builder, "c2", balanced=False)
    balanced = follow_trial(builder, "c2", balanced=True)
    assert [(u.device, u.start, u.stop) for u in kept.units] == [("d0", 0, 6), ("d1", 6, 8)]
    assert [(u.device, u.start, u.stop) for u in balanced.units] == [("d0", 0, 4), ("d1", 4, 8)]


def test_ours_is_never_slower_than_the_whole_model_on_one_device() -> None:
    """On a network too slow to split over, ours keeps the whole model on the input device."""
    problem = conv_stack(bytes_per_s=10.0)
    result = distplan.solve(problem, "edgeflow")
    single = distplan.solve(problem, "single-device")
    assert result.objective <= single.objective * (1 + 1e-9)
    assert simulate(problem, result.plan).metrics["bytes_moved"] == 0


def test_shipped_inception_v3_on_four_pis_meets_the_latency_goal(repo) -> None:
    """On Inception-v3 over four Pis and one 50 Mbit/s WLAN, ours beats every baseline and the best single device by >= 30 %."""
    problem = distplan.load_instance(
        repo / "instances" / "edgeflow" / "inception_v3__rpi4x4-wifi.json"
    )
    ours = distplan.solve(problem, "edgeflow").objective
    for baseline in BASELINES:
        assert ours <= distplan.solve(problem, baseline).objective * (1 + 1e-9), baseline
    assert ours <= 0.7 * distplan.solve(problem, "single-device").objective
