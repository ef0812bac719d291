"""Small pipeline instances every pipeline solver must handle (the conformance tests use them)."""

from __future__ import annotations

from ...models.network import Network, NetworkLink, NetworkNode
from ...models.pipeline import GPU, Cluster, PipelineLayer, PipelineProblem
from .clusters import flat

__all__ = ["small_examples"]


def _chain(name: str, forward_s: list[float], gpus: int, microbatches: int) -> PipelineProblem:
    layers = [
        PipelineLayer(
            name=f"{name}-l{i}",
            forward_s=f,
            backward_s=2 * f,
            activation_bytes=1e6,
            parameter_bytes=4e6,
        )
        for i, f in enumerate(forward_s)
    ]
    return PipelineProblem(
        name=name,
        layers=layers,
        edges=[(i, i + 1) for i in range(len(layers) - 1)],
        cluster=flat(gpus, 1e10, memory=16e9),
        microbatches=microbatches,
    )


def two_servers_one_nic_each() -> Cluster:
    """Network form: 2 servers x 2 GPUs, 50e9 B/s inside a server, one 1.25e9 B/s NIC per server."""
    nodes = [NetworkNode(name="tor", role="forward")]
    links = []
    gpus = []
    for server in range(2):
        nodes.append(NetworkNode(name=f"s{server}-pcie", role="forward"))
        links.append(
            NetworkLink(source=f"s{server}-pcie", target="tor", bandwidth_bytes_per_s=1.25e9)
        )
        for index in range(2):
            name = f"s{server}g{index}"
            nodes.append(NetworkNode(name=name, role="compute"))
            links.append(
                NetworkLink(source=name, target=f"s{server}-pcie", bandwidth_bytes_per_s=50e9)
            )
            gpus.append(GPU(name=name, memory_bytes=16e9, node=name, server=f"s{server}"))
    return Cluster(gpus=gpus, network=Network(nodes=nodes, links=links))


def small_examples() -> list[PipelineProblem]:
    """Two chains and a diamond DAG on private links, and a chain on two servers sharing one NIC each."""
    shared_nic = _chain("chain-shared-nic", [0.002, 0.002, 0.001, 0.003], 2, 4)
    shared_nic = PipelineProblem.model_validate(
        {**shared_nic.model_dump(), "cluster": two_servers_one_nic_each().model_dump()}
    )
    diamond = _chain("diamond", [0.002, 0.001, 0.003, 0.002], 2, 4)
    diamond = PipelineProblem.model_validate(
        {**diamond.model_dump(), "edges": [(0, 1), (0, 2), (1, 3), (2, 3)]}
    )
    return [
        _chain("chain-balanced", [0.001, 0.001, 0.001, 0.001], 2, 4),
        _chain("chain-unbalanced", [0.004, 0.001, 0.001, 0.002, 0.003], 3, 2),
        diamond,
        shared_nic,
    ]
