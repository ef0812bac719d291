"""The graph side of PipeDream's optimizer: clean-up, branch compression, antichain states.

Clean-room reconstruction of ``graph/graph.py`` and the pre-processing in
``optimizer/optimizer_graph_hierarchical.py`` of msr-fiddle/pipedream
(Narayanan et al., SOSP 2019, Sec. 3.1), read for the algorithm; no code was
copied. :mod:`.pipedream_dp` runs the dynamic programme over the states built here.

Steps, as the reference performs them
-------------------------------------
* *Clean-up.* Source nodes whose description starts with ``Input`` are dropped
  (the input always lives on the first stage), then sinks whose description
  starts with ``__getitem__`` (unused outputs of multi-output layers).
* *Antichain DAG* (Sec. 3.1). A state is an antichain (mutually unordered
  nodes); the nodes at or before it (its down-set) are what the first stages of
  a pipeline ending there hold. The search starts from the first remaining
  source and goes breadth-first. From an antichain it moves to every antichain
  obtained by replacing one member of the *augmented* antichain by one of that
  member's successors; the augmented antichain adds to every member ``a`` each
  ancestor of ``a`` with an edge leaving ``a``'s down-set (other than into
  ``a``). A successor qualifies if it is not in the antichain and none of its
  descendants is in the augmented set; members with a descendant in the new set
  are dropped. States are numbered by a depth-first topological sort of this
  DAG from the start state (reverse post-order, successors in discovery order);
  the optimizer's split positions refer to these numbers.
* *Branch compression.* The reference's README says the antichain DAG explodes
  on heavily branched networks (Inception, NASNet) and prescribes
  ``compress_graph_branches.py`` first: every branch leaving a node with several
  consumers is merged, from its head along single-input single-output nodes,
  into one node (up to the node before a merge, or including the first node that
  forks again; a branch ending in a sink leaves that sink out, as the reference
  does). :func:`compress_branches` reproduces it.

Choices where the reference relies on Python set order (not reproducible): the
extra members of an augmented antichain are listed by node index.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...models.graph import topological_order
from ...models.pipeline import PipelineProblem

__all__ = [
    "CleanedGraph",
    "OptimizerGraph",
    "StateSpace",
    "antichain_states",
    "bits",
    "cleaned_graph",
    "compress_branches",
    "graph_of",
    "mask_indices",
    "prefix_states",
]

_NODE_PREFIX = re.compile(r"^node\d+: ")


def bits(mask: int) -> list[int]:
    """Indices of the set bits of ``mask``, ascending."""
    out: list[int] = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def mask_indices(mask: int, size: int) -> np.ndarray:
    """Indices of the set bits of ``mask`` (all below ``size``), ascending, as an array."""
    if mask == 0:
        return np.zeros(0, dtype=np.int64)
    raw = np.frombuffer(mask.to_bytes((size + 7) // 8, "little"), dtype=np.uint8)
    return np.flatnonzero(np.unpackbits(raw, bitorder="little")[:size])


# --------------------------------------------------------------------------- graphs


@dataclass(frozen=True)
class OptimizerGraph:
    """The DAG the optimizer works on; a node is one layer or a compressed block of layers.

    Attributes
    ----------
    descriptions:
        Per node, the layer description (the layer name without the importer's
        ``"nodeN: "`` prefix) or ``"Branch i"`` for a compressed block.
    layers:
        Per node, the problem's layer indices it stands for.
    work_s:
        Per node, forward plus backward seconds of one whole minibatch.
    activation_bytes:
        Per node, output activation bytes of one whole minibatch.
    parameter_bytes:
        Per node, weight bytes.
    successors:
        Per node, its consumers (no repeats), in the order the reference would list them.
    """

    descriptions: list[str]
    layers: list[tuple[int, ...]]
    work_s: np.ndarray
    activation_bytes: np.ndarray
    parameter_bytes: np.ndarray
    successors: list[list[int]]

    @property
    def num_nodes(self) -> int:
        return len(self.descriptions)

    @cached_property
    def in_degree(self) -> list[int]:
        degree = [0] * self.num_nodes
        for outs in self.successors:
            for w in outs:
                degree[w] += 1
        return degree


def graph_of(problem: PipelineProblem) -> OptimizerGraph:
    """The problem's layer DAG in the profile's units (whole minibatch = per-micro-batch x K).

    Consumers are listed in the order of ``problem.edges``; the PipeDream
    importer keeps the profile's edge order, which is the order the reference
    explores them in.
    """
    k = problem.microbatches
    successors: list[list[int]] = [[] for _ in problem.layers]
    for u, v in problem.edges:  # in the instance's order (the importer keeps the profile's)
        successors[u].append(v)
    return OptimizerGraph(
        descriptions=[_NODE_PREFIX.sub("", x.name, count=1) for x in problem.layers],
        layers=[(i,) for i in range(len(problem.layers))],
        work_s=np.array([(x.forward_s + x.backward_s) * k for x in problem.layers], dtype=float),
        activation_bytes=np.array([x.activation_bytes * k for x in problem.layers], dtype=float),
        parameter_bytes=np.array([x.parameter_bytes for x in problem.layers], dtype=float),
        successors=successors,
    )


def _branch(graph: OptimizerGraph, head: int) -> tuple[list[int] | None, int, int]:
    """Compress the branch starting at ``head``.

    Returns ``(members, end, absorbed_in_loop)``: ``members`` the merged nodes
    (None when ``head`` has several producers and stays as it is; ``[head]``
    when nothing merges), ``end`` the node whose outgoing edges the block takes
    over, ``absorbed_in_loop`` how many nodes the walk merged (the reference
    names a one-node walk after that node).
    """
    indegree, outs = graph.in_degree, graph.successors
    if indegree[head] > 1:
        return None, head, 0
    members: list[int] = []
    node = head
    while indegree[node] == 1 and len(outs[node]) == 1:
        members.append(node)
        following = outs[node][0]
        if indegree[following] > 1:
            break
        node = following
        if not outs[node]:
            return members, node, -1  # a sink ends the branch and is left out
    if not members:
        return [head], head, 0
    walked = len(members)
    if len(outs[node]) > 1:  # the walk stopped at a fork: the fork joins the block
        members.append(node)
    return members, node, walked


def compress_branches(graph: OptimizerGraph) -> OptimizerGraph:
    """Merge every branch into one node, as PipeDream's ``compress_graph_branches.py`` does.

    Nodes are visited breadth-first from the sources; nodes reached by no edge
    of the result (isolated nodes and sinks left out of a branch) disappear,
    so their layers belong to no node.
    """
    outs = graph.successors
    block_of_end: dict[int, int] = {}  # original end node -> block key (negative)
    blocks: dict[int, tuple[list[int], str]] = {}
    keys: list[int] = []  # node keys in order of first appearance
    index_of: dict[int, int] = {}
    new_edges: list[list[int]] = []

    def node_key(v: int) -> int:
        return block_of_end.get(v, v)

    def add_edge(a: int, b: int) -> None:
        for key in (a, b):
            if key not in index_of:
                index_of[key] = len(keys)
                keys.append(key)
                new_edges.append([])
        if index_of[b] not in new_edges[index_of[a]]:
            new_edges[index_of[a]].append(index_of[b])

    sources = [v for v in range(graph.num_nodes) if graph.in_degree[v] == 0]
    queue = deque(sources)
    seen: set[int] = set()
    branch_count = 0
    while queue:
        v = queue.popleft()
        if v in seen:
            continue
        if len(outs[v]) > 1:
            for head in outs[v]:
                members, end, walked = _branch(graph, head)
                number = branch_count
                branch_count += 1
                if members is None:
                    add_edge(node_key(v), head)
                elif members == [head] and end == head:
                    block_of_end[head] = head
                    add_edge(node_key(v), head)
                else:
                    key = -1 - number
                    name = graph.descriptions[end] if walked == 1 else f"Branch {number}"
                    blocks[key] = (members, name)
                    block_of_end[end] = key
                    add_edge(node_key(v), key)
                if end not in seen:
                    queue.append(end)
        else:
            for w in outs[v]:
                add_edge(node_key(v), node_key(w))
                if w not in seen:
                    queue.append(w)
        seen.add(v)

    descriptions: list[str] = []
    layers: list[tuple[int, ...]] = []
    work, activation, parameters = [], [], []
    for key in keys:
        members, name = blocks[key] if key < 0 else ([key], graph.descriptions[key])
        descriptions.append(name)
        layers.append(tuple(layer for m in members for layer in graph.layers[m]))
        work.append(float(sum(graph.work_s[m] for m in members)))
        activation.append(float(graph.activation_bytes[members[-1]]))
        parameters.append(float(sum(graph.parameter_bytes[m] for m in members)))
    return OptimizerGraph(
        descriptions=descriptions,
        layers=layers,
        work_s=np.array(work),
        activation_bytes=np.array(activation),
        parameter_bytes=np.array(parameters),
        successors=new_edges,
    )


@dataclass(frozen=True)
class CleanedGraph:
    """An optimizer graph after the clean-up step.

    Attributes
    ----------
    graph:
        The graph cleaned.
    kept:
        Nodes that remain, ascending.
    successors:
        Consumers of every node among the kept ones (empty for dropped nodes).
    inputs:
        Dropped ``Input`` sources.
    dropped_sinks:
        Dropped ``__getitem__`` sinks.
    """

    graph: OptimizerGraph
    kept: list[int]
    successors: list[list[int]]
    inputs: list[int]
    dropped_sinks: list[int]

    @property
    def start(self) -> int | None:
        """The first remaining source (lowest index), where the antichain search starts."""
        has_producer = {w for u in self.kept for w in self.successors[u]}
        return next((u for u in self.kept if u not in has_producer), None)

    def topological_order(self) -> list[int]:
        """Kept nodes in a topological order (Kahn, smallest index first)."""
        kept = set(self.kept)
        edges = ((u, w) for u in self.kept for w in self.successors[u] if w in kept)
        return topological_order(self.kept, edges) or []


def cleaned_graph(graph: OptimizerGraph) -> CleanedGraph:
    """Drop ``Input`` sources, then ``__getitem__`` sinks (one pass each, as the reference)."""
    n = graph.num_nodes
    alive = [True] * n
    inputs = [
        i for i in range(n) if graph.in_degree[i] == 0 and graph.descriptions[i].startswith("Input")
    ]
    for i in inputs:
        alive[i] = False
    sinks = [
        i
        for i in range(n)
        if alive[i]
        and not any(alive[w] for w in graph.successors[i])
        and graph.descriptions[i].startswith("__getitem__")
    ]
    for i in sinks:
        alive[i] = False
    successors = [
        [w for w in graph.successors[i] if alive[w]] if alive[i] else [] for i in range(n)
    ]
    return CleanedGraph(graph, [i for i in range(n) if alive[i]], successors, inputs, sinks)


# --------------------------------------------------------------------------- states


@dataclass(frozen=True)
class StateSpace:
    """The optimizer's states in topological order.

    Attributes
    ----------
    kind:
        ``"antichain"`` (PipeDream's antichain DAG) or ``"prefix"`` (prefixes of
        one topological order; the last-resort fallback).
    members:
        Per state, the nodes whose outputs leave it: the augmented antichain, or
        for a prefix its nodes with a consumer outside it.
    ideals:
        Per state, a bitmask over graph nodes of the nodes it holds.
    predecessors:
        Per state, a bitmask over state positions of its transitive predecessors.
    """

    kind: str
    members: list[tuple[int, ...]]
    ideals: list[int]
    predecessors: list[int]

    @property
    def num_states(self) -> int:
        return len(self.ideals)


class _Antichains:
    """Augmentation and successor antichains over one cleaned graph (bitmask arithmetic)."""

    def __init__(self, cleaned: CleanedGraph):
        n = cleaned.graph.num_nodes
        self.successors = cleaned.successors
        succ_mask = [sum(1 << w for w in cleaned.successors[u]) for u in range(n)]
        self.ancestors = [0] * n
        self.descendants = [0] * n
        order = cleaned.topological_order()
        for u in order:
            for w in cleaned.successors[u]:
                self.ancestors[w] |= self.ancestors[u] | (1 << u)
        for u in reversed(order):
            for w in cleaned.successors[u]:
                self.descendants[u] |= self.descendants[w] | (1 << w)
        # The extra members a node brings to an augmented antichain depend on it alone.
        self.extras = [0] * n
        for a in cleaned.kept:
            inside = self.ancestors[a] | (1 << a)
            for p in bits(self.ancestors[a]):
                if succ_mask[p] & ~inside:
                    self.extras[a] |= 1 << p

    def augment(self, antichain: tuple[int, ...]) -> tuple[int, ...]:
        """The extra members (by node index), then the antichain."""
        extras = 0
        for a in antichain:
            extras |= self.extras[a]
        return tuple(bits(extras)) + antichain

    def next_antichains(self, antichain: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Antichains reached by replacing one augmented member by one of its successors."""
        augmented = self.augment(antichain)
        members = set(antichain)
        augmented_mask = 0
        for x in augmented:
            augmented_mask |= 1 << x
        out: list[tuple[int, ...]] = []
        for old in augmented:
            for new in self.successors[old]:
                if new in members or self.descendants[new] & augmented_mask:
                    continue
                mask = augmented_mask & ~(1 << old) | (1 << new)
                kept: list[int] = []
                for x in (new if x == old else x for x in augmented):
                    if not (self.descendants[x] & mask) and x not in kept:
                        kept.append(x)
                out.append(tuple(kept))
        return out

    def down_set(self, members: tuple[int, ...]) -> int:
        mask = 0
        for x in members:
            mask |= self.ancestors[x] | (1 << x)
        return mask


def antichain_states(cleaned: CleanedGraph, max_states: int) -> StateSpace | None:
    """PipeDream's antichain DAG, breadth-first from ``cleaned.start``, sorted depth-first.

    Returns None as soon as it has more than ``max_states`` states, and an
    empty state space when no node remains.
    """
    start = cleaned.start
    if start is None:
        return StateSpace("antichain", [], [], [])
    chains = _Antichains(cleaned)
    first: tuple[int, ...] = (start,)
    ids: dict[frozenset[int], int] = {frozenset(first): 0}
    found: list[tuple[int, ...]] = [first]
    out_edges: list[list[int]] = [[]]
    expanded: set[int] = set()
    queue: deque[tuple[int, ...]] = deque([first])
    while queue:
        antichain = queue.popleft()
        source = ids[frozenset(antichain)]
        if source in expanded:
            continue
        expanded.add(source)
        for following in chains.next_antichains(antichain):
            key = frozenset(following)
            if key not in ids:
                if len(found) >= max_states:
                    return None
                ids[key] = len(found)
                found.append(following)
                out_edges.append([])
            out_edges[source].append(ids[key])
            queue.append(following)

    post: list[int] = []  # depth-first post-order from the start state
    visited = [False] * len(found)
    visited[0] = True
    stack = [(0, iter(out_edges[0]))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if not visited[child]:
                visited[child] = True
                stack.append((child, iter(out_edges[child])))
                break
        else:
            stack.pop()
            post.append(node)
    order = post[::-1]
    position = {state: p for p, state in enumerate(order)}
    direct: list[list[int]] = [[] for _ in order]
    for state, targets in enumerate(out_edges):
        for target in targets:
            direct[position[target]].append(position[state])
    ancestors = [0] * len(order)
    for p in range(len(order)):
        for q in direct[p]:
            ancestors[p] |= ancestors[q] | (1 << q)
    members = [chains.augment(found[state]) for state in order]
    return StateSpace("antichain", members, [chains.down_set(a) for a in members], ancestors)


def _depth_first_order(cleaned: CleanedGraph) -> list[int]:
    """Kept nodes in reverse depth-first post-order from the sources (branches stay together)."""
    post: list[int] = []
    visited: set[int] = set()
    has_producer = {w for u in cleaned.kept for w in cleaned.successors[u]}
    for source in reversed([u for u in cleaned.kept if u not in has_producer]):
        if source in visited:
            continue
        visited.add(source)
        stack = [(source, iter(reversed(cleaned.successors[source])))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in visited:
                    visited.add(child)
                    stack.append((child, iter(reversed(cleaned.successors[child]))))
                    break
            else:
                stack.pop()
                post.append(node)
    return post[::-1]


def prefix_states(cleaned: CleanedGraph) -> StateSpace:
    """Fallback states: the prefixes of a few topological orders of the kept nodes.

    Every prefix is a down-set, so the DP stays valid; it sees fewer split
    points than the antichain DAG (none fewer on a chain). The orders are Kahn's
    (smallest index first) and a depth-first one (each branch finished before
    the next); the union of their prefixes is ordered by size, and a state
    precedes another when its node set is a proper subset.
    """
    ideals: list[int] = []
    seen: set[int] = set()
    for order in (cleaned.topological_order(), _depth_first_order(cleaned)):
        mask = 0
        for u in order:
            mask |= 1 << u
            if mask not in seen:
                seen.add(mask)
                ideals.append(mask)
    ideals.sort(key=lambda m: m.bit_count())  # stable: first order's prefixes first among equals
    members: list[tuple[int, ...]] = []
    for mask in ideals:
        leaving = [
            x
            for x in bits(mask)
            if not cleaned.successors[x] or any(not (mask >> w) & 1 for w in cleaned.successors[x])
        ]
        members.append(tuple(leaving))
    predecessors = []
    for j, mask in enumerate(ideals):
        below = 0
        for k in range(j):
            if ideals[k] & ~mask == 0 and ideals[k] != mask:
                below |= 1 << k
        predecessors.append(below)
    return StateSpace("prefix", members, ideals, predecessors)
