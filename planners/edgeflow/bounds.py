"""Closed-form lower bound on the latency, and the pre-check for instances with no plan."""

from __future__ import annotations

from ...models.edgeflow import EdgeflowProblem

__all__ = ["latency_lower_bound", "memory_infeasibility"]


def latency_lower_bound(problem: EdgeflowProblem) -> float:
    """A proven lower bound on the latency in seconds.

    The larger of (a) all work over the summed speed of every device plus the
    smallest per-unit overhead once per layer spread over the devices, and (b) the
    heaviest path of the DAG where a splittable layer runs at best at the summed
    speed and a whole-only one at the fastest device's speed, each layer paying
    at least the smallest overhead. Transfers are ignored (they only add time).
    """
    total_speed = sum(d.flops_per_s for d in problem.devices)
    top_speed = max(d.flops_per_s for d in problem.devices)
    overhead = min(d.overhead_s for d in problem.devices)
    computed = [layer for layer in problem.layers if layer.inputs]
    spread = sum(layer.work_flops for layer in computed) / total_speed
    spread += overhead * len(computed) / len(problem.devices)
    path: dict[str, float] = {}
    for name in problem.topological_names:
        layer = problem.layer_by_name[name]
        own = 0.0
        if layer.inputs:
            own = overhead + layer.work_flops / (total_speed if layer.splittable else top_speed)
        path[name] = own + max((path[p] for p in layer.inputs), default=0.0)
    return max(spread, max(path.values()))


def memory_infeasibility(problem: EdgeflowProblem) -> str | None:
    """Why no plan can fit the devices' memory, or None.

    A layer is computed on at least one device, which must hold its weights; a
    pinned layer on its pinned device. Together every layer's weights must fit
    in the summed memory.
    """
    memories = [d.memory_bytes for d in problem.devices]
    if any(m is None for m in memories):
        largest = float("inf")
        total = float("inf")
    else:
        largest = max(m for m in memories if m is not None)
        total = sum(m for m in memories if m is not None)
    pinned_weights: dict[str, float] = {}
    for layer in problem.layers:
        if layer.weight_bytes > largest:
            return f"layer {layer.name!r} needs {layer.weight_bytes:.6g} bytes of weights, the largest device holds {largest:.6g}"
        pin = problem.pinned_device(layer.name)
        if pin is not None:
            pinned_weights[pin] = pinned_weights.get(pin, 0.0) + layer.weight_bytes
    for device, need in sorted(pinned_weights.items()):
        memory = problem.device_by_name[device].memory_bytes
        if memory is not None and need > memory:
            return f"layers pinned to {device!r} need {need:.6g} bytes of weights, it holds {memory:.6g}"
    weights = sum(layer.weight_bytes for layer in problem.layers)
    if weights > total:
        return (
            f"the model needs {weights:.6g} bytes of weights, all devices together hold {total:.6g}"
        )
    return None
