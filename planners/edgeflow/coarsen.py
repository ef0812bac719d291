"""Coarsening for the exact models: contract DAG edges until few enough groups remain."""

from __future__ import annotations

from ...models.edgeflow import EdgeflowProblem
from ...models.graph import topological_order

__all__ = ["coarsen"]


def coarsen(problem: EdgeflowProblem, max_groups: int) -> list[list[str]]:
    """Groups of layers (each kept on one device) in a topological order of the group DAG.

    Repeatedly contracts the edge ``u -> v`` of least combined work whose
    contraction cannot create a cycle (``u`` has one consumer, or ``v`` one
    producer), merging pinned layers only with layers pinned to the same device,
    until at most ``max_groups`` groups remain or no edge qualifies.
    """
    order = problem.topological_names
    group_of = {name: k for k, name in enumerate(order)}
    members: dict[int, list[str]] = {k: [name] for k, name in enumerate(order)}
    work = {k: problem.layer_by_name[name].work_flops for k, name in enumerate(order)}
    pin = {k: problem.pinned_device(name) for k, name in enumerate(order)}

    def edges() -> dict[int, set[int]]:
        out: dict[int, set[int]] = {k: set() for k in members}
        for layer in problem.layers:
            for producer in layer.inputs:
                a, b = group_of[producer], group_of[layer.name]
                if a != b:
                    out[a].add(b)
        return out

    while len(members) > max_groups:
        succ = edges()
        pred: dict[int, set[int]] = {k: set() for k in members}
        for a, targets in succ.items():
            for b in targets:
                pred[b].add(a)
        best: tuple[float, int, int] | None = None
        for a, targets in succ.items():
            for b in targets:
                if not (len(succ[a]) == 1 or len(pred[b]) == 1):
                    continue
                if pin[a] != pin[b]:  # a pin would drag unpinned layers (or another pin) along
                    continue
                key = (work[a] + work[b], a, b)
                if best is None or key < best:
                    best = key
        if best is None:
            break
        _, a, b = best
        keep, gone = min(a, b), max(a, b)
        members[keep] = sorted(members[keep] + members.pop(gone), key=order.index)
        work[keep] += work.pop(gone)
        pin[keep] = pin[keep] or pin.pop(gone)
        for name in members[keep]:
            group_of[name] = keep
    keys = sorted(members)
    final = edges()
    ranked = topological_order(keys, [(a, b) for a in keys for b in sorted(final[a])])
    assert (
        ranked is not None
    )  # contracting a single-consumer / single-producer edge keeps the DAG acyclic
    return [members[k] for k in ranked]
