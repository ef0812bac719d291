"""Tests of ``topo``, the topology-aware pipeline planner."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

import distplan
from distplan.models.pipeline import GPU, Cluster, PipelineLayer, PipelineProblem
from distplan.models.result import HAS_PLAN
from distplan.planners.pipeline.costs import ClusterView
from distplan.planners.pipeline.topo_orderings import gpu_orderings
from distplan.solvers.registry import get_solver, solvers

INSTANCES = Path(__file__).resolve().parents[3] / "instances" / "pipeline"


def baselines() -> list[str]:
    """Every registered pipeline baseline (pipedream_dp included once it is registered)."""
    from distplan.models.result import Role

    return [s.name for s in solvers("pipeline") if s.role == Role.BASELINE]


def layered_model(
    rng: random.Random, num_layers: int
) -> tuple[list[PipelineLayer], list[tuple[int, int]]]:
    """A CNN-like chain with skips: big early activations, big late parameters."""
    layers = []
    for i in range(num_layers):
        depth = i / max(1, num_layers - 1)
        layers.append(
            PipelineLayer(
                name=f"l{i}",
                forward_s=rng.uniform(0.002, 0.01),
                backward_s=rng.uniform(0.004, 0.02),
                activation_bytes=rng.uniform(0.5, 1.5) * 4e7 * (1 - 0.8 * depth),
                parameter_bytes=rng.uniform(0.5, 1.5) * 4e7 * depth**2,
            )
        )
    edges = [(i, i + 1) for i in range(num_layers - 1)] + [
        (i, i + 2) for i in range(0, num_layers - 2, 3)
    ]
    return layers, edges


def servers_cluster(
    rng: random.Random, servers: int, per_server: int, memory: float = 32e9
) -> Cluster:
    """Servers of GPUs with random speeds; fast links inside a server, slow between."""
    n = servers * per_server
    speed_of_server = [rng.choice([0.5, 1.0, 1.5]) for _ in range(servers)]
    gpus = [
        GPU(
            name=f"s{g // per_server}g{g % per_server}",
            memory_bytes=memory,
            speed=speed_of_server[g // per_server],
        )
        for g in range(n)
    ]
    intra, inter = rng.choice([25e9, 50e9]), rng.choice([1.25e9, 3e9])
    bandwidth = [
        [
            0.0 if i == j else (intra if i // per_server == j // per_server else inter)
            for j in range(n)
        ]
        for i in range(n)
    ]
    return Cluster(gpus=gpus, bandwidth_bytes_per_s=bandwidth)


def synthetic(seed: int) -> PipelineProblem:
    rng = random.Random(seed)
    layers, edges = layered_model(rng, rng.randint(12, 24))
    cluster = servers_cluster(rng, rng.choice([2, 3]), rng.choice([2, 3]))
    return PipelineProblem(
        name=f"synthetic{seed}",
        layers=layers,
        edges=edges,
        cluster=cluster,
        microbatches=rng.choice([4, 6]),
    )


def assert_accepted(result) -> None:
    assert result.status in HAS_PLAN, result.metrics
    assert not result.violations
    assert not result.metrics.get("objective_mismatch")
    assert result.evaluator_objective == pytest.approx(result.objective, rel=1e-9)


def test_topo_is_the_auto_solver():
    """solver="auto" picks topo for pipeline problems."""
    assert get_solver("auto", "pipeline").name == "topo"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_topo_beats_or_matches_every_baseline_on_heterogeneous_clusters(seed):
    """On random heterogeneous server clusters topo's own search (baselines' plans not given to it) is no slower."""
    problem = synthetic(seed)
    ours = distplan.solve(problem, "topo", seed=seed, options={"baseline_candidates": False})
    assert_accepted(ours)
    for name in baselines():
        theirs = distplan.solve(problem, name)
        if theirs.status in HAS_PLAN:
            assert ours.objective <= theirs.objective * (1 + 1e-9), name


def test_topo_is_deterministic_for_a_seed():
    """The same problem and seed give the same plan and objective."""
    problem = synthetic(7)
    first = distplan.solve(problem, "topo", seed=3)
    second = distplan.solve(problem, "topo", seed=3)
    assert first.plan == second.plan
    assert first.objective == second.objective


def test_topo_respects_the_time_limit():
    """A large problem with a 1 s limit returns a valid plan in about that time."""
    rng = random.Random(11)
    layers, edges = layered_model(rng, 400)
    cluster = servers_cluster(rng, 4, 4)
    problem = PipelineProblem(
        name="large", layers=layers, edges=edges, cluster=cluster, microbatches=16
    )
    started = time.monotonic()
    result = distplan.solve(problem, "topo", time_limit=1.0)
    elapsed = time.monotonic() - started
    assert_accepted(result)
    assert elapsed < 2.5


def test_topo_leaves_a_harmful_gpu_unused():
    """A very slow GPU behind a very slow link is left out of the plan."""
    rng = random.Random(5)
    layers, edges = layered_model(rng, 10)
    gpus = [
        GPU(name="fast0", memory_bytes=32e9),
        GPU(name="fast1", memory_bytes=32e9),
        GPU(name="slow", memory_bytes=32e9, speed=0.01),
    ]
    bandwidth = [[0, 50e9, 1e6], [50e9, 0, 1e6], [1e6, 1e6, 0]]
    problem = PipelineProblem(
        name="harmful",
        layers=layers,
        edges=edges,
        cluster=Cluster(gpus=gpus, bandwidth_bytes_per_s=bandwidth),
        microbatches=4,
    )
    result = distplan.solve(problem, "topo")
    assert_accepted(result)
    assert 2 not in {g for group in result.plan.gpus_of_stage for g in group}


def test_topo_without_replication_uses_single_gpu_stages():
    """With allow_replication false every stage runs on one GPU."""
    problem = synthetic(2).model_copy(update={"allow_replication": False})
    result = distplan.solve(problem, "topo")
    assert_accepted(result)
    assert all(len(group) == 1 for group in result.plan.gpus_of_stage)


def test_topo_keeps_to_the_allowed_schedules():
    """When only 1F1B is allowed topo's plan uses 1F1B."""
    problem = synthetic(3).model_copy(update={"schedules": ["1f1b"]})
    result = distplan.solve(problem, "topo")
    assert_accepted(result)
    assert result.plan.schedule == "1f1b"


def test_topo_finds_a_plan_when_memory_is_tight():
    """When the whole model does not fit one GPU, topo splits it so that every GPU fits."""
    rng = random.Random(9)
    layers, edges = layered_model(rng, 12)
    weights = 5 * sum(x.parameter_bytes for x in layers)
    cluster = servers_cluster(rng, 2, 2, memory=0.6 * weights)
    problem = PipelineProblem(
        name="tight", layers=layers, edges=edges, cluster=cluster, microbatches=4
    )
    result = distplan.solve(problem, "topo")
    assert_accepted(result)
    assert result.plan.num_stages >= 2


def test_orderings_keep_servers_contiguous():
    """The first ordering (bandwidth clustering) lists every server's GPUs next to each other."""
    cluster = servers_cluster(random.Random(1), 3, 3)
    # Interleave the GPU indices so that servers are not index blocks.
    perm = [0, 3, 6, 1, 4, 7, 2, 5, 8]
    bandwidth = [
        [cluster.bandwidth_bytes_per_s[perm[i]][perm[j]] for j in range(9)] for i in range(9)
    ]
    gpus = [cluster.gpus[perm[i]] for i in range(9)]
    problem = PipelineProblem(
        name="perm",
        layers=[
            PipelineLayer(
                name="a", forward_s=1, backward_s=1, activation_bytes=0, parameter_bytes=0
            )
        ],
        cluster=Cluster(gpus=gpus, bandwidth_bytes_per_s=bandwidth),
        microbatches=1,
    )
    ordering = gpu_orderings(ClusterView(problem))[0]
    server = [perm[g] // 3 for g in ordering]
    assert all(server[i] == server[i // 3 * 3] for i in range(9))


def shipped_instances(limit: int = 3) -> list[Path]:
    files = sorted(INSTANCES.glob("*.json")) if INSTANCES.is_dir() else []
    return sorted(files, key=lambda p: p.stat().st_size)[:limit]


@pytest.mark.slow
def test_topo_beats_or_matches_baselines_on_shipped_instances():
    """On a few shipped instances topo is no slower than any baseline."""
    files = shipped_instances()
    if not files:
        pytest.skip("no shipped pipeline instances yet")
    for path in files:
        problem = distplan.load_instance(path)
        ours = distplan.solve(problem, "topo")
        assert_accepted(ours)
        for name in baselines():
            theirs = distplan.solve(problem, name)
            if theirs.status in HAS_PLAN:
                assert ours.objective <= theirs.objective * (1 + 1e-9), (path.name, name)


def test_topo_falls_back_to_one_stashed_microbatch_when_memory_is_very_tight():
    """When only one micro-batch in flight fits stage 0, topo still plans (a memory-capped list schedule)."""
    # Each layer's weights and optimizer state take 7.5e9 of the 10e9 bytes of a GPU, so the layers need a
    # GPU each; layer 0 stashes 2e9 bytes per micro-batch, so stage 0 can hold one, which 1F1B and GPipe
    # exceed with two stages and K = 4.
    layers = [
        PipelineLayer(
            name="a", forward_s=1, backward_s=2, activation_bytes=2e9, parameter_bytes=1.5e9
        ),
        PipelineLayer(
            name="b", forward_s=1, backward_s=2, activation_bytes=1e6, parameter_bytes=1.5e9
        ),
    ]
    gpus = [GPU(name=f"g{i}", memory_bytes=10e9) for i in range(2)]
    cluster = Cluster(gpus=gpus, bandwidth_bytes_per_s=[[0, 1e10], [1e10, 0]])
    problem = PipelineProblem(
        name="very-tight", layers=layers, edges=[(0, 1)], cluster=cluster, microbatches=4
    )
    result = distplan.solve(problem, "topo")
    assert_accepted(result)
    assert result.plan.schedule == "list"


def test_topo_reports_where_its_plan_came_from():
    """topo names the source of its plan; a baseline's plan it returns unchanged has that baseline's objective."""
    problem = synthetic(1)
    ours = distplan.solve(problem, "topo", seed=1)
    assert_accepted(ours)
    source = ours.metrics["plan_source"]
    assert source == "topo" or source in baselines()
    if source != "topo":
        assert ours.objective == pytest.approx(distplan.solve(problem, source).objective, rel=1e-12)
    for name in ours.metrics["same_partition_as"]:
        theirs = distplan.solve(problem, name)
        assert theirs.plan.gpus_of_stage == ours.plan.gpus_of_stage
