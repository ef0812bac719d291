"""The DNN layer DAG several kinds share (pipeline training, edge inference).

A :class:`LayerGraph` is a list of profiled layers and the data edges between
them. A kind's problem either subclasses it (``class PipelineProblem(LayerGraph,
...)`` keeps ``layers`` and ``edges`` at the top level of its JSON) or holds one
as a field. Validation names the offending index; derived lookups (topological
order, predecessors, successors) are built once, after validation.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import Annotated

import networkx as nx
from pydantic import Field, model_validator

from .base import StrictModel

__all__ = ["MAX_LAYERS", "DNNLayer", "FiniteNonNegative", "LayerGraph", "topological_order"]

#: Most layers a graph may have (the largest shipped profile has a few hundred).
MAX_LAYERS = 100_000

#: A finite number >= 0 (``inf`` and ``nan`` are rejected with a message naming the field).
FiniteNonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def topological_order(nodes: Iterable[int], edges: Iterable[tuple[int, int]]) -> list[int] | None:
    """Nodes in a deterministic topological order, or None when the edges form a cycle.

    Kahn's algorithm taking the smallest ready node first
    (``networkx.lexicographical_topological_sort``).

    Examples
    --------
    >>> topological_order(range(3), [(2, 1), (0, 2)])
    [0, 2, 1]
    """
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    try:
        return list(nx.lexicographical_topological_sort(graph))
    except nx.NetworkXUnfeasible:
        return None


class DNNLayer(StrictModel):
    """One layer (or merged block of layers) of a DNN, profiled per micro-batch.

    Times are seconds on a speed-1.0 device for one whole micro-batch; sizes are
    bytes. An inference-only kind leaves ``backward_s`` at 0.
    """

    name: str = Field(min_length=1, max_length=500)
    forward_s: FiniteNonNegative = Field(
        description="forward seconds per micro-batch on a speed-1.0 GPU"
    )
    backward_s: FiniteNonNegative = Field(
        default=0.0, description="backward seconds per micro-batch on a speed-1.0 GPU"
    )
    activation_bytes: FiniteNonNegative = Field(
        description="output activation bytes per micro-batch"
    )
    parameter_bytes: FiniteNonNegative = Field(description="parameter bytes (weights)")


class LayerGraph(StrictModel):
    """Layers and the directed data edges ``[producer, consumer]`` between them (a DAG)."""

    layers: list[DNNLayer] = Field(min_length=1, max_length=MAX_LAYERS)
    edges: list[tuple[int, int]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_graph(self) -> LayerGraph:
        n = len(self.layers)
        seen: set[tuple[int, int]] = set()
        for k, (u, v) in enumerate(self.edges):
            for end in (u, v):
                if not 0 <= end < n:
                    raise ValueError(
                        f"edges[{k}]: layer index {end} is out of range (there are {n} layers)"
                    )
            if u == v:
                raise ValueError(f"edges[{k}]: self-loop on layer {u}")
            if (u, v) in seen:
                raise ValueError(f"edges[{k}]: duplicate edge {u} -> {v}")
            seen.add((u, v))
        if len(self.topological_order) != n:
            raise ValueError("edges: the layer graph has a cycle; it must be a DAG")
        return self

    @cached_property
    def topological_order(self) -> list[int]:
        """Layer indices in a deterministic topological order (Kahn, smallest index first); empty on a cycle."""
        return topological_order(range(len(self.layers)), self.edges) or []

    def _adjacency(self, consumers: bool) -> list[list[int]]:
        """Sorted consumers (or producers) of every layer."""
        out: list[list[int]] = [[] for _ in self.layers]
        for u, v in self.edges:
            if consumers:
                out[u].append(v)
            else:
                out[v].append(u)
        return [sorted(items) for items in out]

    @cached_property
    def successors(self) -> list[list[int]]:
        """Consumers of every layer, sorted."""
        return self._adjacency(consumers=True)

    @cached_property
    def predecessors(self) -> list[list[int]]:
        """Producers of every layer, sorted."""
        return self._adjacency(consumers=False)
