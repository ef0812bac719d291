"""Hand-made ``dssync`` instances for the evaluator and solver tests."""

from __future__ import annotations

from distplan.models.dssync import DssyncProblem, TrainingTask, Worker
from distplan.models.network import Network, NetworkLink, NetworkNode

TASK = TrainingTask(
    dimension=4,
    samples_per_worker=8,
    learning_rate=0.5,
    batch_size=4,
    target_loss=0.0,
    max_iterations=5,
    seed=3,
)


def two_rack_problem(
    racks: dict[str, list[str]],
    nic: float = 1e9,
    uplink: float = 1e9,
    model_bytes: float = 1e8,
    alpha_s: float = 0.0,
    compute_s: float = 0.1,
) -> DssyncProblem:
    """Racks of hosts (one worker each) behind switches ``tor-<rack>``, joined by a spine."""
    nodes = [NetworkNode(name="spine")]
    links = []
    workers = []
    for rack, hosts in racks.items():
        nodes.append(NetworkNode(name=f"tor-{rack}"))
        links.append(
            NetworkLink(source=f"tor-{rack}", target="spine", bandwidth_bytes_per_s=uplink)
        )
        for host in hosts:
            nodes.append(NetworkNode(name=host, role="compute"))
            links.append(NetworkLink(source=host, target=f"tor-{rack}", bandwidth_bytes_per_s=nic))
            workers.append(
                Worker(name=host, host=host, rack=rack, nic_bytes_per_s=nic, compute_s=compute_s)
            )
    return DssyncProblem(
        name="hand-made",
        network=Network(nodes=nodes, links=links),
        workers=workers,
        model_bytes=model_bytes,
        alpha_s=alpha_s,
        training=TASK,
    )
