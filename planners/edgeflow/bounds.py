"""Closed-form lower bound on the latency, row geometry the bounds share, and the memory pre-check.

Every statement below is about the simulator's semantics
(:mod:`distplan.models.edgeflow`) and holds for *every* plan it accepts; the
proofs are ours (Hu & Li 2022 give no bound; reconstruction).

Lemma (used units). Call a unit *used* when it delivers output rows to
``output_device``, or supplies (by forwarding, or as an earlier unit of the
same device) a requirement of a used unit. Used units finish by the latency
``T``. The rows they compute of a layer contain its *needed rows*
(:func:`needed_rows`): all rows of an output; for a producer of a whole-only
layer with needed rows, all its rows; for a producer of a splittable layer,
the union of the receptive fields of the consumer's needed rows (a unit's
requirements cover the receptive field of its whole row range, which contains
the fields of its single rows). Induction over the reverse topological order.

Bound (a), spread with windows: a used unit on device ``d`` lies in
``[delay_d, T - return_d]`` (:func:`device_windows`) and the units of one
device run one at a time, so with ``u_d`` used units and ``w_d`` needed FLOPs
on ``d``: ``w_d / s_d + u_d * overhead_d <= (T - delay_d - return_d)^+``,
``sum_d w_d >= needed FLOPs`` and ``sum_d u_d >= layers with needed rows``
(``s_d`` in FLOP/s). The smallest ``T`` for which this LP is feasible is the
bound (:func:`_spread_bound` solves it greedily and bisects on ``T``). The
former form "work / summed speed + overhead x layers / devices" is not a
bound: overheads can pile up on a slow device while a fast one computes (see
``tests/planners/edgeflow/test_bounds.py``).

Bound (b), dense paths: along a path to an output whose edges are *dense*
(:func:`dense_edge`: every consumer unit needs a nonempty part of the
producer and all consumer rows need all producer rows), a whole-only layer is
a barrier: every row of the path before it is computed before its first
unit starts, and every unit of the path after it starts after that unit
ends. Between barriers all rows of the segment's layers are computed, so the
segment's window is at least its rate cost ``sum (flops + min_d(s_d *
overhead_d)) / sum_d s_d`` and at least its chain cost (c) below; any mix
``lam * rate + (1 - lam) * chain`` is then additive along the path. A
whole-only (or input) layer costs ``min_d(overhead_d + flops / s_d)`` over its
allowed devices.

Bound (c), unit chains: if every unit of a consumer needs a nonempty part of
its producer (:func:`nonempty_edge`), a used unit of the consumer starts after
a unit of the producer ends, so along any such path to an output the latency
is at least the sum of one unit per layer: ``min_d(overhead_d + one row's
flops / s_d)``.
"""

from __future__ import annotations

import math

import numpy as np

from ...models.edgeflow import EdgeflowProblem, Layer

#: Steps of the mix between the rate and the chain cost of a dense path.
MIX_STEPS = 10

__all__ = [
    "dense_edge",
    "device_windows",
    "latency_lower_bound",
    "memory_infeasibility",
    "needed_rows",
    "nonempty_edge",
    "smallest_row_bytes",
    "some_unit_needs_no_input",
]


def _fields(layer: Layer, producer: Layer, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clipped receptive field ``[first, last)`` on ``producer`` of each single row in ``rows``."""
    first = rows * layer.stride_rows - layer.pad_top_rows
    last = first + layer.kernel_rows
    return np.maximum(first, 0), np.minimum(last, producer.out_rows)


def needed_rows(problem: EdgeflowProblem) -> dict[str, np.ndarray]:
    """Per layer, a boolean mask of the rows every plan computes in used units (module docstring)."""
    layers = problem.layer_by_name
    mask = {name: np.zeros(layers[name].out_rows, dtype=bool) for name in layers}
    for name in problem.output_layers:
        mask[name][:] = True
    for name in reversed(problem.topological_names):
        layer = layers[name]
        if not mask[name].any():
            continue
        rows = np.flatnonzero(mask[name])
        for producer_name in layer.inputs:
            producer = layers[producer_name]
            if not layer.splittable:
                mask[producer_name][:] = True
                continue
            first, last = _fields(layer, producer, rows)
            cover = np.zeros(producer.out_rows + 1, dtype=np.int64)
            keep = first < last
            np.add.at(cover, first[keep], 1)
            np.add.at(cover, last[keep], -1)
            mask[producer_name] |= np.cumsum(cover[:-1]) > 0
    return mask


def some_unit_needs_no_input(problem: EdgeflowProblem) -> bool:
    """Whether a row of a splittable layer sees only padding on every input (a unit could start at 0)."""
    for layer in problem.layers:
        if not layer.inputs or not layer.splittable:
            continue
        for row in (0, layer.out_rows - 1):
            if all(
                np.all(np.greater_equal(*_fields(layer, problem.layer_by_name[p], np.array([row]))))
                for p in layer.inputs
            ):
                return True
    return False


def nonempty_edge(layer: Layer, producer: Layer) -> bool:
    """Whether every unit of ``layer`` needs some rows of ``producer`` (fields are monotone: check the ends)."""
    if not layer.splittable:
        return True
    first, last = _fields(layer, producer, np.array([0, layer.out_rows - 1]))
    return bool(np.all(first < last))


def dense_edge(layer: Layer, producer: Layer) -> bool:
    """Whether every unit of ``layer`` needs some rows of ``producer`` and all its rows need all of them."""
    if not layer.splittable:
        return True
    first, last = _fields(layer, producer, np.array([0, layer.out_rows - 1]))
    contiguous = layer.kernel_rows >= layer.stride_rows
    return (
        nonempty_edge(layer, producer)
        and contiguous
        and first[0] == 0
        and last[1] == producer.out_rows
    )


def smallest_row_bytes(problem: EdgeflowProblem) -> float:
    """Fewest bytes a transfer with any bytes at all can move: the smallest bytes per row (0 if some layer has none)."""
    return min(layer.bytes_per_row for layer in problem.layers)


def device_windows(problem: EdgeflowProblem) -> dict[str, tuple[float, float]]:
    """Per device, ``(delay_s, return_s)``: used units lie in ``[delay_s, T - return_s]``.

    ``delay_s``: a device other than ``input_device`` starts its first unit only
    once a transfer has reached it (that unit cannot require rows of its own
    device, and needs some rows unless :func:`some_unit_needs_no_input`); a
    transfer leaves when a unit ends (at least the sender's overhead), holds its
    route ``bytes / bottleneck`` and lands ``latency`` later (zero-byte transfers
    land at once). ``return_s``: a used unit off ``output_device`` forwards its
    rows (or those of a later used unit on its device) to another device, which
    takes the same hold and latency before ``T``.
    """
    row_bytes = smallest_row_bytes(problem)
    names = [d.name for d in problem.devices]

    def hop_s(source: str, target: str) -> float:
        if row_bytes <= 0:
            return 0.0
        route = problem.network.route(source, target)
        assert route is not None  # the problem validator checked every device pair
        return row_bytes / route.bottleneck_bytes_per_s + route.latency_s

    free_start = some_unit_needs_no_input(problem)
    windows: dict[str, tuple[float, float]] = {}
    for d in names:
        others = [e for e in names if e != d]
        delay = 0.0
        if d != problem.input_device and not free_start and others:
            delay = min(problem.device_by_name[e].overhead_s + hop_s(e, d) for e in others)
        back = 0.0
        if d != problem.output_device and others:
            back = min(hop_s(d, e) for e in others)
        windows[d] = (delay, back)
    return windows


def _spread_bound(problem: EdgeflowProblem, need: dict[str, np.ndarray]) -> float:
    """Bound (a): smallest ``T`` whose device windows hold the needed FLOPs and unit overheads.

    For a given ``T`` the most FLOPs the devices can do while running ``units``
    units is an LP solved greedily: units go first where they cost the fewest
    FLOPs of capacity (``s_d * overhead_d``), at most as many as fit in the
    device's window. ``T`` is found by bisection (capacity grows with ``T``).
    """
    flops = sum(problem.layer_by_name[n].flops_per_row * float(m.sum()) for n, m in need.items())
    units = float(sum(1 for m in need.values() if m.any()))
    windows = device_windows(problem)
    devices = sorted(problem.devices, key=lambda d: (d.flops_per_s * d.overhead_s, d.name))

    def enough(latency_s: float) -> bool:
        capacity, left = 0.0, units
        for d in devices:
            span = max(0.0, latency_s - sum(windows[d.name]))
            fit = left if d.overhead_s <= 0 else min(left, span / d.overhead_s)
            left -= fit
            capacity += d.flops_per_s * (span - fit * d.overhead_s)
        return left <= 1e-12 and capacity >= flops * (1 - 1e-12)

    low, high = 0.0, 1.0
    while not enough(high):
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return low


def _path_costs_s(problem: EdgeflowProblem, name: str) -> tuple[float, float]:
    """Seconds a layer adds to a path: ``(by rate, by unit chain)`` (module docstring, (b) and (c)).

    Whole-only and input layers: their best allowed device's overhead plus work,
    both ways. Splittable layers: by rate, its FLOPs and one unit's capacity
    over the summed speed; by chain, one row on its best allowed device.
    """
    layer = problem.layer_by_name[name]
    pin = problem.pinned_device(name)
    devices = [problem.device_by_name[pin]] if pin is not None else problem.devices
    if not layer.inputs or not layer.splittable:
        whole = min(d.overhead_s + layer.work_flops / d.flops_per_s for d in devices)
        return whole, whole
    unit_cost = min(d.flops_per_s * d.overhead_s for d in problem.devices)
    rate = (layer.work_flops + unit_cost) / sum(d.flops_per_s for d in problem.devices)
    chain = min(d.overhead_s + layer.flops_per_row / d.flops_per_s for d in devices)
    return rate, chain


def _longest_path_to_output(
    problem: EdgeflowProblem, cost: dict[str, float], usable: dict[tuple[str, str], bool]
) -> float:
    """Costliest path over ``usable`` edges ``(producer, consumer)`` that ends at an output (seconds)."""
    tail: dict[str, float] = {}
    for name in reversed(problem.topological_names):
        onward = [
            tail[c] for c in problem.consumers[name] if usable[(name, c)] and tail[c] > -math.inf
        ]
        if onward:
            tail[name] = cost[name] + max(onward)
        else:
            tail[name] = cost[name] if not problem.consumers[name] else -math.inf
    return max(0.0, *tail.values())


def _path_bound(problem: EdgeflowProblem) -> float:
    """Bounds (b) and (c): mixes ``lam * rate + (1 - lam) * chain`` on dense paths, and chains alone."""
    layers = problem.layer_by_name
    costs = {name: _path_costs_s(problem, name) for name in layers}
    edges = [(p, layer.name) for layer in problem.layers for p in layer.inputs]
    dense = {(p, c): dense_edge(layers[c], layers[p]) for p, c in edges}
    chained = {(p, c): nonempty_edge(layers[c], layers[p]) for p, c in edges}
    best = _longest_path_to_output(problem, {n: c[1] for n, c in costs.items()}, chained)
    for step in range(MIX_STEPS + 1):
        lam = step / MIX_STEPS
        mixed = {n: lam * c[0] + (1 - lam) * c[1] for n, c in costs.items()}
        best = max(best, _longest_path_to_output(problem, mixed, dense))
    return best


def latency_lower_bound(problem: EdgeflowProblem) -> float:
    """A proven lower bound on the latency in seconds: the largest of bounds (a), (b) and (c).

    See the module docstring for the statements and their proofs. Cost: a pass
    over the rows of every layer and one over the edges (milliseconds on
    Inception-v3).
    """
    return max(_spread_bound(problem, needed_rows(problem)), _path_bound(problem))


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
