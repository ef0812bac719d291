"""``milp-split``: plans and bounds on hand-computed cases, never worse than ours, time limits, determinism."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import distplan
from distplan.models.edgeflow import Layer
from distplan.models.errors import BadInput
from distplan.models.result import HAS_PLAN, SolveStatus
from distplan.planners.edgeflow.bounds import latency_lower_bound
from distplan.planners.edgeflow.evaluator import simulate
from distplan.planners.edgeflow.examples import example_problems, tiny_problem

EXAMPLES = {problem.name: (problem, optimum) for problem, optimum in example_problems()}


@pytest.fixture(scope="module")
def results():
    return {
        (name, solver): distplan.solve(problem, solver, time_limit=20, seed=0)
        for name, (problem, _) in EXAMPLES.items()
        for solver in ("milp-split", "edgeflow")
    }


def test_chain_on_one_device_is_proven_optimal(results) -> None:
    """Chain on one device: plan 0.5 s (all work at 1e7 FLOP/s) meets the proven bound: OPTIMAL."""
    result = results[("chain-1dev", "milp-split")]
    assert result.status is SolveStatus.OPTIMAL
    assert result.objective == pytest.approx(0.5, rel=1e-9)
    assert result.bound == pytest.approx(0.5, rel=1e-6)


def test_diamond_plan_is_the_known_optimum_but_not_claimed_optimal(results) -> None:
    """Diamond: the MILP's own plan reaches the optimum 0.40011 s; the proven bound 0.4 s leaves a gap, so FEASIBLE."""
    result = results[("diamond-2dev", "milp-split")]
    assert result.metrics["milp_plan_latency_s"] == pytest.approx(0.40011, rel=1e-9)
    assert result.objective == pytest.approx(0.40011, rel=1e-9)
    assert result.bound == pytest.approx(0.4, rel=1e-6)
    assert result.status is SolveStatus.FEASIBLE


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_never_worse_than_edgeflow_and_bound_is_below(results, name: str) -> None:
    """Plan accepted by the simulator, latency <= edgeflow's, bound between closed form and latency."""
    problem, optimum = EXAMPLES[name]
    result = results[(name, "milp-split")]
    assert result.status in HAS_PLAN, result.reason
    assert simulate(problem, result.plan).objective == pytest.approx(result.objective, rel=1e-9)
    assert result.objective <= results[(name, "edgeflow")].objective * (1 + 1e-9)
    assert latency_lower_bound(problem) <= result.bound * (1 + 1e-9)
    assert result.bound <= result.objective * (1 + 1e-9)
    if optimum is not None:
        assert result.objective >= optimum * (1 - 1e-9)


def test_relaxation_bound_counts_the_input_the_fast_device_must_receive() -> None:
    """Slow input device (1 s per conv row), fast helper, 1e5 B per input row at 1e6 B/s.

    Every plan either computes a conv row on the input device (>= 1 s) or ships
    all 8 input rows (0.8 s) and returns 40 B of output (4e-5 s): the
    relaxation proves 0.80004 s, ten times the closed form.
    """
    layers = [
        Layer(name="input", out_rows=8, out_bytes=8e5),
        Layer(
            name="conv",
            inputs=["input"],
            work_flops=8e6,
            out_rows=8,
            out_bytes=8e5,
            splittable=True,
            kernel_rows=3,
            pad_top_rows=1,
        ),
        Layer(name="fc", inputs=["conv"], work_flops=1e5, out_rows=1, out_bytes=40),
    ]
    problem = tiny_problem("offload", layers, [1e6, 1e8], bytes_per_s=1e6)
    result = distplan.solve(problem, "milp-split", time_limit=20, seed=0)
    assert result.metrics["relaxation_bound_s"] == pytest.approx(0.80004, rel=1e-5)
    assert latency_lower_bound(problem) < 0.1
    assert result.bound == pytest.approx(0.80004, rel=1e-5)
    assert result.bound <= result.objective


def test_time_limit_returns_a_plan(repo) -> None:
    """A 0.3 s limit on VGG-16 (six devices) still returns an accepted plan, flagged time_limit."""
    problem = distplan.load_instance(
        repo / "instances" / "edgeflow" / "vgg16__jetson2-rpi4-wifi.json"
    )
    result = distplan.solve(problem, "milp-split", time_limit=0.3, seed=0)
    assert result.status is SolveStatus.TIME_LIMIT
    assert simulate(problem, result.plan).feasible
    assert result.bound is not None and result.bound <= result.objective


def test_same_seed_same_plan_across_hash_seeds() -> None:
    """The concat example gives the same plan in a process with another PYTHONHASHSEED."""
    code = (
        "import distplan;from distplan.planners.edgeflow.examples import example_problems;"
        "p=example_problems()[3][0];print(distplan.solve(p,'milp-split',seed=0).plan.model_dump_json())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    here = distplan.solve(EXAMPLES["concat-3dev"][0], "milp-split", seed=0).plan
    assert completed.stdout.strip() == here.model_dump_json()


@pytest.mark.parametrize(
    ("option", "value"), [("relaxation_share", 1.5), ("max_groups", 0), ("max_groups", "many")]
)
def test_bad_options_name_the_field(option: str, value: object) -> None:
    """An out-of-range option is rejected with a message naming it."""
    with pytest.raises(BadInput, match=option):
        distplan.solve(EXAMPLES["chain-2dev"][0], "milp-split", options={option: value})


def test_a_failing_heuristic_falls_back_to_one_device(monkeypatch) -> None:
    """If edgeflow raises, milp-split starts from the best single device and says so."""
    from distplan.planners.edgeflow import exact_milp

    def broken(problem, options):
        raise ValueError("degenerate instance")

    monkeypatch.setattr(exact_milp, "solve_progressive", broken)
    problem = EXAMPLES["chain-2dev"][0]
    result = distplan.solve(problem, "milp-split", time_limit=20, seed=0)
    assert result.status in HAS_PLAN
    assert simulate(problem, result.plan).feasible
    assert result.metrics["incumbent_error"] == "ValueError: degenerate instance"
