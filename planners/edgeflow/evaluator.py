"""Independent event simulator for ``edgeflow`` plans: replays the executable units.

Imports only ``models/``: it shares no code with any solver. It first checks the
plan statically (coverage of every row, receptive fields, requirement/forwarding
consistency, pins, memory, delivery of the outputs), then executes the units
device by device under the rules of :mod:`distplan.models.edgeflow` (in-order
units, first-come first-served hold of every route resource) and reports the
inference latency in seconds, bytes moved and per-device busy time.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field

from ...models.edgeflow import EdgeflowPlan, EdgeflowProblem, ExecutionUnit, required_rows
from ...models.result import Evaluation

__all__ = ["evaluate_plan", "simulate"]

#: (layer, row_start, row_stop, sender, receiver): one transfer of rows.
TransferKey = tuple[str, int, int, str, str]


def _covers(ranges: list[tuple[int, int]], start: int, stop: int) -> bool:
    """Whether the union of half-open ``ranges`` contains ``[start, stop)``."""
    reached = start
    for a, b in sorted(ranges):
        if a > reached:
            break
        reached = max(reached, b)
        if reached >= stop:
            return True
    return reached >= stop


def _covered_at(pieces: list[tuple[float, int, int]], rows: int) -> float | None:
    """Earliest time at which pieces ``(time, start, stop)`` cover ``[0, rows)``; None if never."""
    have: list[tuple[int, int]] = []
    for time, a, b in sorted(pieces):
        have.append((a, b))
        if _covers(have, 0, rows):
            return time
    return None


@dataclass
class _Replay:
    """Mutable state of one simulation."""

    problem: EdgeflowProblem
    plan: EdgeflowPlan
    resource_free: dict[str, float] = field(default_factory=dict)
    arrival: dict[TransferKey, float] = field(default_factory=dict)
    deliveries: dict[str, list[tuple[float, int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    busy_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    bytes_moved: float = 0.0
    transfers: int = 0
    record: bool = False
    unit_times: list[dict[str, object]] = field(default_factory=list)
    transfer_times: list[dict[str, object]] = field(default_factory=list)


def _static_violations(problem: EdgeflowProblem, plan: EdgeflowPlan) -> list[str]:
    """Every broken rule that can be seen without running the plan."""
    bad: list[str] = []
    layers, devices = problem.layer_by_name, problem.device_by_name
    seen_devices: set[str] = set()
    computed: dict[str, list[tuple[int, int]]] = defaultdict(list)
    forwards: dict[TransferKey, int] = defaultdict(int)
    requests: dict[TransferKey, int] = defaultdict(int)
    for p, program in enumerate(plan.programs):
        where = f"programs[{p}]"
        if program.device not in devices:
            bad.append(f"{where}.device: unknown device {program.device!r}")
            continue
        if program.device in seen_devices:
            bad.append(f"{where}.device: a second program for {program.device!r}")
        seen_devices.add(program.device)
        done_here: dict[str, list[tuple[int, int]]] = defaultdict(list)
        weights: dict[str, float] = {}
        for u, unit in enumerate(program.units):
            at = f"{where}.units[{u}]"
            layer = layers.get(unit.layer)
            if layer is None:
                bad.append(f"{at}.layer: unknown layer {unit.layer!r}")
                continue
            if not (0 <= unit.row_start < unit.row_stop <= layer.out_rows):
                bad.append(
                    f"{at}: rows [{unit.row_start}, {unit.row_stop}) outside [0, {layer.out_rows}) of {unit.layer!r}"
                )
                continue
            if not layer.splittable and (unit.row_start, unit.row_stop) != (0, layer.out_rows):
                bad.append(
                    f"{at}: layer {unit.layer!r} is not splittable but only rows [{unit.row_start}, {unit.row_stop}) are computed"
                )
            pin = problem.pinned_device(unit.layer)
            if pin is not None and pin != program.device:
                bad.append(
                    f"{at}: layer {unit.layer!r} is pinned to {pin!r}, not {program.device!r}"
                )
            weights[unit.layer] = layer.weight_bytes
            bad.extend(
                _requirement_violations(problem, program.device, unit, at, done_here, requests)
            )
            for f, entry in enumerate(unit.forward):
                fat = f"{at}.forward[{f}]"
                if entry.target not in devices:
                    bad.append(f"{fat}.target: unknown device {entry.target!r}")
                elif entry.target == program.device:
                    bad.append(f"{fat}: forwards to its own device")
                elif not (unit.row_start <= entry.row_start < entry.row_stop <= unit.row_stop):
                    bad.append(
                        f"{fat}: rows [{entry.row_start}, {entry.row_stop}) are not computed by the unit"
                    )
                else:
                    forwards[
                        (unit.layer, entry.row_start, entry.row_stop, program.device, entry.target)
                    ] += 1
            done_here[unit.layer].append((unit.row_start, unit.row_stop))
            computed[unit.layer].append((unit.row_start, unit.row_stop))
        memory = devices[program.device].memory_bytes
        if memory is not None and sum(weights.values()) > memory:
            bad.append(
                f"device {program.device!r}: weights need {sum(weights.values()):.6g} bytes, it holds {memory:.6g}"
            )
    for layer in problem.layers:
        if not _covers(computed[layer.name], 0, layer.out_rows):
            bad.append(
                f"layer {layer.name!r}: rows not covered by any unit (has {sorted(computed[layer.name])})"
            )
    outputs = set(problem.output_layers)
    for key in sorted(requests):
        if key not in forwards:
            bad.append(
                f"device {key[4]!r} requires rows [{key[1]}, {key[2]}) of {key[0]!r} from {key[3]!r}, which has no forwarding entry for them"
            )
    for key in sorted(forwards):
        if key not in requests and not (key[0] in outputs and key[4] == problem.output_device):
            bad.append(
                f"device {key[3]!r} forwards rows [{key[1]}, {key[2]}) of {key[0]!r} to {key[4]!r}, which does not require them"
            )
    return bad


def _requirement_violations(
    problem: EdgeflowProblem,
    device: str,
    unit: ExecutionUnit,
    at: str,
    done_here: dict[str, list[tuple[int, int]]],
    requests: dict[TransferKey, int],
) -> list[str]:
    """Check one unit's input requirements; record the remote ones in ``requests``."""
    bad: list[str] = []
    layer = problem.layer_by_name[unit.layer]
    got: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r, need in enumerate(unit.inputs):
        rat = f"{at}.inputs[{r}]"
        if need.layer not in layer.inputs:
            bad.append(f"{rat}: {need.layer!r} is not an input of {unit.layer!r}")
            continue
        producer = problem.layer_by_name[need.layer]
        if not (0 <= need.row_start < need.row_stop <= producer.out_rows):
            bad.append(
                f"{rat}: rows [{need.row_start}, {need.row_stop}) outside [0, {producer.out_rows}) of {need.layer!r}"
            )
            continue
        if need.source not in problem.device_by_name:
            bad.append(f"{rat}.source: unknown device {need.source!r}")
            continue
        if need.source == device:
            if not _covers(done_here[need.layer], need.row_start, need.row_stop):
                bad.append(
                    f"{rat}: rows [{need.row_start}, {need.row_stop}) of {need.layer!r} are not computed on {device!r} by an earlier unit"
                )
        else:
            requests[(need.layer, need.row_start, need.row_stop, need.source, device)] += 1
        got[need.layer].append((need.row_start, need.row_stop))
    for producer_name in layer.inputs:
        producer = problem.layer_by_name[producer_name]
        a, b = required_rows(layer, producer, unit.row_start, unit.row_stop)
        if a < b and not _covers(got[producer_name], a, b):
            bad.append(
                f"{at}: missing input rows [{a}, {b}) of {producer_name!r} (requires {sorted(got[producer_name])})"
            )
    return bad


def _ready_time(replay: _Replay, device: str, unit: ExecutionUnit) -> float | None:
    """When every remote input of ``unit`` has arrived; None while some transfer is not issued yet."""
    ready = 0.0
    for need in unit.inputs:
        if need.source == device:
            continue
        key = (need.layer, need.row_start, need.row_stop, need.source, device)
        if key not in replay.arrival:
            return None
        ready = max(ready, replay.arrival[key])
    return ready


def _issue_transfers(replay: _Replay, device: str, unit: ExecutionUnit, now: float) -> None:
    """Send the unit's forwarding table in order (FCFS hold of every route resource)."""
    problem = replay.problem
    layer = problem.layer_by_name[unit.layer]
    for entry in unit.forward:
        nbytes = (entry.row_stop - entry.row_start) * layer.bytes_per_row
        route = problem.network.route(device, entry.target)
        assert route is not None  # the problem validator checked every device pair
        if nbytes > 0:
            start = max([now] + [replay.resource_free.get(r, 0.0) for r in route.resources])
            end = start + nbytes / route.bottleneck_bytes_per_s
            for resource in route.resources:
                replay.resource_free[resource] = end
            arrival = end + route.latency_s
            replay.bytes_moved += nbytes
            replay.transfers += 1
            if replay.record:
                replay.transfer_times.append(
                    {
                        "layer": unit.layer,
                        "row_start": entry.row_start,
                        "row_stop": entry.row_stop,
                        "source": device,
                        "target": entry.target,
                        "bytes": nbytes,
                        "resources": list(route.resources),
                        "start_s": start,
                        "end_s": end,
                    }
                )
        else:
            arrival = now
        key = (unit.layer, entry.row_start, entry.row_stop, device, entry.target)
        replay.arrival[key] = min(arrival, replay.arrival.get(key, arrival))
        if entry.target == problem.output_device and unit.layer in problem.output_layers:
            replay.deliveries[unit.layer].append((arrival, entry.row_start, entry.row_stop))


def simulate(problem: EdgeflowProblem, plan: EdgeflowPlan, *, record: bool = False) -> Evaluation:
    """Replay ``plan`` unit by unit; see the module docstring.

    Parameters
    ----------
    record
        Also return the timeline (for pictures): ``metrics["unit_times"]``, one
        record per executed unit (``device``, ``index`` in its program, ``layer``,
        ``row_start``, ``row_stop``, ``start_s``, ``end_s``), and
        ``metrics["transfer_times"]``, one per transfer of a non-empty row range
        (``layer``, rows, ``source``, ``target``, ``bytes``, the route's
        ``resources``, ``start_s``, ``end_s`` of holding them; seconds).

    Returns
    -------
    Evaluation
        ``objective`` is the latency in seconds; ``metrics`` hold ``bytes_moved``
        (bytes), ``busy_s`` (seconds per device), ``units`` and ``transfers``.
        Plans that break a rule come back infeasible with every violation named.
    """
    bad = _static_violations(problem, plan)
    if bad:
        return Evaluation(feasible=False, objective=None, violations=bad)
    replay = _Replay(problem, plan, record=record)
    order = {device.name: k for k, device in enumerate(problem.devices)}
    programs = sorted(plan.programs, key=lambda program: order[program.device])
    next_unit = [0] * len(programs)
    free_at = [0.0] * len(programs)
    running = [False] * len(programs)
    events: list[tuple[float, int, int]] = []
    finished: dict[str, list[tuple[float, int, int]]] = defaultdict(list)

    def start_ready_units() -> None:
        for p, program in enumerate(programs):
            if running[p] or next_unit[p] >= len(program.units):
                continue
            unit = program.units[next_unit[p]]
            ready = _ready_time(replay, program.device, unit)
            if ready is None:
                continue
            device = problem.device_by_name[program.device]
            layer = problem.layer_by_name[unit.layer]
            duration = (
                device.overhead_s
                + layer.flops_per_row * (unit.row_stop - unit.row_start) / device.flops_per_s
            )
            start = max(free_at[p], ready)
            running[p] = True
            replay.busy_s[program.device] += duration
            if record:
                replay.unit_times.append(
                    {
                        "device": program.device,
                        "index": next_unit[p],
                        "layer": unit.layer,
                        "row_start": unit.row_start,
                        "row_stop": unit.row_stop,
                        "start_s": start,
                        "end_s": start + duration,
                    }
                )
            heapq.heappush(events, (start + duration, p, next_unit[p]))

    start_ready_units()
    while events:
        now, p, u = heapq.heappop(events)
        program = programs[p]
        unit = program.units[u]
        running[p], free_at[p], next_unit[p] = False, now, u + 1
        if program.device == problem.output_device:
            finished[unit.layer].append((now, unit.row_start, unit.row_stop))
        _issue_transfers(replay, program.device, unit, now)
        start_ready_units()
    stuck = [
        f"deadlock: {program.device!r} waits at unit {next_unit[p]} ({program.units[next_unit[p]].layer!r}) for inputs never sent"
        for p, program in enumerate(programs)
        if next_unit[p] < len(program.units)
    ]
    if stuck:
        return Evaluation(feasible=False, objective=None, violations=stuck)
    latency = 0.0
    for name in problem.output_layers:
        layer = problem.layer_by_name[name]
        at = _covered_at(finished[name] + replay.deliveries[name], layer.out_rows)
        if at is None:
            return Evaluation(
                feasible=False,
                objective=None,
                violations=[f"output {name!r}: not every row reaches {problem.output_device!r}"],
            )
        latency = max(latency, at)
    metrics = {
        "latency_s": latency,
        "bytes_moved": replay.bytes_moved,
        "transfers": replay.transfers,
        "units": sum(len(program.units) for program in plan.programs),
        "busy_s": {device.name: replay.busy_s.get(device.name, 0.0) for device in problem.devices},
    }
    if record:
        metrics["unit_times"] = replay.unit_times
        metrics["transfer_times"] = replay.transfer_times
    return Evaluation(feasible=True, objective=latency, metrics=metrics)


def evaluate_plan(problem: EdgeflowProblem, plan: EdgeflowPlan) -> Evaluation:
    """The kind's independent evaluator (``ProblemKind.evaluate``): :func:`simulate`."""
    return simulate(problem, plan)
