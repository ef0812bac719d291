"""Tests of the literature baselines: uniform (GPipe), balance_by_time and gpipe_dp (torchgpipe), alpa_dp (Alpa)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

import distplan
from distplan.models.pipeline import GPU, Cluster, PipelineLayer, PipelineProblem
from distplan.models.result import HAS_PLAN, SolveStatus
from distplan.planners.pipeline.alpa import alpa_stage_dp, host_aligned
from distplan.planners.pipeline.baselines import min_max_partition
from distplan.planners.pipeline.finalize import best_of, simulate_candidates
from distplan.planners.pipeline.list_schedule import list_schedule

BASELINES = ["uniform", "balance_by_time", "gpipe_dp", "alpa_dp"]
OLD = {"replicas": "none", "schedules": "native"}
INSTANCES = Path(__file__).resolve().parents[3] / "instances" / "pipeline"


def chain(
    costs: list[float], speeds: list[float], k: int = 4, memory: float = 1e12, **extra
) -> PipelineProblem:
    """A chain of layers (forward = cost / 3, backward = 2 cost / 3) on a flat cluster."""
    layers = [
        PipelineLayer(
            name=f"l{i}",
            forward_s=c / 3,
            backward_s=2 * c / 3,
            activation_bytes=1e6 * (i + 1),
            parameter_bytes=1e7 * (i + 1),
        )
        for i, c in enumerate(costs)
    ]
    n = len(speeds)
    gpus = [GPU(name=f"g{i}", memory_bytes=memory, speed=s) for i, s in enumerate(speeds)]
    cluster = Cluster(
        gpus=gpus,
        bandwidth_bytes_per_s=[[0.0 if i == j else 1e10 for j in range(n)] for i in range(n)],
    )
    edges = [(i, i + 1) for i in range(len(costs) - 1)]
    return PipelineProblem(
        name="chain", layers=layers, edges=edges, cluster=cluster, microbatches=k, **extra
    )


def branchy(seed: int) -> PipelineProblem:
    """A small DAG with skip connections on a heterogeneous two-server cluster."""
    rng = random.Random(seed)
    n_layers = 10
    layers = [
        PipelineLayer(
            name=f"l{i}",
            forward_s=rng.uniform(0.1, 1),
            backward_s=rng.uniform(0.2, 2),
            activation_bytes=rng.uniform(1e6, 1e8),
            parameter_bytes=rng.uniform(0, 1e8),
        )
        for i in range(n_layers)
    ]
    edges = [(i, i + 1) for i in range(n_layers - 1)] + [(0, 4), (3, 7), (5, 9)]
    speeds = [1.0, 1.0, 0.5, 0.5, 2.0]
    gpus = [GPU(name=f"g{i}", memory_bytes=64e9, speed=s) for i, s in enumerate(speeds)]
    bandwidth = [
        [0.0 if i == j else (25e9 if (i < 2) == (j < 2) else 2e9) for j in range(5)]
        for i in range(5)
    ]
    cluster = Cluster(gpus=gpus, bandwidth_bytes_per_s=bandwidth)
    return PipelineProblem(
        name=f"branchy{seed}", layers=layers, edges=edges, cluster=cluster, microbatches=4
    )


def assert_accepted(result) -> None:
    assert result.status in HAS_PLAN, result.metrics
    assert not result.violations
    assert not result.metrics.get("objective_mismatch")
    assert result.evaluator_objective == pytest.approx(result.objective, rel=1e-9)


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize(
    "make", [lambda: chain([1, 2, 3, 4, 5, 6], [1, 1, 1]), lambda: branchy(0), lambda: branchy(1)]
)
def test_baseline_plan_is_accepted_by_the_evaluator(name, make):
    """Every baseline's plan replays without violations and its objective is the evaluator's."""
    assert_accepted(distplan.solve(make(), name))


def test_uniform_splits_layer_counts_evenly_on_first_gpus():
    """uniform's old mode gives S = #GPUs stages of equal layer counts on GPUs 0..S-1 with the GPipe schedule."""
    result = distplan.solve(chain([1] * 7, [1, 1, 1]), "uniform", options=OLD)
    assert_accepted(result)
    plan = result.plan
    assert plan.gpus_of_stage == [[0], [1], [2]]
    assert plan.schedule == "gpipe"
    assert [plan.stage_of_layer.count(s) for s in range(3)] == [3, 2, 2]


def test_uniform_uses_fewer_stages_than_gpus_on_short_models():
    """With fewer layers than GPUs uniform's old mode makes one stage per layer."""
    result = distplan.solve(chain([1, 1], [1, 1, 1, 1]), "uniform", options=OLD)
    assert_accepted(result)
    assert result.plan.gpus_of_stage == [[0], [1]]


def test_uniform_falls_back_to_an_allowed_fixed_schedule():
    """When GPipe is not allowed uniform's native schedule falls back to 1F1B."""
    result = distplan.solve(
        chain([1, 2, 3], [1, 1, 1], schedules=["1f1b", "list"]), "uniform", options=OLD
    )
    assert_accepted(result)
    assert result.plan.schedule == "1f1b"


def test_balance_by_time_reaches_the_known_optimal_bottleneck():
    """balance_by_time splits layer times 1..6 into 3 stages with bottleneck 9 (1+2+3 | 4+5 | 6)."""
    result = distplan.solve(chain([1, 2, 3, 4, 5, 6], [1, 1, 1]), "balance_by_time", options=OLD)
    assert_accepted(result)
    assert result.plan.stage_of_layer == [0, 0, 0, 1, 1, 2]


@pytest.mark.parametrize("seed", range(10))
def test_min_max_partition_matches_brute_force(seed):
    """min_max_partition finds the smallest possible largest part on random sequences."""
    rng = random.Random(seed)
    costs = [rng.choice([0, 1, 2, 3, 5, 8]) for _ in range(rng.randint(1, 8))]
    parts = rng.randint(1, len(costs))
    bounds, bottleneck = min_max_partition(costs, parts)
    assert bounds[0] == 0 and bounds[-1] == len(costs) and len(bounds) == parts + 1
    assert all(a < b for a, b in itertools.pairwise(bounds))
    assert max(sum(costs[a:b]) for a, b in itertools.pairwise(bounds)) == pytest.approx(bottleneck)
    best = min(
        max(sum(costs[a:b]) for a, b in itertools.pairwise((0, *inner, len(costs))))
        for inner in itertools.combinations(range(1, len(costs)), parts - 1)
    )
    assert bottleneck == pytest.approx(best)


def alpa_brute_force(
    problem: PipelineProblem,
) -> float:  # Alpa's DP without gradient sync (the old cost model)
    """Alpa's Eq. 2 over every slicing and contiguous submesh assignment using all GPUs, with its memory rule."""
    n_layers, n_gpus, k = len(problem.layers), problem.num_gpus, problem.microbatches
    factor = 1 + problem.optimizer_state_factor
    gpus = problem.cluster.gpus
    best = float("inf")
    for num_stages in range(1, min(n_layers, n_gpus) + 1):
        for inner in itertools.combinations(range(1, n_layers), num_stages - 1):
            cuts = (0, *inner, n_layers)
            for sizes in itertools.product(range(1, n_gpus + 1), repeat=num_stages):
                if sum(sizes) != n_gpus:
                    continue
                latencies, first, fits = [], 0, True
                for s in range(num_stages):
                    group = range(first, first + sizes[s])
                    first += sizes[s]
                    chunk = problem.layers[cuts[s] : cuts[s + 1]]
                    work = sum(x.forward_s + x.backward_s for x in chunk)
                    speed = sum(gpus[g].speed for g in group)
                    params = sum(x.parameter_bytes for x in chunk)
                    acts = sum(x.activation_bytes for x in chunk)
                    in_flight = min(num_stages - s, k)
                    for g in group:
                        if (
                            factor * params + gpus[g].speed / speed * acts * in_flight
                            > gpus[g].memory_bytes
                        ):
                            fits = False
                    latencies.append(work / speed)
                if fits:
                    best = min(best, sum(latencies) + (k - 1) * max(latencies))
    return best


@pytest.mark.parametrize(
    "costs, speeds, memory",
    [
        ([3, 1, 4, 1, 5], [1.0, 1.0, 1.0], 1e12),
        ([2, 7, 1, 8, 2, 8], [1.0, 0.5, 2.0], 1e12),
        ([5, 5, 1, 1, 9], [1.0, 1.0, 0.5, 0.5], 1e12),
        ([4, 4, 4, 4], [1.0, 1.0, 1.0], 3.0e8),  # memory keeps layers 2 and 3 apart
    ],
)
def test_alpa_dp_equals_brute_force_on_tiny_chains(costs, speeds, memory):
    """alpa_stage_dp's T* equals exhaustive search over slicings and submeshes for Alpa's own objective."""
    problem = chain(costs, speeds, memory=memory)
    found = alpa_stage_dp(problem, epsilon=0.0, gradient_sync=False, submeshes="any")
    expected = alpa_brute_force(problem)
    assert expected < float("inf") and found is not None
    assert found[2] == pytest.approx(expected, rel=1e-9)


def test_alpa_dp_uses_every_gpu_in_contiguous_groups():
    """alpa_dp assigns contiguous GPU index groups covering all GPUs, with its native 1F1B schedule."""
    result = distplan.solve(
        chain([2, 7, 1, 8, 2, 8], [1.0, 0.5, 2.0, 1.0]), "alpa_dp", options={"schedules": "native"}
    )
    assert_accepted(result)
    flat = [g for group in result.plan.gpus_of_stage for g in group]
    assert flat == list(range(4))
    assert result.plan.schedule == "1f1b"


def test_memory_oblivious_baseline_reports_no_solution():
    """When uniform's partition overflows GPU memory it returns no_solution with the simulator's reason."""
    # Layer 0 holds 3e9 parameter bytes (15e9 with optimizer state) on 16e9-byte GPUs, and stashes 0.5e9 bytes
    # per micro-batch: 8 micro-batches under GPipe overflow; the other GPU could share the layers but uniform
    # does not look.
    layers = [
        PipelineLayer(
            name="big", forward_s=1, backward_s=2, activation_bytes=5e8, parameter_bytes=3e9
        ),
        PipelineLayer(
            name="small", forward_s=1, backward_s=2, activation_bytes=1e6, parameter_bytes=0
        ),
    ]
    gpus = [GPU(name=f"g{i}", memory_bytes=16e9) for i in range(2)]
    cluster = Cluster(gpus=gpus, bandwidth_bytes_per_s=[[0, 1e10], [1e10, 0]])
    problem = PipelineProblem(
        name="tight", layers=layers, edges=[(0, 1)], cluster=cluster, microbatches=8
    )
    result = distplan.solve(problem, "uniform", options=OLD)
    assert result.status == SolveStatus.NO_SOLUTION
    assert "GPU 0" in result.reason


def shipped_instances(limit: int = 2) -> list[Path]:
    files = sorted(INSTANCES.glob("*.json")) if INSTANCES.is_dir() else []
    return sorted(files, key=lambda p: p.stat().st_size)[:limit]


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_on_shipped_instances(name):
    """Each baseline either returns an evaluator-accepted plan or no_solution on the smallest shipped instances."""
    files = shipped_instances()
    if not files:
        pytest.skip("no shipped pipeline instances yet")
    for path in files:
        result = distplan.solve(distplan.load_instance(path), name)
        if result.status == SolveStatus.NO_SOLUTION:
            assert result.reason
        else:
            assert_accepted(result)


def sync_bound_chain(parameter_bytes: float) -> PipelineProblem:
    """Four equal layers on two GPUs joined by a slow 1 GB/s link; the gradient volume decides."""
    layers = [
        PipelineLayer(
            name=f"l{i}",
            forward_s=0.1,
            backward_s=0.2,
            activation_bytes=1e3,
            parameter_bytes=parameter_bytes,
        )
        for i in range(4)
    ]
    gpus = [GPU(name=f"g{i}", memory_bytes=1e12) for i in range(2)]
    cluster = Cluster(gpus=gpus, bandwidth_bytes_per_s=[[0, 1e9], [1e9, 0]])
    return PipelineProblem(
        name="sync",
        layers=layers,
        edges=[(i, i + 1) for i in range(3)],
        cluster=cluster,
        microbatches=4,
    )


def best_simulated(problem: PipelineProblem) -> tuple[float, int]:
    """Fastest simulated plan (and its stage count) over every slicing and GPU split, under the schedule menu."""
    best = (float("inf"), 0)
    for inner in [(), (1,), (2,), (3,)]:
        cuts = (0, *inner, 4)
        stage_of_layer = [s for s in range(len(cuts) - 1) for _ in range(cuts[s + 1] - cuts[s])]
        groups = [[0, 1]] if not inner else [[0], [1]]
        found = best_of(simulate_candidates(problem, stage_of_layer, groups, None, list_schedule))
        if found is not None:
            best = min(best, (found[1].objective, len(groups)))
    return best


@pytest.mark.parametrize(("parameter_bytes", "stages"), [(1e9, 2), (1e3, 1)])
def test_fair_alpa_finds_the_best_plan_when_gradient_sync_decides(parameter_bytes, stages):
    """With gradient sync / K in its cost model, alpa_dp finds the simulated best of one or two stages."""
    problem = sync_bound_chain(parameter_bytes)
    expected, expected_stages = best_simulated(problem)
    assert expected_stages == stages
    result = distplan.solve(problem, "alpa_dp")
    assert_accepted(result)
    assert result.plan.num_stages == stages
    assert result.objective == pytest.approx(expected, rel=1e-9)


def test_old_alpa_replicates_into_the_slow_all_reduce():
    """Without gradient sync (the old cost model) alpa_dp picks one data-parallel stage even when sync dominates."""
    problem = sync_bound_chain(1e9)
    old = distplan.solve(problem, "alpa_dp", options={"gradient_sync": False})
    fair = distplan.solve(problem, "alpa_dp")
    assert old.plan.num_stages == 1
    assert fair.objective < 0.8 * old.objective


def test_host_aligned_submeshes():
    """Alpa's submeshes are 2^m GPUs inside one host or whole hosts."""
    servers = ["a"] * 4 + ["b"] * 4
    assert (
        host_aligned(servers, 0, 4) and host_aligned(servers, 1, 2) and host_aligned(servers, 0, 8)
    )
    assert not host_aligned(servers, 0, 3)  # not a power of two
    assert not host_aligned(servers, 2, 4)  # straddles two hosts without covering them
    assert host_aligned(servers, 4, 4) and not host_aligned(servers, 3, 2)


def test_replicated_baselines_pick_the_stage_count_by_simulation():
    """With data-parallel replicas uniform/balance_by_time/gpipe_dp are never slower than their old single-GPU stages."""
    problem = branchy(2)
    for name in ("uniform", "balance_by_time", "gpipe_dp"):
        new = distplan.solve(problem, name)
        old = distplan.solve(problem, name, options=OLD)
        assert_accepted(new)
        assert new.objective <= old.objective * (1 + 1e-9)
        assert new.metrics["num_stages"] in new.metrics["stage_counts_tried"]


def test_gpipe_dp_layouts_on_four_gpus():
    """gpipe_dp tries stage-major and pipeline-major replica layouts; both are valid plans of 4 GPUs."""
    problem = chain([1, 2, 3, 4, 5, 6], [1, 1, 1, 1])
    result = distplan.solve(problem, "gpipe_dp")
    assert_accepted(result)
    assert sorted(g for group in result.plan.gpus_of_stage for g in group) == [0, 1, 2, 3]
    assert result.metrics["layout"] in ("stage_major", "pipeline_major")
