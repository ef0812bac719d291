"""The pipedream_dp baseline: fidelity to PipeDream's optimizer and plans the simulator accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import distplan
from distplan.models import load_instance
from distplan.models.pipeline import PipelineLayer, PipelineProblem
from distplan.models.result import HAS_PLAN
from distplan.planners.pipeline.clusters import flat
from distplan.planners.pipeline.pipedream_dp import pipedream_states
from distplan.planners.pipeline.pipedream_graph import (
    antichain_states,
    bits,
    cleaned_graph,
    compress_branches,
    graph_of,
    mask_indices,
    prefix_states,
)
from distplan.planners.pipeline.pipedream_import import import_pipedream
from distplan.planners.pipeline.pipedream_levels import hierarchical_partition

REPO = Path(__file__).parents[3]
INSTANCES = REPO / "instances" / "pipeline"

#: OPTIMIZER_REFERENCE.md: PipeDream's own optimizer on graph.txt, -n workers -b bandwidth, defaults otherwise.
#: (profile, workers, bandwidth B/s, "Time per stage in pipeline" s, replication factor of every stage)
REFERENCE = [
    ("vgg16", 4, 1e9, 0.175733, [3, 1]),
    ("vgg16", 4, 1e10, 0.170179, [3, 1]),
    ("vgg16", 8, 1e9, 0.093513, [4, 1, 1, 1, 1]),
    ("vgg16", 8, 1e10, 0.089926, [7, 1]),
    ("resnet50", 4, 1e9, 0.111497, [1, 1, 1, 1]),
    ("resnet50", 4, 1e10, 0.111497, [1, 1, 1, 1]),
    ("resnet50", 8, 1e9, 0.056315, [2, 1, 1, 1, 1, 1, 1]),
    ("resnet50", 8, 1e10, 0.055915, [2, 2, 1, 1, 1, 1]),
    ("alexnet", 4, 1e9, 0.023166, [2, 1, 1]),
    ("alexnet", 4, 1e10, 0.022186, [2, 1, 1]),
    ("alexnet", 8, 1e9, 0.011620, [3, 1, 1, 1, 1, 1]),
    ("alexnet", 8, 1e10, 0.011021, [4, 1, 2, 1]),
]


#: OPTIMIZER_REFERENCE.md, hierarchical mode: (profile, GPUs per server, servers, intra B/s, inter B/s,
#: bottleneck s, level-2 replicas, level-1 replicas inside each level-2 stage)
HIERARCHICAL_REFERENCE = [
    ("alexnet", 4, 2, 50e9, 1.25e9, 0.010941, [1, 1], [[4], [3, 1]]),
    ("vgg16", 4, 2, 50e9, 1.25e9, 0.092748, [1, 1], [[4], [3, 1]]),
    ("resnet18", 4, 2, 50e9, 1.25e9, 0.033078, [1, 1], [[4], [4]]),
    ("resnet50", 4, 2, 50e9, 1.25e9, 0.055803, [1, 1], [[4], [1, 2, 1]]),
    ("alexnet", 4, 4, 12e9, 3e9, 0.005934, [2, 1, 1], [[4], [4], [2, 1, 1]]),
    ("vgg16", 4, 4, 12e9, 3e9, 0.043512, [3, 1], [[4], [3, 1]]),
    ("resnet18", 4, 4, 12e9, 3e9, 0.017032, [2, 1, 1], [[4], [4], [2, 2]]),
    ("resnet50", 4, 4, 12e9, 3e9, 0.028651, [2, 1, 1], [[4], [2, 2], [1, 1, 1, 1]]),
]


@pytest.fixture(scope="module")
def profiles(shared_data: Path) -> Path:
    """The PipeDream profiles under ../shared/data (the fixture fails when they are missing)."""
    return shared_data / "pipedream_profiles"


def layer(name: str, seconds: float = 1.0, parameters: float = 1e6) -> PipelineLayer:
    return PipelineLayer(
        name=name,
        forward_s=seconds / 3,
        backward_s=2 * seconds / 3,
        activation_bytes=1e6,
        parameter_bytes=parameters,
    )


def check_plan(problem: PipelineProblem, result) -> None:
    """The plan covers every layer, no edge runs backward, every GPU serves at most one stage."""
    assert result.status in HAS_PLAN, result.reason
    assert not result.violations
    plan = result.plan
    assert len(plan.stage_of_layer) == len(problem.layers)
    assert all(plan.stage_of_layer[u] <= plan.stage_of_layer[v] for u, v in problem.edges)
    assert sorted(set(plan.stage_of_layer)) == list(range(plan.num_stages))
    flat_gpus = [g for gpus in plan.gpus_of_stage for g in gpus]
    assert sorted(flat_gpus) == list(range(len(flat_gpus)))
    splits = result.metrics["pipedream_splits"]
    assert [len(g) for g in plan.gpus_of_stage] == [r for _, _, r in splits]
    assert splits[0][0] == 0 and all(a[1] == b[0] for a, b in zip(splits, splits[1:], strict=False))


@pytest.mark.parametrize(("profile", "workers", "bandwidth", "bottleneck", "replicas"), REFERENCE)
def test_matches_pipedream_optimizer(
    profiles: Path,
    profile: str,
    workers: int,
    bandwidth: float,
    bottleneck: float,
    replicas: list[int],
) -> None:
    """On N equal GPUs of one bandwidth with K=1, the bottleneck is PipeDream's within 0.5 % with its replication."""
    problem = import_pipedream(profiles / profile / "graph.txt", flat(workers, bandwidth), 1)
    result = distplan.solve(problem, "pipedream_dp")
    assert result.metrics["pipedream_bottleneck_s"] == pytest.approx(bottleneck, rel=5e-3)
    assert result.metrics["pipedream_state_space"] == "antichain"
    assert [r for _, _, r in result.metrics["pipedream_splits"]] == replicas
    assert result.metrics["pipedream_splits"][-1][1] == result.metrics["pipedream_num_states"]
    check_plan(problem, result)


@pytest.mark.parametrize(
    "name", ["vgg16__dgx1-8__k4", "resnet50__2x4-10gbe__k16", "alexnet__4x4-mixed__k4"]
)
def test_shipped_instances_give_simulated_plans(name: str) -> None:
    """On shipped instances the plan passes the simulator and its objective is the simulated time."""
    path = INSTANCES / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} not built (python scripts/build_pipeline_instances.py)")
    problem = load_instance(path)
    result = distplan.solve(problem, "pipedream_dp")
    check_plan(problem, result)
    assert result.plan.schedule in ("1f1b", "gpipe", "list")
    native = distplan.solve(problem, "pipedream_dp", options={"schedules": "native"})
    assert (
        native.plan.schedule in ("1f1b", "gpipe") and native.objective >= result.objective - 1e-12
    )
    assert result.objective == pytest.approx(result.evaluator_objective)
    assert not result.metrics.get("objective_mismatch")


def test_same_problem_same_plan(profiles: Path) -> None:
    """Two solves of one problem give the same plan and metrics."""
    problem = import_pipedream(profiles / "resnet18" / "graph.txt", load_cluster_2x4(), 4)
    first, second = distplan.solve(problem, "pipedream_dp"), distplan.solve(problem, "pipedream_dp")
    assert (
        first.plan == second.plan
        and first.metrics["pipedream_splits"] == second.metrics["pipedream_splits"]
    )


def load_cluster_2x4():
    from distplan.planners.pipeline.clusters import load_cluster

    return load_cluster("2x4-10gbe")


def test_inputs_and_getitem_sinks() -> None:
    """Input sources go to stage 0 and dropped __getitem__ sinks to their producer's stage."""
    names = [
        "node1: Input0",
        "node2: Conv2d",
        "node3: LSTM",
        "node4: __getitem__(1)",
        "node5: Linear",
    ]
    problem = PipelineProblem(
        name="toy",
        layers=[layer(n, 0.0 if "Input" in n or "getitem" in n else 1.0) for n in names],
        edges=[(0, 1), (1, 2), (2, 3), (2, 4)],
        cluster=flat(3, 1e12),
        microbatches=2,
    )
    cleaned = cleaned_graph(graph_of(problem))
    assert cleaned.inputs == [0] and cleaned.dropped_sinks == [3] and cleaned.kept == [1, 2, 4]
    result = distplan.solve(problem, "pipedream_dp")
    check_plan(problem, result)
    stages = result.plan.stage_of_layer
    assert stages[0] == 0 and stages[3] == stages[2]
    assert result.metrics["pipedream_bottleneck_s"] == pytest.approx(
        2.0
    )  # 1 s per micro-batch x K=2


def test_antichain_states_of_a_diamond() -> None:
    """A diamond a -> {b, c} -> d has the down-sets {a}, {a,c}, {a,b}, {a,b,c}, {a,b,c,d} in DFS order."""
    problem = PipelineProblem(
        name="diamond",
        layers=[layer(n) for n in "abcd"],
        edges=[(0, 1), (0, 2), (1, 3), (2, 3)],
        cluster=flat(2, 1e9),
        microbatches=1,
    )
    states = antichain_states(cleaned_graph(graph_of(problem)), 100)
    assert states is not None and states.kind == "antichain"
    assert [bits(ideal) for ideal in states.ideals] == [
        [0],
        [0, 2],
        [0, 1],
        [0, 1, 2],
        [0, 1, 2, 3],
    ]
    assert [bits(p) for p in states.predecessors] == [[], [0], [0], [0, 1, 2], [0, 1, 2, 3]]
    assert antichain_states(cleaned_graph(graph_of(problem)), 3) is None


def test_branch_compression() -> None:
    """Each branch after a fork merges into one node up to the merge; single nodes stay as they are."""
    names = ["a", "b1", "b2", "c", "d", "e"]
    problem = PipelineProblem(
        name="branches",
        layers=[layer(n, seconds=i + 1.0) for i, n in enumerate(names)],
        edges=[(0, 1), (1, 2), (2, 4), (0, 3), (3, 4), (4, 5)],
        cluster=flat(2, 1e9),
        microbatches=1,
    )
    compressed = compress_branches(graph_of(problem))
    assert compressed.layers == [(0,), (1, 2), (3,), (4,), (5,)]
    assert compressed.descriptions == ["a", "Branch 0", "c", "d", "e"]
    assert compressed.successors == [[1, 2], [3], [3], [4], []]
    assert compressed.work_s[1] == pytest.approx(2.0 + 3.0)
    assert compressed.activation_bytes[1] == problem.layers[2].activation_bytes


def test_large_state_spaces_fall_back(profiles: Path) -> None:
    """Beyond max_states the optimizer compresses branches or uses prefixes and still plans."""
    problem = import_pipedream(profiles / "resnet18" / "graph.txt", flat(4, 1e10), 1)
    compressed = distplan.solve(problem, "pipedream_dp", options={"max_states": 50})
    assert compressed.metrics["pipedream_state_space"].endswith("on compressed branches")
    check_plan(problem, compressed)
    prefix = distplan.solve(
        problem, "pipedream_dp", options={"max_states": 50, "compress_branches": False}
    )
    assert prefix.metrics["pipedream_state_space"] == "prefix"
    check_plan(problem, prefix)
    exact = distplan.solve(problem, "pipedream_dp")
    assert (
        exact.metrics["pipedream_bottleneck_s"] <= prefix.metrics["pipedream_bottleneck_s"] + 1e-12
    )
    states = prefix_states(cleaned_graph(graph_of(problem)))
    assert all(
        states.ideals[k] & ~states.ideals[j] == 0
        for j in range(states.num_states)
        for k in bits(states.predecessors[j])
    )


def test_no_replication_runs_a_straight_pipeline() -> None:
    """With allow_replication false every stage has one GPU; spare GPUs stay idle."""
    problem = PipelineProblem(
        name="chain",
        layers=[layer(f"l{i}") for i in range(3)],
        edges=[(0, 1), (1, 2)],
        cluster=flat(5, 1e9),
        microbatches=4,
        allow_replication=False,
    )
    result = distplan.solve(problem, "pipedream_dp")
    check_plan(problem, result)
    assert [len(g) for g in result.plan.gpus_of_stage] == [1, 1, 1]
    assert result.metrics["pipedream_used_fewer_machines"] is True


def test_bad_option_is_rejected() -> None:
    """A mistyped option value raises ValueError naming the option."""
    problem = PipelineProblem(
        name="one", layers=[layer("l0")], cluster=flat(2, 1e9), microbatches=1
    )
    with pytest.raises(ValueError, match="options.bandwidth"):
        distplan.solve(problem, "pipedream_dp", options={"bandwidth": "fast"})
    with pytest.raises(ValueError, match="options.max_states"):
        distplan.solve(problem, "pipedream_dp", options={"max_states": "many"})


@pytest.mark.parametrize(
    ("profile", "per_server", "servers", "intra", "inter", "bottleneck", "top", "inside"),
    HIERARCHICAL_REFERENCE,
)
def test_hierarchical_mode_matches_pipedream_optimizer(
    profiles: Path,
    profile: str,
    per_server: int,
    servers: int,
    intra: float,
    inter: float,
    bottleneck: float,
    top: list[int],
    inside: list[list[int]],
) -> None:
    """PipeDream's two-level mode: the bottleneck within 0.5 % of its own, with its replication at both levels."""
    problem = import_pipedream(profiles / profile / "graph.txt", flat(per_server * servers, 1e9), 1)
    cleaned, states, label = pipedream_states(problem)
    assert label == "antichain"
    graph = cleaned.graph
    membership = np.zeros((states.num_states, graph.num_nodes))
    for p, ideal in enumerate(states.ideals):
        membership[p, mask_indices(ideal, graph.num_nodes)] = 1.0
    is_predecessor = np.zeros((states.num_states, states.num_states), dtype=bool)
    for a, mask in enumerate(states.predecessors):
        is_predecessor[a, mask_indices(mask, states.num_states)] = True
    found, level1, level2 = hierarchical_partition(
        membership @ graph.work_s,
        membership @ graph.parameter_bytes,
        is_predecessor,
        [(per_server, intra), (servers, inter)],
    )
    assert found == pytest.approx(bottleneck, rel=5e-3)
    assert [r for _, _, r in level2] == top
    assert [[r for _, _, r in stages] for stages in level1] == inside
    assert level2[-1][1] == states.num_states


def test_multi_server_preset_runs_the_hierarchical_mode() -> None:
    """On 2x4-10gbe pipedream_dp runs two levels: 4 GPUs at NVLink speed, 2 servers at the 10 GbE NIC's."""
    problem = distplan.load_instance(INSTANCES / "resnet18__2x4-10gbe__k4.json")
    result = distplan.solve(problem, "pipedream_dp")
    check_plan(problem, result)
    assert result.metrics["pipedream_levels"] == [[4, 50e9], [2, 1.25e9]]
    flat_mode = distplan.solve(problem, "pipedream_dp", options={"hierarchy": "flat"})
    check_plan(problem, flat_mode)
    assert "pipedream_levels" not in flat_mode.metrics
