"""The simulator on physical networks: shared NICs, whole samples, launch overhead, all-reduce choice."""

from __future__ import annotations

import pytest

from distplan.models.network import Network, NetworkLink, NetworkNode
from distplan.models.pipeline import GPU, Cluster, PipelineLayer, PipelinePlan, PipelineProblem
from distplan.planners.pipeline.clusters import load_cluster, servers
from distplan.planners.pipeline.simulator import evaluate_plan, simulate
from distplan.planners.pipeline.simulator_allreduce import ring_steps, two_level_steps


def gpipe(k: int) -> list[tuple[int, str]]:
    return [(m, "F") for m in range(k)] + [(m, "B") for m in range(k)]


def layer(name: str, seconds: float = 0.0, act: float = 0.0, params: float = 0.0) -> PipelineLayer:
    return PipelineLayer(
        name=name,
        forward_s=seconds,
        backward_s=seconds,
        activation_bytes=act,
        parameter_bytes=params,
    )


def two_servers_one_nic_each(nic_bytes_per_s: float) -> Cluster:
    """a0, a1 behind NIC a; b0, b1 behind NIC b; NICs on one switch; 100x faster links inside."""
    gpus = [GPU(name=n, memory_bytes=1e12, server=n[0]) for n in ("a0", "a1", "b0", "b1")]
    nodes = [NetworkNode(name=g.name, role="compute", capacity_bytes_per_s=None) for g in gpus]
    nodes += [NetworkNode(name=n, capacity_bytes_per_s=None) for n in ("nic-a", "nic-b", "switch")]
    fast = 100 * nic_bytes_per_s
    links = [
        NetworkLink(source=g, target=f"nic-{g[0]}", bandwidth_bytes_per_s=fast)
        for g in ("a0", "a1", "b0", "b1")
    ]
    links += [
        NetworkLink(source=nic, target="switch", bandwidth_bytes_per_s=nic_bytes_per_s)
        for nic in ("nic-a", "nic-b")
    ]
    return Cluster(gpus=gpus, network=Network(nodes=nodes, links=links))


def fan_in(
    cluster: Cluster, senders: list[int], receiver: int
) -> tuple[PipelineProblem, PipelinePlan]:
    """One zero-compute layer per sender, each sending 1e9 bytes to one layer on ``receiver``."""
    layers = [layer(f"x{i}", act=1e9) for i in range(len(senders))] + [layer("z")]
    edges = [(i, len(senders)) for i in range(len(senders))]
    problem = PipelineProblem(
        name="fan-in", layers=layers, edges=edges, cluster=cluster, microbatches=1
    )
    plan = PipelinePlan(
        stage_of_layer=list(range(len(layers))),
        gpus_of_stage=[[g] for g in senders] + [[receiver]],
        order_of_stage=[gpipe(1)] * len(layers),
        schedule="gpipe",
    )
    return problem, plan


def last_activation_end(problem: PipelineProblem, plan: PipelinePlan) -> float:
    return max(t.end_s for t in simulate(problem, plan).transfers if t.kind == "activation")


def test_two_transfers_through_one_nic_take_twice_as_long_as_one():
    """1e9 bytes through a 1e9 B/s NIC take 1 s (plus 1% inside); two such transfers end at 2 s."""
    cluster = two_servers_one_nic_each(1e9)
    one = last_activation_end(*fan_in(cluster, [0], 2))
    two = last_activation_end(*fan_in(cluster, [0, 1], 2))
    assert one == pytest.approx(1.0)
    assert two == pytest.approx(2 * one)


def test_matrix_form_gives_each_pair_its_own_link():
    """In the legacy matrix form the same two transfers run side by side (private links)."""
    cluster = servers(2, [1e12, 1e12], [1.0, 1.0], 100e9, 1e9)
    assert last_activation_end(*fan_in(cluster, [0, 1], 2)) == pytest.approx(1.0)


def replicated_pair(cluster: Cluster, first: list[int], second: list[int], act: float):
    problem = PipelineProblem(
        name="pair",
        layers=[layer("x", act=act), layer("y")],
        edges=[(0, 1)],
        cluster=cluster,
        microbatches=1,
        samples_per_microbatch=len(first),
    )
    plan = PipelinePlan(
        stage_of_layer=[0, 1],
        gpus_of_stage=[first, second],
        order_of_stage=[gpipe(1)] * 2,
        schedule="gpipe",
    )
    return problem, plan


def test_preset_inter_server_traffic_is_capped_by_its_nic():
    """On 2x4-10gbe, 4 replicas each sending 1.25e9 bytes across take 4 s: the NIC moves <= 1.25e9 B/s."""
    problem, plan = replicated_pair(load_cluster("2x4-10gbe"), [0, 1, 2, 3], [4, 5, 6, 7], 5e9)
    forward = [t for t in simulate(problem, plan).transfers if t.kind == "activation"]
    assert len(forward) == 4 and {t.nbytes for t in forward} == {1.25e9}
    elapsed = max(t.end_s for t in forward) - min(t.start_s for t in forward)
    assert elapsed == pytest.approx(4.0)
    assert sum(t.nbytes for t in forward) / elapsed <= 1.25e9 * (1 + 1e-9)
    private, plan = replicated_pair(
        servers(4, [32e9] * 2, [1.0] * 2, 50e9, 1.25e9), [0, 1, 2, 3], [4, 5, 6, 7], 5e9
    )
    assert last_activation_end(private, plan) == pytest.approx(1.0)


def split_problem(samples: int, overhead: float = 0.0) -> PipelineProblem:
    return PipelineProblem(
        name="split",
        layers=[layer("x", seconds=1.0)],
        cluster=flat4(),
        microbatches=1,
        samples_per_microbatch=samples,
        launch_overhead_s=overhead,
    )


def one_stage(gpus: list[int], samples: list[int] | None) -> PipelinePlan:
    return PipelinePlan(
        stage_of_layer=[0],
        gpus_of_stage=[gpus],
        samples_of_replica=None if samples is None else [samples],
        order_of_stage=[gpipe(1)],
        schedule="gpipe",
    )


def flat4() -> Cluster:
    """One server of 4 GPUs (matrix form)."""
    return servers(4, [1e12], [1.0], 1e9, 1e9)


def task_seconds(problem: PipelineProblem, plan: PipelinePlan) -> dict[int, float]:
    return {t.gpu: t.end_s - t.start_s for t in simulate(problem, plan).tasks if t.phase == "F"}


def test_replicas_get_whole_samples():
    """A replica's task time is its whole samples over N; a split not summing to N is rejected."""
    problem = split_problem(4)
    assert task_seconds(problem, one_stage([0, 1], [3, 1])) == pytest.approx({0: 0.75, 1: 0.25})
    bad = evaluate_plan(problem, one_stage([0, 1], [3, 2]))
    assert bad.objective is None and "samples_of_replica[0] = [3, 2]" in bad.violations[0]


def test_default_split_is_proportional_whole_samples_and_never_fractional():
    """Without a split, 5 samples over speeds 1, 1, 0.5 become 2, 2, 1; 3 samples over 4 replicas leave one idle."""
    cluster = Cluster(
        gpus=[
            GPU(name=f"g{i}", memory_bytes=1e12, speed=s)
            for i, s in enumerate([1.0, 1.0, 0.5, 1.0])
        ],
        bandwidth_bytes_per_s=[[0 if i == j else 1e9 for j in range(4)] for i in range(4)],
    )
    problem = PipelineProblem.model_validate(
        split_problem(5).model_dump() | {"cluster": cluster.model_dump()}
    )
    times = task_seconds(problem, one_stage([0, 1, 2], None))
    assert times == pytest.approx({0: 2 / 5, 1: 2 / 5, 2: (1 / 5) / 0.5})
    short = PipelineProblem.model_validate(problem.model_dump() | {"samples_per_microbatch": 3})
    report = evaluate_plan(short, one_stage([0, 1, 2, 3], None))
    assert not report.feasible and any("gets no sample" in v for v in report.violations)


def test_launch_overhead_is_paid_whatever_the_share():
    """With o = 0.1 s per layer and task, a quarter share of a 1 s layer takes 0.1 + 0.25 * 0.9 s."""
    problem = split_problem(4, overhead=0.1)
    times = task_seconds(problem, one_stage([0, 1, 2, 3], [1, 1, 1, 1]))
    assert times == pytest.approx({g: 0.1 + 0.25 * 0.9 for g in range(4)})


def test_allreduce_across_a_shared_nic_takes_the_two_level_algorithm():
    """On 2x4-10gbe, 4 replicas on two servers all-reduce 1.25e9 bytes two-level in 1.05 s (ring: 1.5 s)."""
    cluster = load_cluster("2x4-10gbe")
    problem = PipelineProblem(
        name="ar",
        layers=[layer("x", params=1.25e9)],
        cluster=cluster,
        microbatches=1,
        samples_per_microbatch=4,
    )
    plan = one_stage([0, 4, 1, 5], None)
    trace = simulate(problem, plan)
    (record,) = trace.allreduces
    # Leaders 0 and 4 swap halves twice through the NICs (2 x 0.625e9 / 1.25e9 = 1 s); four intra-server
    # steps of 0.625e9 bytes over 50e9 B/s NVLink add 4 x 0.0125 s.
    assert record.algorithm == "two-level"
    assert record.end_s - record.start_s == pytest.approx(1.05)


def test_replica_transfers_split_by_whole_sample_intervals():
    """Senders with 3 and 1 samples, receivers with 2 and 2 (N = 4): bytes follow the sample overlaps."""
    problem = PipelineProblem(
        name="overlap",
        layers=[layer("x", act=400.0), layer("y")],
        edges=[(0, 1)],
        cluster=flat4(),
        microbatches=1,
        samples_per_microbatch=4,
    )
    plan = PipelinePlan.model_validate(
        one_stage([0], None).model_dump()
        | {
            "stage_of_layer": [0, 1],
            "gpus_of_stage": [[0, 1], [2, 3]],
            "samples_of_replica": [[3, 1], [2, 2]],
            "order_of_stage": [gpipe(1)] * 2,
        }
    )
    forward = [t for t in simulate(problem, plan).transfers if t.kind == "activation"]
    sent = sorted((t.src_gpu, t.dst_gpu, t.nbytes) for t in forward)
    # sender 0 holds samples [0, 3), sender 1 [3, 4); receiver 2 holds [0, 2), receiver 3 [2, 4).
    assert sent == [(0, 2, 200.0), (0, 3, 100.0), (1, 3, 100.0)]


def test_ring_allreduce_visits_replicas_server_by_server():
    """Replicas listed 0, 4, 1, 5 ring as 0 -> 1 -> 4 -> 5 -> 0: each server boundary crossed once per step."""
    servers_of_replica = ["s0", "s1", "s0", "s1"]  # positions 0..3 hold GPUs 0, 4, 1, 5
    first_step = ring_steps(servers_of_replica, 8.0)[0]
    assert sorted((p, q) for p, q, _ in first_step) == [(0, 2), (1, 3), (2, 1), (3, 0)]
    assert len(ring_steps(servers_of_replica, 8.0)) == 6
    assert two_level_steps(["s0", "s0", "s0"], 8.0) is None  # one server: ring only


def test_one_server_allreduce_is_a_ring():
    """On nvswitch-8, 4 replicas all-reduce 4e9 bytes by ring: 6 steps of 1e9 bytes at 150e9 B/s."""
    problem = PipelineProblem(
        name="ring",
        layers=[layer("x", params=4e9)],
        cluster=load_cluster("nvswitch-8"),
        microbatches=1,
        samples_per_microbatch=4,
    )
    (record,) = simulate(problem, one_stage([0, 1, 2, 3], None)).allreduces
    assert record.algorithm == "ring" and record.steps == 6
    assert record.end_s - record.start_s == pytest.approx(6 * 1e9 / 150e9)
