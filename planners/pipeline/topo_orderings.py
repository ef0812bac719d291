"""Topology-aware orderings of the GPUs for the ``topo`` planner.

The planner's DP gives every stage a contiguous run of GPUs in one ordering, so
an ordering decides which GPUs can share a stage (replicas) and which pairs
carry the activations between consecutive stages. Good orderings keep GPUs
joined by wide links next to each other and put the pipeline's hops on the
widest links available. Orderings produced (deterministic, duplicates removed):

* the identity order;
* the leaf order of a single-linkage clustering on widest-path bandwidth
  (servers, quads, NVLink islands become contiguous runs), clusters joined
  smallest index first, and again with faster clusters first, and both
  reversed (so the other end of the pipeline gets the fast GPUs or the big
  island);
* greedy chains that always step to the unvisited GPU behind the widest link
  (ties: faster GPU, then smaller index), from the fastest and from the
  slowest GPU.

A seed only permutes GPUs that are fully interchangeable (same speed, memory
and bandwidth to every other GPU), so it never changes the quality of an
ordering, only which of equivalent GPUs are named.
"""

from __future__ import annotations

import random

import numpy as np

from .costs import ClusterView

__all__ = ["chain_ordering", "cluster_ordering", "gpu_orderings", "symmetric_bandwidth"]


def symmetric_bandwidth(view: ClusterView) -> np.ndarray:
    """Widest-path bandwidth both ways, ``min(W[i, j], W[j, i])`` (bytes/s), ``inf`` on the diagonal."""
    width = view.net.bandwidth_bytes_per_s
    return np.minimum(width, width.T)


def cluster_ordering(view: ClusterView, *, fast_first: bool = False) -> list[int]:
    """Leaf order of single-linkage (maximum spanning tree) clustering on bandwidth.

    Links are merged from the widest down (ties: smaller indices first); each
    merge concatenates the two clusters, the one holding the smaller GPU index
    first, or with ``fast_first`` the one with the larger mean speed first.
    """
    width = symmetric_bandwidth(view)
    n = len(width)
    speed = view.speed
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    root = list(range(n))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    pairs = sorted((-width[i, j], i, j) for i in range(n) for j in range(i + 1, n))
    for _, i, j in pairs:
        a, b = find(i), find(j)
        if a == b:
            continue
        first, second = members[a], members[b]
        if fast_first:
            if speed[second].mean() > speed[first].mean() + 1e-12:
                first, second = second, first
        elif min(second) < min(first):
            first, second = second, first
        merged = first + second
        root[b] = a
        members[a] = merged
        del members[b]
    (order,) = members.values()
    return order


def chain_ordering(view: ClusterView, start: int) -> list[int]:
    """Greedy chain from ``start``: next the unvisited GPU behind the widest link (ties: faster, smaller index)."""
    width = symmetric_bandwidth(view)
    n = len(width)
    order, seen = [start], {start}
    while len(order) < n:
        current = order[-1]
        following = min(
            (g for g in range(n) if g not in seen),
            key=lambda g: (-width[current, g], -view.speed[g], g),
        )
        order.append(following)
        seen.add(following)
    return order


def _interchangeable_classes(view: ClusterView) -> list[list[int]]:
    """Groups of GPUs with equal speed, memory and bandwidth to every other GPU."""
    width = view.net.bandwidth_bytes_per_s
    n = len(width)
    classes: list[list[int]] = []
    for g in range(n):
        for cls in classes:
            h = cls[0]
            if view.speed[g] != view.speed[h] or view.memory_bytes[g] != view.memory_bytes[h]:
                continue
            others = [x for x in range(n) if x not in (g, h)]
            if all(width[g, x] == width[h, x] and width[x, g] == width[x, h] for x in others) and (
                width[g, h] == width[h, g]
            ):
                cls.append(g)
                break
        else:
            classes.append([g])
    return classes


def gpu_orderings(view: ClusterView, *, seed: int = 0, limit: int = 8) -> list[tuple[int, ...]]:
    """Up to ``limit`` distinct topology-aware GPU orderings, most promising first.

    Parameters
    ----------
    view
        The problem's cluster view.
    seed
        Permutes interchangeable GPUs only (see the module docstring).
    limit
        Most orderings returned.

    Returns
    -------
    list of tuple of int
        Every ordering lists each GPU once.
    """
    n = len(view.speed)
    fastest = min(range(n), key=lambda g: (-view.speed[g], g))
    slowest = min(range(n), key=lambda g: (view.speed[g], g))
    clustered = cluster_ordering(view)
    fast_clustered = cluster_ordering(view, fast_first=True)
    proposals = [
        clustered,
        list(range(n)),
        fast_clustered,
        clustered[::-1],
        fast_clustered[::-1],
        chain_ordering(view, fastest),
        chain_ordering(view, slowest),
        list(range(n))[::-1],
    ]
    relabel = list(range(n))
    if seed:
        rng = random.Random(seed)
        for cls in _interchangeable_classes(view):
            shuffled = cls[:]
            rng.shuffle(shuffled)
            for a, b in zip(cls, shuffled, strict=True):
                relabel[a] = b
    out: list[tuple[int, ...]] = []
    for proposal in proposals:
        ordering = tuple(relabel[g] for g in proposal)
        if ordering not in out:
            out.append(ordering)
        if len(out) >= limit:
            break
    return out
