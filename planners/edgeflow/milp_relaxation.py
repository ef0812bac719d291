"""A MILP relaxation of every ``edgeflow`` plan: its dual bound is a proven latency lower bound.

Hu & Li 2022 give no bound; this relaxation and its proof are ours
(reconstruction). It drops time and order entirely and keeps only what every
plan must pay, counted over the *used units* of :mod:`.bounds` (the units the
delivery of the output depends on; they finish by the latency ``T``):

* ``rows[L, d]`` in ``[0, out_rows(L)]``: *distinct* rows of layer ``L``
  computed by used units on device ``d`` (the work done is at least theirs);
  ``on[L, d]`` binary: ``d`` runs at least one used unit of ``L``, so ``on <=
  rows <= out_rows * on`` (equality for whole-only layers; for input tensors,
  which have no work, counting every row only relaxes). Pins and input
  tensors fix ``on``.
* Coverage: ``sum_d rows[L, d] >= needed rows of L`` (:func:`.bounds.needed_rows`).
* Receptive fields: for every edge ``P -> C`` and device ``d``, the rows of
  ``P`` present on ``d`` (own used rows plus received rows ``got[P, d]``) are
  at least the union of the fields of ``d``'s rows of ``C``:
  ``out_rows(P) * on[C, d]`` for a whole-only ``C``; for a splittable ``C``
  with ``m = min(stride, kernel)`` at least ``m * rows + (kernel - m - pad_top
  - pad_bottom) * on + halo * (on - full)``, where ``full[C, d]`` may be 1 only
  when ``d`` has every row and ``halo`` is the least gain of a partial row set
  (it must miss the top or bottom row, which lifts a clipped edge, or leave an
  inner gap, which widens a step); see :func:`field_floor`.
* Output: ``rows[O, out] + got[O, out] >= out_rows(O)`` for every output ``O``.
* Devices: ``T >= delay_d + return_d + sum_L (rows * flops_per_row / speed_d +
  overhead_d * on)`` (used units lie in the window of
  :func:`.bounds.device_windows`, one unit at a time, one overhead per unit).
* Network: a resource ``r`` that every route into each device of ``D_r``
  passes holds each transfer for at least ``bytes / capacity(r)``, one at a
  time: ``T >= sum_{d in D_r} sum_P bytes_per_row(P) * got[P, d] / capacity(r)``
  (a shared WLAN: every transfer; a switch: each device's downlink).
* Memory: the weights of the layers a device runs fit.
* Cuts: ``T >=`` the closed-form bound; busy times of interchangeable devices
  (:func:`interchangeable_devices`) in decreasing order.

Every plan the simulator accepts gives a feasible point with ``T`` its
latency (after relabelling interchangeable devices), so the MILP's optimum, and HiGHS's dual bound on it, are
lower bounds. The dual bound is shrunk by a relative :data:`SAFETY` for the
solver's feasibility tolerances.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping

import pulp

from ...models.edgeflow import EdgeflowProblem, Layer
from ...solvers.milp import BuildTimeout, check_deadline, solve_milp
from ...solvers.options import SolveOptions
from .bounds import device_windows, latency_lower_bound, needed_rows

__all__ = [
    "SAFETY",
    "common_resources",
    "field_floor",
    "interchangeable_devices",
    "relaxation_bound",
]

#: Relative margin taken off HiGHS's dual bound (its tolerances are 1e-7 absolute / 1e-6 gap).
SAFETY = 1e-6


def field_floor(layer: Layer, producer: Layer) -> tuple[float, float, float]:
    """``(per_row, constant, halo)``: fewest rows of ``producer`` that ``n`` rows of ``layer`` need.

    The union of the single-row fields of any ``n >= 1`` rows is at least
    ``per_row * n + constant``, plus ``halo`` when the rows are not all of
    ``layer``'s (splittable ``layer``; module docstring).
    """
    stride, kernel, pad = layer.stride_rows, layer.kernel_rows, layer.pad_top_rows
    step = min(stride, kernel)
    pad_bottom = max(0, (layer.out_rows - 1) * stride - pad + kernel - producer.out_rows)
    constant = kernel - step - pad - pad_bottom
    gains = [min(pad, stride), min(pad_bottom, stride), max(0, min(stride, kernel - stride))]
    return float(step), float(constant), float(min(gains))


def common_resources(problem: EdgeflowProblem) -> dict[str, list[str]]:
    """For each network resource, the devices all of whose incoming routes hold it."""
    names = [d.name for d in problem.devices]
    shared: dict[str, list[str]] = {}
    for d in names:
        sets = []
        for e in names:
            if e != d:
                route = problem.network.route(e, d)
                assert route is not None  # the problem validator checked every device pair
                sets.append(set(route.resources))
        for resource in sorted(set.intersection(*sets) if sets else set()):
            shared.setdefault(resource, []).append(d)
    return shared


def interchangeable_devices(problem: EdgeflowProblem) -> list[list[str]]:
    """Classes (of two or more) of devices that every constraint of the relaxation treats alike.

    Same speed, overhead, memory and window; the same shared resources and
    the same capacities of the resources only they receive over; neither the
    input nor the output device nor a pin. Swapping two of them maps a feasible
    point to one with the same latency, so their busy times may be ordered
    (symmetry breaking; the bound stays valid).
    """
    windows = device_windows(problem)
    shared = common_resources(problem)
    excluded = {problem.input_device, problem.output_device, *problem.pins.values()}
    classes: dict[tuple[object, ...], list[str]] = {}
    for device in problem.devices:
        if device.name in excluded:
            continue
        mine = [r for r, receivers in shared.items() if device.name in receivers]
        signature = (
            device.flops_per_s,
            device.overhead_s,
            device.memory_bytes,
            windows[device.name],
            tuple(sorted(r for r in mine if len(shared[r]) > 1)),
            tuple(sorted(problem.network.capacity_of(r) for r in mine if len(shared[r]) == 1)),
        )
        classes.setdefault(signature, []).append(device.name)
    return [names for names in classes.values() if len(names) > 1]


def _build(problem: EdgeflowProblem, deadline: float) -> tuple[pulp.LpProblem, pulp.LpVariable]:
    """The relaxation model and its latency variable (seconds)."""
    layers = problem.layer_by_name
    devices = problem.devices
    need = needed_rows(problem)
    windows = device_windows(problem)
    model = pulp.LpProblem("edgeflow_relaxation", pulp.LpMinimize)
    latency = pulp.LpVariable("latency_s", lowBound=0)
    rows: dict[tuple[str, str], pulp.LpVariable] = {}
    on: dict[tuple[str, str], pulp.LpVariable] = {}
    full: dict[tuple[str, str], pulp.LpVariable] = {}
    for k, layer in enumerate(problem.layers):
        check_deadline(deadline)
        pin = problem.pinned_device(layer.name)
        for j, device in enumerate(devices):
            allowed = pin is None or pin == device.name
            key = (layer.name, device.name)
            on[key] = pulp.LpVariable(
                f"on_{k}_{j}", lowBound=0, upBound=int(allowed), cat="Integer"
            )
            rows[key] = pulp.LpVariable(f"rows_{k}_{j}", lowBound=0, upBound=layer.out_rows)
            if layer.splittable and layer.inputs:
                model += rows[key] >= on[key]
                model += rows[key] <= layer.out_rows * on[key]
                full[key] = pulp.LpVariable(f"full_{k}_{j}", cat="Binary")
                model += layer.out_rows * full[key] <= rows[key]
            else:
                model += rows[key] == layer.out_rows * on[key]
        model += pulp.lpSum(rows[(layer.name, d.name)] for d in devices) >= int(
            need[layer.name].sum()
        )
    index = {name: k for k, name in enumerate(layers)}
    got: dict[tuple[str, str], pulp.LpVariable] = {}
    for layer in problem.layers:
        check_deadline(deadline)
        for producer_name in layer.inputs:
            producer = layers[producer_name]
            p = index[producer_name]
            for j, device in enumerate(devices):
                key = (producer_name, device.name)
                if key not in got:
                    got[key] = pulp.LpVariable(f"got_{p}_{j}", lowBound=0)
                mine = (layer.name, device.name)
                if layer.splittable:
                    per_row, constant, halo = field_floor(layer, producer)
                    floor = per_row * rows[mine] + (constant + halo) * on[mine] - halo * full[mine]
                else:
                    floor = producer.out_rows * on[mine]
                model += rows[key] + got[key] >= floor
    for k, name in enumerate(problem.output_layers):
        key = (name, problem.output_device)
        got.setdefault(key, pulp.LpVariable(f"delivered_{k}", lowBound=0))
        model += rows[key] + got[key] >= layers[name].out_rows
    busy_of: dict[str, pulp.LpAffineExpression] = {}
    for device in devices:
        delay, back = windows[device.name]
        busy = busy_of[device.name] = pulp.lpSum(
            rows[(layer.name, device.name)] * (layer.flops_per_row / device.flops_per_s)
            + device.overhead_s * on[(layer.name, device.name)]
            for layer in problem.layers
        )
        model += latency >= delay + back + busy
        if device.memory_bytes is not None:
            model += (
                pulp.lpSum(
                    layer.weight_bytes * on[(layer.name, device.name)] for layer in problem.layers
                )
                <= device.memory_bytes
            )
    for twins in interchangeable_devices(problem):
        for a, b in itertools.pairwise(twins):
            model += busy_of[a] >= busy_of[b]
    check_deadline(deadline)
    for resource, receivers in common_resources(problem).items():
        capacity = problem.network.capacity_of(resource)
        if math.isinf(capacity):
            continue
        moved = pulp.lpSum(
            layers[p].bytes_per_row / capacity * var
            for (p, d), var in got.items()
            if d in receivers
        )
        model += latency >= moved
    # Valid for every plan, so for every point the relaxation must admit: lets HiGHS stop
    # as soon as it meets the closed form instead of proving a weaker value.
    model += latency >= latency_lower_bound(problem)
    model += latency
    return model, latency


def relaxation_bound(
    problem: EdgeflowProblem, options: SolveOptions, seconds: float
) -> tuple[float | None, Mapping[str, object]]:
    """Proven latency lower bound in seconds from the relaxation, within ``seconds`` of wall clock.

    Returns
    -------
    tuple
        The bound (None when the time ran out before HiGHS proved one) and
        metrics: ``relaxation_status``, ``relaxation_s`` (seconds spent).
    """
    sub = options.within(seconds)
    began, budget = sub.started_at, sub.time_limit
    try:
        model, _ = _build(problem, began + budget)
    except BuildTimeout:
        return None, {"relaxation_status": "build timed out", "relaxation_s": budget}
    outcome = solve_milp(model, sub, "highs")
    bound = None
    if outcome.bound is not None and math.isfinite(outcome.bound):
        bound = max(0.0, outcome.bound * (1 - SAFETY))
    return bound, {
        "relaxation_status": outcome.status.value,
        "relaxation_s": time.monotonic() - began,
    }
