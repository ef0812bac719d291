"""A topological linearisation of the layer DAG and candidate stage boundaries.

Planners split the linearised layers into contiguous segments: every segment
split of a topological order is a valid stage partition (no edge runs from a
later stage to an earlier one). Large DAGs are coarsened by allowing stage
boundaries only at a limited set of cut positions, chosen where little
activation data crosses (PipeDream's antichain linearisation serves the same
purpose; ours is a reconstruction, not its code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...models.graph import LayerGraph


@dataclass(frozen=True)
class Linearization:
    """Prefix sums over a topological order of the layers.

    Position ``p`` holds layer ``order[p]``; prefix arrays have ``L + 1`` entries
    so the sum over positions ``[a, b)`` is ``prefix[b] - prefix[a]``.

    Attributes
    ----------
    order:
        Layer indices in topological order.
    forward_s, backward_s:
        Prefix sums of per-micro-batch seconds on a speed-1.0 GPU.
    parameter_bytes:
        Prefix sums of parameter bytes.
    activation_bytes:
        Prefix sums of output activation bytes (what a stage stashes per micro-batch).
    cut_bytes:
        ``cut_bytes[p]``: activation bytes per micro-batch of layers at positions
        ``< p`` with a consumer at a position ``>= p`` (what crosses a boundary at ``p``).
    """

    order: tuple[int, ...]
    forward_s: np.ndarray
    backward_s: np.ndarray
    parameter_bytes: np.ndarray
    activation_bytes: np.ndarray
    cut_bytes: np.ndarray

    @property
    def num_layers(self) -> int:
        return len(self.order)

    def work_s(self, start: int, end: int) -> float:
        """Forward plus backward seconds of positions ``[start, end)`` on a speed-1.0 GPU."""
        return float(
            self.forward_s[end]
            - self.forward_s[start]
            + self.backward_s[end]
            - self.backward_s[start]
        )

    def stage_of_layer(self, cuts: list[int]) -> list[int]:
        """Stage index of every layer for boundaries ``cuts`` (``0 = c_0 < ... < c_S = L``)."""
        stage = [0] * self.num_layers
        for s in range(len(cuts) - 1):
            for p in range(cuts[s], cuts[s + 1]):
                stage[self.order[p]] = s
        return stage


def linearize(problem: LayerGraph) -> Linearization:
    """Prefix sums over ``problem.topological_order`` (any layer DAG: a pipeline problem, an edge model)."""
    order = problem.topological_order
    layers = [problem.layers[i] for i in order]
    position = {layer: p for p, layer in enumerate(order)}

    def prefix(values: list[float]) -> np.ndarray:
        return np.concatenate(([0.0], np.cumsum(values, dtype=float)))

    # A layer's output crosses every boundary between its position and its last consumer.
    crossing = np.zeros(len(order) + 1)
    for p, layer in enumerate(order):
        consumers = problem.successors[layer]
        if consumers:
            last = max(position[c] for c in consumers)
            crossing[p + 1] += problem.layers[layer].activation_bytes
            crossing[last + 1] -= problem.layers[layer].activation_bytes
    cut_bytes = np.cumsum(crossing)
    cut_bytes[0] = 0.0
    cut_bytes[-1] = 0.0
    return Linearization(
        order=tuple(order),
        forward_s=prefix([x.forward_s for x in layers]),
        backward_s=prefix([x.backward_s for x in layers]),
        parameter_bytes=prefix([x.parameter_bytes for x in layers]),
        activation_bytes=prefix([x.activation_bytes for x in layers]),
        cut_bytes=np.maximum(cut_bytes, 0.0),
    )


def candidate_cuts(lin: Linearization, max_blocks: int) -> list[int]:
    """At most ``max_blocks + 1`` boundary positions, including ``0`` and ``L``.

    With ``L <= max_blocks`` every position is a candidate. Otherwise the
    cumulative work is split into ``max_blocks`` equal windows and in each window
    the position where the fewest activation bytes cross is kept (ties: the
    position nearest the window's centre), so blocks have similar work and
    boundaries sit at narrow points of the graph.
    """
    n = lin.num_layers
    if n <= max_blocks:
        return list(range(n + 1))
    work = lin.forward_s + lin.backward_s
    total = float(work[-1])
    cuts = {0, n}
    if total <= 0:
        step = n / max_blocks
        cuts.update(int(round(k * step)) for k in range(1, max_blocks))
        return sorted(cuts)
    width = total / max_blocks
    for k in range(1, max_blocks):
        lo, hi = (k - 0.5) * width, (k + 0.5) * width
        first = int(np.searchsorted(work, lo, side="left"))
        last = int(np.searchsorted(work, hi, side="right"))
        window = [p for p in range(max(first, 1), min(last, n)) if p not in cuts]
        if not window:
            continue
        centre = k * width
        best = min(window, key=lambda p: (lin.cut_bytes[p], abs(work[p] - centre), p))
        cuts.add(best)
    return sorted(cuts)
