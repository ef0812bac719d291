"""The planners' network cost estimates charge shared NICs and pick the all-reduce the simulator picks."""

from __future__ import annotations

import pytest

from distplan.models.network import Network, NetworkLink, NetworkNode
from distplan.models.pipeline import GPU, Cluster, PipelineLayer, PipelineProblem
from distplan.planners.pipeline.costs import ClusterView, replica_shares
from distplan.planners.pipeline.schedules import make_plan
from distplan.planners.pipeline.simulator import evaluate_plan

NIC = 1.25e9  # bytes/s, one 10 GbE card per server
PCIE = 16e9


def two_servers(per_server: int = 2) -> Cluster:
    """Two servers of ``per_server`` GPUs behind a PCIe switch and one 10 GbE NIC each, joined by a switch."""
    gpus = [
        GPU(name=f"s{s}g{g}", memory_bytes=1e12, server=f"s{s}")
        for s in range(2)
        for g in range(per_server)
    ]
    nodes = [NetworkNode(name=g.name, role="compute") for g in gpus]
    nodes += [NetworkNode(name=n) for n in ("pcie0", "pcie1", "nic0", "nic1", "switch")]
    links = [
        NetworkLink(source=g.name, target=f"pcie{g.server[1]}", bandwidth_bytes_per_s=PCIE)
        for g in gpus
    ]
    links += [
        NetworkLink(source=f"pcie{s}", target=f"nic{s}", bandwidth_bytes_per_s=PCIE)
        for s in range(2)
    ]
    links += [
        NetworkLink(source=f"nic{s}", target="switch", bandwidth_bytes_per_s=NIC) for s in range(2)
    ]
    return Cluster(gpus=gpus, network=Network(nodes=nodes, links=links))


def problem_on(cluster: Cluster, samples: int | None = None) -> PipelineProblem:
    layers = [
        PipelineLayer(
            name=f"l{i}", forward_s=0.01, backward_s=0.02, activation_bytes=1e8, parameter_bytes=1e9
        )
        for i in range(2)
    ]
    return PipelineProblem(
        name="t",
        layers=layers,
        edges=[(0, 1)],
        cluster=cluster,
        microbatches=2,
        samples_per_microbatch=samples,
    )


def test_two_replicas_share_their_servers_nic():
    """A boundary whose two replicas send across servers costs the NIC's time for all bytes, not half of it."""
    view = ClusterView(problem_on(two_servers()))
    one = view.group_transfer_s([0], [2], 1e8)
    both = view.group_transfer_s([0, 1], [2], 1e8)
    assert one == pytest.approx(1e8 / NIC)
    assert both == pytest.approx(1e8 / NIC)  # two halves through one NIC: as long as the whole
    assert view.group_transfer_s([0, 1], [2, 3], 2e8) == pytest.approx(2 * one)


def test_allreduce_estimate_matches_the_simulator():
    """The all-reduce estimate over four replicas on two servers equals the simulated all-reduce time."""
    problem = problem_on(two_servers())
    view = ClusterView(problem)
    plan = make_plan([0, 0], [[0, 1, 2, 3]], "gpipe", problem.microbatches)
    evaluation = evaluate_plan(problem, plan)
    assert evaluation.feasible, evaluation.violations
    assert float(view.allreduce_s([0, 1, 2, 3], 2e9)) == pytest.approx(
        evaluation.metrics["allreduce_s"][0], rel=1e-9
    )


def test_whole_sample_shares():
    """With 3 samples per micro-batch two equal replicas get 2 and 1 samples (largest remainder)."""
    problem = problem_on(two_servers(), samples=3)
    assert [float(s) for s in replica_shares(problem, [0, 1])] == pytest.approx([2 / 3, 1 / 3])
