"""Tests of the exact CP-SAT pipeline planner on tiny instances with known optima."""

from __future__ import annotations

import itertools
import time
from functools import cache

import pytest

from distplan.models.pipeline import GPU, Cluster, PipelineLayer, PipelinePlan, PipelineProblem
from distplan.models.result import HAS_PLAN, SolveStatus
from distplan.planners.pipeline.simulator import evaluate_plan
from distplan.solvers import solve, solvers

OTHERS = ("topo", "uniform", "balance_by_time", "alpa_dp")


def make_problem(
    name: str,
    layers: list[tuple[float, float, float, float]],
    speeds: list[float],
    bandwidth: list[list[float]],
    k: int,
    edges: list[tuple[int, int]] | None = None,
    latency: list[list[float]] | None = None,
    memory: list[float] | None = None,
    **extra,
) -> PipelineProblem:
    """A problem from ``(forward_s, backward_s, activation_bytes, parameter_bytes)`` per layer."""
    memory = memory or [1e12] * len(speeds)
    gpus = [GPU(name=f"g{i}", memory_bytes=memory[i], speed=s) for i, s in enumerate(speeds)]
    return PipelineProblem(
        name=name,
        layers=[
            PipelineLayer(
                name=f"l{i}", forward_s=f, backward_s=b, activation_bytes=a, parameter_bytes=p
            )
            for i, (f, b, a, p) in enumerate(layers)
        ],
        edges=edges if edges is not None else [(i, i + 1) for i in range(len(layers) - 1)],
        cluster=Cluster(gpus=gpus, bandwidth_bytes_per_s=bandwidth, latency_s=latency),
        microbatches=k,
        **extra,
    )


def full(n: int, bandwidth: float) -> list[list[float]]:
    return [[0.0 if i == j else bandwidth for j in range(n)] for i in range(n)]


def hetero_chain() -> PipelineProblem:
    # 5 layers, 3 GPUs of different speeds, no direct link between GPUs 0 and 2.
    bandwidth = [[0, 2e7, 0], [2e7, 0, 5e7], [0, 5e7, 0]]
    latency = [[0, 1e-3, 0], [1e-3, 0, 2e-3], [0, 2e-3, 0]]
    layers = [
        (1, 2, 4e6, 1e7),
        (2, 4, 2e6, 4e7),
        (1.5, 3, 1e6, 1e7),
        (0.5, 1, 8e6, 1e6),
        (1, 2, 0, 2e7),
    ]
    return make_problem("hetero_chain", layers, [1.0, 1.5, 0.5], bandwidth, 3, latency=latency)


def memory_bound_chain() -> PipelineProblem:
    # 4 GPUs, 6 layers; tight memory forces a pipeline, replication is forbidden.
    bandwidth = full(4, 5e7)
    bandwidth[0][3] = bandwidth[3][0] = 0.0
    layers = [
        (1, 2, 1e7, 3e7),
        (1, 1, 1e7, 3e7),
        (2, 2, 5e6, 2e7),
        (1, 2, 5e6, 3e7),
        (0.5, 1, 2e6, 1e7),
        (1, 1, 0, 2e7),
    ]
    return make_problem(
        "memory_bound_chain",
        layers,
        [1.0, 2.0, 1.0, 1.5],
        bandwidth,
        4,
        memory=[4e8, 5e8, 4e8, 6e8],
        allow_replication=False,
    )


def diamond() -> PipelineProblem:
    # A DAG: 0 -> {1, 2} -> 3, on 3 GPUs, K = 2.
    layers = [(1, 2, 2e6, 1e6), (2, 3, 1e6, 1e6), (1, 2, 1e6, 1e6), (1, 1, 0, 1e6)]
    return make_problem(
        "diamond", layers, [1.0, 1.0, 2.0], full(3, 2e7), 2, edges=[(0, 1), (0, 2), (1, 3), (2, 3)]
    )


INSTANCES = {
    "hetero_chain": hetero_chain,
    "memory_bound_chain": memory_bound_chain,
    "diamond": diamond,
}


@cache
def exact_result(name: str):
    return solve(INSTANCES[name](), "cpsat", time_limit=20, seed=0, threads=1)


@cache
def other_result(name: str, solver: str):
    return solve(INSTANCES[name](), solver, time_limit=10, seed=0, threads=1)


def registered(names: tuple[str, ...]) -> list[str]:
    known = {spec.name for spec in solvers("pipeline")}
    return [n for n in names if n in known]


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_plan_is_accepted_and_objective_is_the_evaluators(name):
    """The plan passes the simulator and the reported objective is the simulated one."""
    result = exact_result(name)
    assert result.status in HAS_PLAN and result.plan is not None
    assert not result.violations
    assert result.objective == pytest.approx(result.evaluator_objective, rel=1e-9)
    assert evaluate_plan(INSTANCES[name](), result.plan).feasible
    assert result.metrics["incumbent_source"] in ("cpsat", "warm_start")


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_bound_is_below_objective_and_at_least_the_closed_form(name):
    """An uncoarsened model reports a proven bound between the closed-form bound and the objective."""
    result = exact_result(name)
    assert result.metrics["coarsened"] is False
    assert result.bound is not None
    assert result.bound <= result.objective * (1 + 1e-9)
    assert result.bound >= result.metrics["closed_form_bound"] * (1 - 1e-9)


@pytest.mark.parametrize("name", sorted(INSTANCES))
@pytest.mark.parametrize("other", registered(OTHERS))
def test_exact_is_no_worse_than_heuristics_and_baselines(name, other):
    """The exact plan is at least as fast as every heuristic or baseline plan for the same instance."""
    theirs = other_result(name, other)
    if not theirs.has_plan:
        pytest.skip(f"{other} found no plan for {name}")
    assert exact_result(name).objective <= theirs.objective * (1 + 1e-9)
    assert exact_result(name).bound <= theirs.objective * (1 + 1e-9)


def all_orders(k: int):
    tasks = [(m, p) for m in range(k) for p in ("F", "B")]
    for perm in itertools.permutations(tasks):
        if all(perm.index((m, "F")) < perm.index((m, "B")) for m in range(k)):
            yield list(perm)


def brute_force(problem: PipelineProblem) -> float:
    """The shortest simulated iteration over every plan of a 2-layer, 2-GPU chain."""
    plans = []
    for stage_of_layer, groups in (
        ([0, 0], [[0]]),
        ([0, 0], [[1]]),
        ([0, 0], [[0, 1]]),
        ([0, 0], [[1, 0]]),
        ([0, 1], [[0], [1]]),
        ([0, 1], [[1], [0]]),
    ):
        for orders in itertools.product(list(all_orders(problem.microbatches)), repeat=len(groups)):
            plans.append(
                PipelinePlan(
                    stage_of_layer=stage_of_layer,
                    gpus_of_stage=groups,
                    order_of_stage=list(orders),
                    schedule="list",
                )
            )
    times = [e.objective for e in map(lambda p: evaluate_plan(problem, p), plans) if e.feasible]
    return min(times)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("replication", [True, False])
def test_matches_brute_force_optimum_and_proves_it(k, replication):
    """On 2 layers and 2 GPUs the exact solver finds the enumerated optimum and reports it optimal."""
    problem = make_problem(
        "brute",
        [(1, 2, 2e6, 3e7), (2, 3, 1e6, 1e7)],
        [1.0, 1.5],
        [[0, 1e8], [5e7, 0]],
        k,
        latency=[[0, 1e-3], [2e-3, 0]],
        allow_replication=replication,
    )
    result = solve(problem, "cpsat", time_limit=20, threads=1)
    assert result.objective == pytest.approx(brute_force(problem), rel=1e-9)
    assert result.status == SolveStatus.OPTIMAL
    assert result.gap == pytest.approx(0.0, abs=1e-6)


def test_same_seed_and_one_thread_give_the_same_plan():
    """Two solves with threads=1 and the same seed return identical plans and objectives."""
    first = solve(hetero_chain(), "cpsat", time_limit=20, seed=3, threads=1)
    second = solve(hetero_chain(), "cpsat", time_limit=20, seed=3, threads=1)
    assert first.plan == second.plan
    assert first.objective == second.objective
    assert first.bound == second.bound


def test_time_limit_is_honoured_on_a_larger_instance():
    """A 12-layer, 6-GPU, K=8 instance with time_limit=2 returns within 4 s with a plan and a gap."""
    layers = [
        (1 + (i % 3) * 0.5, 2 + (i % 4), 1e6 * (1 + i % 5), 1e7 * (1 + i % 2)) for i in range(12)
    ]
    bandwidth = full(6, 2e7)
    bandwidth[0][5] = bandwidth[5][0] = 0.0
    problem = make_problem("larger", layers, [1.0, 1.0, 1.5, 1.5, 0.5, 2.0], bandwidth, 8)
    started = time.monotonic()
    result = solve(problem, "cpsat", time_limit=2, threads=1)
    assert time.monotonic() - started < 4.0
    assert result.has_plan
    assert result.gap is not None


def test_coarsened_model_reports_only_the_closed_form_bound():
    """With more layers than blocks the model is a restriction: no own bound, metrics say coarsened."""
    layers = [(1, 2, 1e6, 1e6)] * 8
    problem = make_problem("coarse", layers, [1.0, 1.0], full(2, 1e8), 2)
    result = solve(problem, "cpsat", time_limit=10, threads=1, options={"max_blocks": 3})
    assert result.metrics["coarsened"] is True
    assert result.metrics["num_blocks"] <= 3
    assert result.has_plan
    assert result.bound == pytest.approx(result.metrics["closed_form_bound"])


def test_memory_that_fits_no_plan_is_proven_infeasible():
    """A tiny GPU that holds no layer and a big one that holds only one: the model proves infeasibility."""
    problem = make_problem(
        "no_fit", [(1, 1, 0, 1e8), (1, 1, 0, 1e8)], [1.0, 1.0], full(2, 1e8), 1, memory=[6e8, 4e8]
    )
    result = solve(problem, "cpsat", time_limit=10, threads=1, options={"warm_start": False})
    assert result.status == SolveStatus.INFEASIBLE
    assert result.plan is None


def test_invalid_max_blocks_is_rejected():
    """A non-positive max_blocks raises a ValueError naming the option."""
    with pytest.raises(ValueError, match="max_blocks"):
        solve(hetero_chain(), "cpsat", time_limit=5, options={"max_blocks": 0})
