"""Tests of the list scheduler and its event model."""

from __future__ import annotations

import random

import pytest

from distplan.models.network import Network, NetworkLink, NetworkNode
from distplan.models.pipeline import GPU, Cluster, PipelineLayer, PipelineProblem
from distplan.planners.pipeline.list_schedule import (
    EventModel,
    list_schedule,
    memory_caps,
    stage_facts,
)
from distplan.planners.pipeline.schedules import make_plan, peak_in_flight, stage_orders
from distplan.planners.pipeline.simulator import evaluate_plan


def random_problem(
    seed: int, num_layers: int = 12, num_gpus: int = 6, k: int = 5, memory: float = 1e12
) -> PipelineProblem:
    """A random DAG (chain plus skip edges) on a two-server heterogeneous cluster."""
    rng = random.Random(seed)
    layers = [
        PipelineLayer(
            name=f"l{i}",
            forward_s=rng.uniform(0.1, 1.0),
            backward_s=rng.uniform(0.2, 2.0),
            activation_bytes=rng.uniform(1e6, 5e7),
            parameter_bytes=rng.uniform(0, 2e8),
        )
        for i in range(num_layers)
    ]
    edges = [(i, i + 1) for i in range(num_layers - 1)]
    edges += [(i, i + 3) for i in range(0, num_layers - 3, 4)]
    gpus = [
        GPU(name=f"g{i}", memory_bytes=memory, speed=rng.choice([0.5, 1.0, 2.0]))
        for i in range(num_gpus)
    ]
    half = num_gpus // 2
    bandwidth = [
        [0.0 if i == j else (50e9 if (i < half) == (j < half) else 1e9) for j in range(num_gpus)]
        for i in range(num_gpus)
    ]
    latency = [[0.0 if i == j else 1e-4 for j in range(num_gpus)] for i in range(num_gpus)]
    cluster = Cluster(gpus=gpus, bandwidth_bytes_per_s=bandwidth, latency_s=latency)
    return PipelineProblem(
        name=f"random{seed}", layers=layers, edges=edges, cluster=cluster, microbatches=k
    )


def shared_nic_problem(seed: int, k: int = 4) -> PipelineProblem:
    """random_problem's layers on two servers of three GPUs behind one 1.25 GB/s NIC each (network form),
    with 8 whole samples per micro-batch and a 1 ms launch overhead per layer and task."""
    base = random_problem(seed, k=k)
    gpus = [
        GPU(name=g.name, memory_bytes=g.memory_bytes, speed=g.speed, server=f"s{i // 3}")
        for i, g in enumerate(base.cluster.gpus)
    ]
    nodes = [NetworkNode(name=g.name, role="compute") for g in gpus]
    nodes += [NetworkNode(name=n) for n in ("pcie0", "pcie1", "nic0", "nic1", "tor")]
    links = [
        NetworkLink(source=g.name, target=f"pcie{i // 3}", bandwidth_bytes_per_s=16e9)
        for i, g in enumerate(gpus)
    ]
    links += [
        NetworkLink(source=f"pcie{s}", target=f"nic{s}", bandwidth_bytes_per_s=16e9)
        for s in range(2)
    ]
    links += [
        NetworkLink(source=f"nic{s}", target="tor", bandwidth_bytes_per_s=1.25e9, latency_s=1e-5)
        for s in range(2)
    ]
    cluster = Cluster(gpus=gpus, network=Network(nodes=nodes, links=links))
    return base.model_copy(
        update={"cluster": cluster, "samples_per_microbatch": 8, "launch_overhead_s": 1e-3}
    )


def random_plan(problem: PipelineProblem, rng: random.Random) -> tuple[list[int], list[list[int]]]:
    """A random contiguous partition with random replica groups."""
    n_layers, n_gpus = len(problem.layers), problem.num_gpus
    num_stages = rng.randint(1, min(4, n_gpus))
    cuts = [0, *sorted(rng.sample(range(1, n_layers), num_stages - 1)), n_layers]
    order = problem.topological_order
    stage_of_layer = [0] * n_layers
    for s in range(num_stages):
        for p in range(cuts[s], cuts[s + 1]):
            stage_of_layer[order[p]] = s
    gpus = list(range(n_gpus))
    rng.shuffle(gpus)
    sizes = [1] * num_stages
    for _ in range(rng.randint(0, n_gpus - num_stages)):
        sizes[rng.randrange(num_stages)] += 1
    groups, start = [], 0
    for size in sizes:
        groups.append(gpus[start : start + size])
        start += size
    return stage_of_layer, groups


def assert_valid_orders(orders: list[list[tuple[int, str]]], num_stages: int, k: int) -> None:
    assert len(orders) == num_stages
    for order in orders:
        assert sorted(order) == sorted((m, p) for m in range(k) for p in "FB")
        seen_forward: set[int] = set()
        for m, phase in order:
            if phase == "F":
                seen_forward.add(m)
            else:
                assert m in seen_forward
        forwards = [m for m, phase in order if phase == "F"]
        assert forwards == sorted(forwards)


@pytest.mark.parametrize("seed", range(8))
def test_list_orders_are_complete_valid_and_accepted(seed):
    """Every stage's list order holds each task once, F before B, and the simulator replays it without violations."""
    problem = random_problem(seed)
    rng = random.Random(seed)
    for _ in range(3):
        stage_of_layer, groups = random_plan(problem, rng)
        orders = list_schedule(problem, stage_of_layer, groups)
        assert orders is not None
        assert_valid_orders(orders, len(groups), problem.microbatches)
        evaluation = evaluate_plan(
            problem, make_plan(stage_of_layer, groups, "list", problem.microbatches, orders)
        )
        assert evaluation.feasible, evaluation.violations


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("make", [random_problem, shared_nic_problem])
def test_event_model_matches_simulator_on_fixed_orders(seed, make):
    """The event model replays GPipe and 1F1B orders to the simulator's time, private links or shared NICs."""
    problem = make(seed, k=4)
    rng = random.Random(100 + seed)
    for _ in range(3):
        stage_of_layer, groups = random_plan(problem, rng)
        model = EventModel(problem, stage_of_layer, groups)
        for schedule in ("gpipe", "1f1b"):
            orders = stage_orders(schedule, len(groups), problem.microbatches)
            seconds, _ = model.run(orders=orders)
            evaluation = evaluate_plan(
                problem, make_plan(stage_of_layer, groups, schedule, problem.microbatches)
            )
            if any("gets no sample" in v for v in evaluation.violations):
                assert seconds == float("inf")  # a replica without a whole sample: no plan
            else:
                assert seconds == pytest.approx(evaluation.objective, rel=1e-12)


def test_list_order_time_matches_simulator():
    """The time the event model reports for the chosen list order is what the simulator measures."""
    problem = random_problem(3, k=6)
    stage_of_layer, groups = random_plan(problem, random.Random(7))
    orders = list_schedule(problem, stage_of_layer, groups)
    seconds, _ = EventModel(problem, stage_of_layer, groups).run(orders=orders)
    evaluation = evaluate_plan(
        problem, make_plan(stage_of_layer, groups, "list", problem.microbatches, orders)
    )
    assert seconds == pytest.approx(evaluation.objective, rel=1e-12)


def test_list_respects_memory_cap():
    """With memory for only two stashed micro-batches on stage 0, its list order never holds more than two."""
    # Stage 0 stashes 1e9 bytes per micro-batch and holds 2.5e9 bytes: at most 2 in flight.
    layers = [
        PipelineLayer(name="a", forward_s=1, backward_s=1, activation_bytes=1e9, parameter_bytes=0),
        PipelineLayer(name="b", forward_s=1, backward_s=1, activation_bytes=1e3, parameter_bytes=0),
    ]
    gpus = [GPU(name="g0", memory_bytes=2.5e9), GPU(name="g1", memory_bytes=1e12)]
    cluster = Cluster(gpus=gpus, bandwidth_bytes_per_s=[[0, 1e9], [1e9, 0]])
    problem = PipelineProblem(
        name="cap", layers=layers, edges=[(0, 1)], cluster=cluster, microbatches=6
    )
    facts = stage_facts(problem, [0, 1], 2)
    assert memory_caps(problem, facts, [[0], [1]]) == [2, 6]
    orders = list_schedule(problem, [0, 1], [[0], [1]])
    assert orders is not None
    assert peak_in_flight(orders[0]) <= 2
    evaluation = evaluate_plan(problem, make_plan([0, 1], [[0], [1]], "list", 6, orders))
    assert evaluation.feasible, evaluation.violations


def test_list_returns_none_when_weights_do_not_fit():
    """A stage whose weights and optimizer state exceed its GPU gets no list order."""
    layers = [
        PipelineLayer(name="a", forward_s=1, backward_s=1, activation_bytes=1, parameter_bytes=1e9)
    ]
    cluster = Cluster(gpus=[GPU(name="g0", memory_bytes=2e9)], bandwidth_bytes_per_s=[[0.0]])
    problem = PipelineProblem(name="big", layers=layers, cluster=cluster, microbatches=2)
    assert list_schedule(problem, [0], [[0]]) is None


def test_list_is_no_slower_than_fixed_schedules_on_a_bottlenecked_pipeline():
    """On a pipeline with a slow middle stage the list order is at least as fast as GPipe and 1F1B."""
    layers = [
        PipelineLayer(
            name=n, forward_s=f, backward_s=2 * f, activation_bytes=1e8, parameter_bytes=0
        )
        for n, f in (("a", 1.0), ("b", 3.0), ("c", 1.0))
    ]
    gpus = [GPU(name=f"g{i}", memory_bytes=1e12) for i in range(3)]
    cluster = Cluster(
        gpus=gpus,
        bandwidth_bytes_per_s=[[0 if i == j else 1e9 for j in range(3)] for i in range(3)],
    )
    problem = PipelineProblem(
        name="neck", layers=layers, edges=[(0, 1), (1, 2)], cluster=cluster, microbatches=6
    )
    groups = [[0], [1], [2]]
    orders = list_schedule(problem, [0, 1, 2], groups)
    listed = evaluate_plan(problem, make_plan([0, 1, 2], groups, "list", 6, orders)).objective
    for schedule in ("gpipe", "1f1b"):
        fixed = evaluate_plan(problem, make_plan([0, 1, 2], groups, schedule, 6)).objective
        assert listed <= fixed + 1e-9
