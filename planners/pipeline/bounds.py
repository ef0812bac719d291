"""Lower bound on the iteration time valid for ANY plan (a physical floor), and the memory pre-check.

Both follow from the semantics in ``models/pipeline.py`` alone.

The floor is the largest of three terms, each valid for every feasible plan:

1. *Compute.* Every micro-batch's forward and backward work is done somewhere,
   and a GPU of speed ``v`` does at most ``v`` seconds of speed-1 work per
   second. With the launch overhead a replica pays ``o + share (t - o) >=
   share t`` per layer, so the replicas of a stage together do at least the
   layer's ``t``: ``T >= K * sum(forward_s + backward_s) / sum(speed)``.
2. *Server cut* and 3. *GPU cut* (the same argument on two partitions of the
   GPUs into groups: servers, and single GPUs). Suppose no group can hold the
   whole model: ``(1 + optimizer_state_factor) * sum(parameter_bytes)`` exceeds
   every group's memory. Take any sample of any micro-batch. Each layer runs it
   on the replica of its stage whose sample interval holds it. If all those
   replicas sat in one group, that group would hold a replica of every stage,
   hence the weights and optimizer state of every layer, which does not fit.
   So the sample's layers span two groups and, the layer DAG being weakly
   connected, some edge ``(u, v)`` has its two layers in different groups: the
   sample's share ``activation_bytes[u] / N`` goes from one group to another
   forward, and the same bytes come back as gradients. Summed over the N
   samples and K micro-batches, at least ``2 K c`` bytes leave some group, with
   ``c = min activation_bytes[u]`` over layers with a consumer. Now the
   network: under the simulator's rule a transfer holds every resource of its
   route for at least ``bytes / bottleneck`` seconds and transfers on one
   resource never overlap, so spreading every transfer that leaves group ``X``
   evenly over ``[0, T]`` gives a feasible flow out of ``X`` (each resource
   carries at most ``capacity * (sum of its busy time) / T <= capacity``).
   Hence the bytes leaving ``X`` are at most ``T * maxflow(X -> rest)``, and
   ``T >= 2 K c / sum over groups X of maxflow(X -> rest)``. Max-flows ignore
   the rule that GPUs may not relay (a relaxation: flows only grow, the bound
   stays valid) and count capacitated forwarding nodes by node splitting.

When some group can hold the model (all shipped instances: their models fit in
one server) terms 2 and 3 are 0; the floor is then the compute term.
"""

from __future__ import annotations

import math

import networkx as nx

from ...models.network import Network
from ...models.pipeline import Cluster, PipelineProblem

__all__ = ["cut_floor_s", "iteration_lower_bound", "memory_infeasibility", "out_capacity"]

GB = 1e9


def _flow_graph(network: Network) -> nx.DiGraph:
    """Directed links as arcs; a capacitated node ``x`` becomes ``x/in -> x/out`` with its capacity."""
    graph = nx.DiGraph()

    def head(name: str) -> str:
        node = network.node_by_name[name]
        return f"{name}/in" if node.capacity_bytes_per_s is not None else name

    def tail(name: str) -> str:
        node = network.node_by_name[name]
        return f"{name}/out" if node.capacity_bytes_per_s is not None else name

    for node in network.nodes:
        if node.capacity_bytes_per_s is not None:
            graph.add_edge(
                f"{node.name}/in", f"{node.name}/out", capacity=node.capacity_bytes_per_s
            )
    for link in network.directed_links:
        graph.add_edge(tail(link.source), head(link.target), capacity=link.bandwidth_bytes_per_s)
    return graph


def _out_capacity(cluster: Cluster, groups: tuple[str, ...]) -> tuple[float, ...]:
    if len(set(groups)) < 2:
        return tuple(0.0 for _ in set(groups))
    network = cluster.fabric
    base = _flow_graph(network)
    out: list[float] = []
    for group in sorted(set(groups)):
        graph = base.copy()
        for gpu, node in enumerate(cluster.node_of_gpu):
            name = (
                node if network.node_by_name[node].capacity_bytes_per_s is None else f"{node}/out"
            )
            if groups[gpu] == group:
                graph.add_edge("__source__", name)  # no capacity attribute: unbounded
            else:
                sink = (
                    node
                    if network.node_by_name[node].capacity_bytes_per_s is None
                    else f"{node}/in"
                )
                graph.add_edge(sink, "__sink__")
        out.append(float(nx.maximum_flow_value(graph, "__source__", "__sink__")))
    return tuple(out)


def out_capacity(cluster: Cluster, groups: list[str]) -> dict[str, float]:
    """Max-flow in bytes/s from each group's GPUs to all other GPUs (relaying allowed everywhere).

    Parameters
    ----------
    cluster
        The cluster.
    groups
        The group name of every GPU (e.g. ``cluster.server_of_gpu``).
    """
    names = sorted(set(groups))
    return dict(zip(names, _out_capacity(cluster, tuple(groups)), strict=True))


def cut_floor_s(problem: PipelineProblem, groups: list[str]) -> float:
    """Term 2/3 of the module docstring for one partition of the GPUs into ``groups``, seconds."""
    if len(set(groups)) < 2 or len(problem.layers) < 2:
        return 0.0
    model_bytes = (1.0 + problem.optimizer_state_factor) * sum(
        layer.parameter_bytes for layer in problem.layers
    )
    memory: dict[str, float] = {}
    for gpu, group in zip(problem.cluster.gpus, groups, strict=True):
        memory[group] = memory.get(group, 0.0) + gpu.memory_bytes
    if model_bytes <= max(memory.values()):
        return 0.0
    dag = nx.Graph()
    dag.add_nodes_from(range(len(problem.layers)))
    dag.add_edges_from(problem.edges)
    if not nx.is_connected(dag):
        return 0.0
    cheapest = min(problem.layers[u].activation_bytes for u, _ in problem.edges)
    capacity = sum(out_capacity(problem.cluster, groups).values())
    if cheapest <= 0 or capacity <= 0 or math.isinf(capacity):
        return 0.0
    return 2.0 * problem.microbatches * cheapest / capacity


def iteration_lower_bound(problem: PipelineProblem) -> float:
    """A lower bound on the iteration time of every feasible plan, seconds (see the module docstring)."""
    work_s = sum(layer.forward_s + layer.backward_s for layer in problem.layers)
    total_speed = sum(gpu.speed for gpu in problem.cluster.gpus)
    compute = problem.microbatches * work_s / total_speed
    per_gpu = [gpu.name for gpu in problem.cluster.gpus]
    return max(
        compute,
        cut_floor_s(problem, problem.cluster.server_of_gpu),
        cut_floor_s(problem, per_gpu),
    )


def memory_infeasibility(problem: PipelineProblem) -> str | None:
    """Why no plan can fit in GPU memory, or None when that is not ruled out.

    Necessary conditions only: every layer's weights and optimizer state fit on
    the largest GPU (a layer cannot be split), and the model's weights and
    optimizer state fit on all GPUs together (replicas only add copies).
    """
    factor = 1.0 + problem.optimizer_state_factor
    gpus = problem.cluster.gpus
    largest = max(gpus, key=lambda g: g.memory_bytes)
    for index, layer in enumerate(problem.layers):
        need = factor * layer.parameter_bytes
        if need > largest.memory_bytes:
            return (
                f"layer {index} ({layer.name}) needs {need / GB:.1f} GB for weights and optimizer state, "
                f"largest GPU holds {largest.memory_bytes / GB:.1f} GB"
            )
    need = factor * sum(layer.parameter_bytes for layer in problem.layers)
    total = sum(g.memory_bytes for g in gpus)
    if need > total:
        return (
            f"layers 0-{len(problem.layers) - 1} need {need / GB:.1f} GB for weights and optimizer state, "
            f"the {len(gpus)} GPUs hold {total / GB:.1f} GB together"
        )
    return None
