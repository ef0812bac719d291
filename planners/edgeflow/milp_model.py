"""The split-share MILP of ``milp-split``: row shares of layer groups, group-synchronous timing.

Model (Hu & Li 2022, reconstruction; the paper's formulation is not available to us)
----------------------------------------------------------------------------------
Layers are coarsened into groups (:func:`.coarsen.coarsen`); the layers of a
group share one split. Devices keep the problem's order inside every split,
so device ``d`` holds the contiguous fraction ``[offset, offset + share)`` of
each layer of the group.

* ``share[g, d]`` in ``[0, 1]``, ``on[g, d]`` binary, ``share <= on``,
  ``sum_d share = 1``; a group with a whole-only layer (or an input tensor) is
  whole: ``share = on``. Pins fix ``on``; memory: ``sum_g weights * on <= memory``.
* Timing, group-synchronous: ``finish[g] >= start[g] + sum_{L in g} (flops_L *
  share / speed_d + overhead_d * on)`` for every device.
* Bytes into ``d`` on a group edge ``q -> g``: for a splittable consumer, the
  fraction it needs but does not hold, linearised with the fixed order as
  ``min(share_g, (offset_q - offset_g)^+ + (end_g - end_q)^+)`` (exact for
  contiguous ranges; one binary picks the minimum), plus halo rows ``(kernel - stride)^+ *
  (on - share)``; for a whole-only consumer, ``on[g, d] - share[q, d]`` of the
  producer.
* ``start[g] >= finish[q] + (bytes over each shared resource) / capacity +
  latency`` (the latency when anything moves): a shared WLAN carries the sum
  over devices, a switch each device's downlink.
* Groups with no path between them that share a device do not overlap
  (one ordering binary per pair, big-M).
* Latency ``>= finish[g]`` of output groups plus the delivery of the rows not
  computed on ``output_device``.

It is a *restriction* with approximate communication (one split per group,
no pipelining between groups, halos inside a group ignored): its optimum is
neither the problem's optimum nor a bound. The plan it yields is rounded and
built by :mod:`.milp_rounding` and timed by the replay; the proven bound comes
from :mod:`.milp_relaxation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pulp

from ...models.edgeflow import EdgeflowProblem
from ...solvers.milp import check_deadline
from .bounds import nonempty_edge
from .milp_relaxation import common_resources

__all__ = ["SplitModel", "build_split_model", "is_chain", "is_whole_group"]


@dataclass
class SplitModel:
    """The PuLP model and the variables read back (shares, participation, group starts)."""

    model: pulp.LpProblem
    groups: list[list[str]]
    share: dict[tuple[int, str], pulp.LpVariable]
    on: dict[tuple[int, str], pulp.LpVariable]
    start: list[pulp.LpVariable]
    latency: pulp.LpVariable


def is_whole_group(problem: EdgeflowProblem, names: list[str]) -> bool:
    """Whether a group holds a whole-only layer or an input tensor (then it runs whole on one device)."""
    layers = problem.layer_by_name
    return any(not layers[n].splittable or not layers[n].inputs for n in names)


def is_chain(problem: EdgeflowProblem, members: list[str]) -> bool:
    """Whether each member after the first reads only the one before it, and every row of it some rows.

    (Such a chain can be fused: every part's receptive field is nonempty.)
    """
    layers = problem.layer_by_name
    return all(
        layers[b].inputs == [a] and nonempty_edge(layers[b], layers[a])
        for a, b in zip(members, members[1:], strict=False)
    )


def _reachable(count: int, edges: set[tuple[int, int]]) -> list[set[int]]:
    """For each group (in topological order), the groups reachable from it."""
    reach: list[set[int]] = [set() for _ in range(count)]
    for g in reversed(range(count)):
        for a, b in edges:
            if a == g:
                reach[g] |= {b} | reach[b]
    return reach


def build_split_model(
    problem: EdgeflowProblem, groups: list[list[str]], horizon_s: float, deadline: float
) -> SplitModel:
    """The split-share MILP over ``groups`` (module docstring); ``horizon_s`` is its big-M in seconds."""
    layers = problem.layer_by_name
    devices = problem.devices
    group_of = {n: g for g, names in enumerate(groups) for n in names}
    model = pulp.LpProblem("edgeflow_split", pulp.LpMinimize)
    latency = pulp.LpVariable("latency_s", lowBound=0)
    start = [pulp.LpVariable(f"start_{g}", lowBound=0) for g in range(len(groups))]
    finish = [pulp.LpVariable(f"finish_{g}", lowBound=0) for g in range(len(groups))]
    share: dict[tuple[int, str], pulp.LpVariable] = {}
    on: dict[tuple[int, str], pulp.LpVariable] = {}
    offset: dict[tuple[int, str], pulp.LpAffineExpression] = {}
    for g, names in enumerate(groups):
        pins = {problem.pinned_device(n) for n in names} - {None}
        before = pulp.LpAffineExpression()
        for j, device in enumerate(devices):
            allowed = not pins or device.name in pins
            key = (g, device.name)
            on[key] = pulp.LpVariable(
                f"on_{g}_{j}", lowBound=0, upBound=int(allowed), cat="Integer"
            )
            share[key] = pulp.LpVariable(f"share_{g}_{j}", lowBound=0, upBound=1)
            if is_whole_group(problem, names):
                model += share[key] == on[key]
            else:
                model += share[key] <= on[key]
            offset[key] = before
            before = before + share[key]
            busy = pulp.lpSum(
                layers[n].work_flops / device.flops_per_s * share[key] + device.overhead_s * on[key]
                for n in names
            )
            model += finish[g] >= start[g] + busy
        model += before == 1
    for device in devices:
        if device.memory_bytes is not None:
            model += (
                pulp.lpSum(
                    sum(layers[n].weight_bytes for n in names) * on[(g, device.name)]
                    for g, names in enumerate(groups)
                )
                <= device.memory_bytes
            )
    shared = [
        (receivers, problem.network.capacity_of(resource))
        for resource, receivers in common_resources(problem).items()
    ]
    latency_s = max(
        (
            r.latency_s
            for a in devices
            for b in devices
            if a != b and (r := problem.network.route(a.name, b.name))
        ),
        default=0.0,
    )
    edges: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for layer in problem.layers:
        for producer in layer.inputs:
            q, g = group_of[producer], group_of[layer.name]
            if q != g:
                edges.setdefault((q, g), []).append((producer, layer.name))
    variables = _Variables(share, on, offset, start, finish)
    for (q, g), pairs in sorted(edges.items()):
        check_deadline(deadline)
        _group_edge(model, problem, (q, g), pairs, variables, shared, latency_s)
    _no_overlap(model, groups, set(edges), devices, on, start, finish, horizon_s, deadline)
    outputs = set(problem.output_layers)
    into_output = min(
        (capacity for receivers, capacity in shared if problem.output_device in receivers),
        default=math.inf,
    )
    for g, names in enumerate(groups):
        out_bytes = sum(layers[n].out_bytes for n in names if n in outputs)
        if not any(n in outputs for n in names):
            continue
        here = (g, problem.output_device)
        deliver = out_bytes / into_output if math.isfinite(into_output) else 0.0
        model += latency >= finish[g] + deliver * (1 - share[here]) + latency_s * (1 - on[here])
    model += latency
    return SplitModel(model, groups, share, on, start, latency)


@dataclass
class _Variables:
    """The variables and offset expressions the group-edge constraints read."""

    share: dict[tuple[int, str], pulp.LpVariable]
    on: dict[tuple[int, str], pulp.LpVariable]
    offset: dict[tuple[int, str], pulp.LpAffineExpression]
    start: list[pulp.LpVariable]
    finish: list[pulp.LpVariable]


def _group_edge(
    model: pulp.LpProblem,
    problem: EdgeflowProblem,
    edge: tuple[int, int],
    pairs: list[tuple[str, str]],
    var: _Variables,
    shared: list[tuple[list[str], float]],
    latency_s: float,
) -> None:
    """Bytes moved on the group edge ``q -> g`` and the delay they put between the groups."""
    q, g = edge
    layers = problem.layer_by_name
    moved: dict[str, pulp.LpAffineExpression] = {}
    for j, device in enumerate(problem.devices):
        into = pulp.LpAffineExpression()
        here_q, here_g = (q, device.name), (g, device.name)
        for k, (producer_name, consumer_name) in enumerate(pairs):
            producer, consumer = layers[producer_name], layers[consumer_name]
            tag = f"{q}_{g}_{j}_{k}"
            if not consumer.splittable:
                gap = pulp.LpVariable(f"need_{tag}", lowBound=0)
                model += gap >= var.on[here_g] - var.share[here_q]
                into += producer.out_bytes * gap
                continue
            into += producer.out_bytes * _missing_fraction(
                model,
                tag,
                (var.offset[here_q], var.share[here_q]),
                (var.offset[here_g], var.share[here_g]),
                var.on[here_g],
            )
            halo_rows = max(0, consumer.kernel_rows - consumer.stride_rows)
            into += halo_rows * producer.bytes_per_row * (var.on[here_g] - var.share[here_g])
        moved[device.name] = into
    anything = pulp.LpVariable(f"moves_{q}_{g}", cat="Binary")
    total_bytes = 1.0 + len(problem.devices) * sum(
        2 * layers[p].out_bytes + layers[c].kernel_rows * layers[p].bytes_per_row for p, c in pairs
    )
    model += pulp.lpSum(moved.values()) <= total_bytes * anything
    for receivers, capacity in shared:
        if not math.isinf(capacity):
            hold = pulp.lpSum(moved[d] for d in receivers) * (1.0 / capacity)
            model += var.start[g] >= var.finish[q] + hold + latency_s * anything
    model += var.start[g] >= var.finish[q] + latency_s * anything


def _missing_fraction(
    model: pulp.LpProblem,
    tag: str,
    held_range: tuple[pulp.LpAffineExpression, pulp.LpVariable],
    need_range: tuple[pulp.LpAffineExpression, pulp.LpVariable],
    on: pulp.LpVariable,
) -> pulp.LpVariable:
    """Fraction of ``[need_offset, +need)`` outside ``[held_offset, +held)``, from above in a minimisation.

    It is ``min(need, (held_offset - need_offset)^+ + (need_end - held_end)^+)``
    (the second term alone over-counts disjoint ranges); a binary picks the
    smaller term; nothing is missing when the device is off. Ranges are
    ``(offset, share)`` fractions of the layer.
    """
    held_offset, held = held_range
    need_offset, need = need_range
    top = pulp.LpVariable(f"top_{tag}", lowBound=0)
    bottom = pulp.LpVariable(f"bottom_{tag}", lowBound=0)
    missing = pulp.LpVariable(f"missing_{tag}", lowBound=0)
    all_of_it = pulp.LpVariable(f"disjoint_{tag}", cat="Binary")
    model += top >= held_offset - need_offset - (1 - on)
    model += bottom >= (need_offset + need) - (held_offset + held) - (1 - on)
    model += missing >= top + bottom - 2 * all_of_it
    model += missing >= need - (1 - all_of_it)
    return missing


def _no_overlap(
    model: pulp.LpProblem,
    groups: list[list[str]],
    edges: set[tuple[int, int]],
    devices: list,
    on: dict[tuple[int, str], pulp.LpVariable],
    start: list[pulp.LpVariable],
    finish: list[pulp.LpVariable],
    horizon_s: float,
    deadline: float,
) -> None:
    """Groups with no path between them do not overlap on a device they both use (big-M)."""
    reach = _reachable(len(groups), edges)
    for g in range(len(groups)):
        check_deadline(deadline)
        for h in range(g + 1, len(groups)):
            if h in reach[g] or g in reach[h]:
                continue
            first = pulp.LpVariable(f"first_{g}_{h}", cat="Binary")
            for device in devices:
                both = 2 - on[(g, device.name)] - on[(h, device.name)]
                model += start[h] >= finish[g] - horizon_s * (1 - first + both)
                model += start[g] >= finish[h] - horizon_s * (first + both)
