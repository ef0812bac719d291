"""Fluid network simulator: hand-computed ring costs and max-min fair sharing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distplan.models.dssync import DssyncPlan
from distplan.models.network import max_min_fair_rates
from distplan.planners.dssync.network_sim import fair_rates, simulate_network

from .conftest import two_rack_problem


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_ring_on_non_blocking_fabric_matches_formula(n: int) -> None:
    """A lone ring costs 2(n-1)/n * M/B + 2(n-1) alpha after the compute step."""
    hosts = [f"h{k}" for k in range(n)]
    problem = two_rack_problem({"a": hosts}, nic=1.25e9, model_bytes=1e8, alpha_s=1e-4)
    trace = simulate_network(problem, DssyncPlan.of_groups([[hosts]]), 2)
    one = 0.1 + 2 * (n - 1) / n * 1e8 / 1.25e9 + 2 * (n - 1) * 1e-4
    assert trace.iteration_end_s[0] == pytest.approx(one, rel=1e-9)
    assert trace.iteration_end_s[1] == pytest.approx(2 * one, rel=1e-9)


def test_two_rings_on_one_link_get_half_each() -> None:
    """Two rings that both cross one uplink share it equally and take twice as long."""
    problem = two_rack_problem({"a": ["a1", "a2"], "b": ["b1", "b2"]}, nic=4e9, uplink=1e9)
    alone = simulate_network(problem, DssyncPlan.of_groups([[["a1", "b1"], ["a2"], ["b2"]]]), 1)
    both = simulate_network(problem, DssyncPlan.of_groups([[["a1", "b1"], ["a2", "b2"]]]), 1)
    # a 2-ring moves 2(2-1)/2 * M = M bytes per hop: alone at 1e9 B/s, shared at 0.5e9 B/s.
    assert alone.iteration_end_s[0] == pytest.approx(0.1 + 1e8 / 1e9)
    assert both.iteration_end_s[0] == pytest.approx(0.1 + 1e8 / 0.5e9)


def test_three_ring_max_min_case() -> None:
    """Progressive filling: X=10 shared by rings 1,2; Y=6 crossed by ring 2 once, ring 3 twice."""
    usage = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    rates = fair_rates(usage, np.array([10.0, 6.0]), np.full(3, math.inf))
    assert rates.tolist() == pytest.approx([8.0, 2.0, 2.0])
    shared = max_min_fair_rates([{"X": 1}, {"X": 1, "Y": 1}, {"Y": 2}], {"X": 10.0, "Y": 6.0})
    assert shared == pytest.approx(rates.tolist())


def test_nic_cap_limits_a_ring() -> None:
    """A flow never runs faster than its slowest member's NIC."""
    rates = fair_rates(np.array([[1.0]]), np.array([10.0]), np.array([3.0]))
    assert rates.tolist() == [3.0]


def test_slow_worker_sets_the_pace_of_its_group() -> None:
    """The last iteration ends when the slow worker's group finishes its compute and ring."""
    problem = two_rack_problem({"a": ["a1", "a2"], "b": ["b1", "b2"]}, nic=1e9, uplink=1e9)
    slow = problem.workers[2].model_copy(update={"compute_s": 1.0})
    workers = [*problem.workers[:2], slow, problem.workers[3]]
    problem = problem.model_copy(update={"workers": workers})
    trace = simulate_network(problem, DssyncPlan.of_groups([[["a1", "a2"], ["b1", "b2"]]]), 3)
    ring = 1e8 / 1e9
    assert trace.iteration_end_s == pytest.approx([1.0 + ring, 2 * (1.0 + ring), 3 * (1.0 + ring)])


def test_hierarchical_group_runs_three_phases() -> None:
    """2 racks x 2: rack reduce (M/B), leader ring (2(2-1)/2 M/B), rack broadcast (M/B), plus latency."""
    problem = two_rack_problem(
        {"a": ["a1", "a2"], "b": ["b1", "b2"]}, nic=1e9, uplink=1e9, alpha_s=1e-3
    )
    plan = DssyncPlan.of_groups([[["a1", "a2", "b1", "b2"]]], "hierarchical")
    trace = simulate_network(problem, plan, 1)
    expected = 0.1 + (1e-3 + 0.1) + (2e-3 + 0.1) + (1e-3 + 0.1)
    assert trace.iteration_end_s[0] == pytest.approx(expected, rel=1e-9)


def test_background_trace_slows_a_ring_while_it_lasts() -> None:
    """A trace taking 3/4 of a shared uplink for the first second quarters the ring's rate then."""
    from distplan.models.dssync import BackgroundLoad

    problem = two_rack_problem(
        {"a": ["a1"], "b": ["b1"]}, nic=1e9, uplink=1e9, compute_s=0.5, model_bytes=3e8
    )
    load = BackgroundLoad(
        source="tor-a", target="spine", trace_bytes_per_s=[0.75e9, 0.0], trace_step_s=1.0
    )
    problem = problem.model_copy(update={"background": [load]})
    trace = simulate_network(problem, DssyncPlan.of_groups([[["a1", "b1"]]]), 1)
    # 3e8 bytes per hop: 0.5 s at 0.25e9 B/s moves 1.25e8, the rest at 1e9 B/s takes 0.175 s.
    assert trace.iteration_end_s[0] == pytest.approx(1.175, rel=1e-9)
