"""Graph helpers the models and importers share."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx


def topological_order(nodes: Iterable[int], edges: Iterable[tuple[int, int]]) -> list[int] | None:
    """Nodes in a deterministic topological order, or None when the edges form a cycle.

    Kahn's algorithm taking the smallest ready node first
    (``networkx.lexicographical_topological_sort``).
    """
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    try:
        return list(nx.lexicographical_topological_sort(graph))
    except nx.NetworkXUnfeasible:
        return None
