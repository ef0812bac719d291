"""Solver-side latency of an executable plan: the objective every edgeflow solver reports.

Solvers decide with the builder's estimate (:mod:`.builder`), then time the
finished plan here under the execution rules of :mod:`distplan.models.edgeflow`
so that the objective they report is the plan's latency. This is the solvers'
own timing, written separately from the independent simulator
(:mod:`.evaluator`), which re-checks every plan; the two must agree.
"""

from __future__ import annotations

from ...models.edgeflow import EdgeflowPlan, EdgeflowProblem

__all__ = ["plan_latency"]


def plan_latency(problem: EdgeflowProblem, plan: EdgeflowPlan) -> float:
    """Latency in seconds of a valid ``plan`` (in-order units, FCFS hold of route resources).

    Completions are taken in order of (finish time, device order); each
    completion issues its forwarding table, which fixes the arrival times its
    receivers wait for.
    """
    device_rank = {d.name: k for k, d in enumerate(problem.devices)}
    programs = sorted((p for p in plan.programs if p.units), key=lambda p: device_rank[p.device])
    position = [0] * len(programs)
    idle_from = [0.0] * len(programs)
    arrived: dict[tuple[str, int, int, str, str], float] = {}
    busy_until: dict[str, float] = {}
    output_pieces: dict[str, list[tuple[float, int, int]]] = {
        name: [] for name in problem.output_layers
    }

    def finish_of(index: int) -> float | None:
        program = programs[index]
        unit = program.units[position[index]]
        start = idle_from[index]
        for need in unit.inputs:
            if need.source != program.device:
                key = (need.layer, need.row_start, need.row_stop, need.source, program.device)
                if key not in arrived:
                    return None
                start = max(start, arrived[key])
        device = problem.device_by_name[program.device]
        layer = problem.layer_by_name[unit.layer]
        rows = unit.row_stop - unit.row_start
        return (
            start
            + device.overhead_s
            + layer.work_flops * rows / layer.out_rows / device.flops_per_s
        )

    while True:
        best: tuple[float, int] | None = None
        for index, program in enumerate(programs):
            if position[index] < len(program.units):
                done = finish_of(index)
                if done is not None and (best is None or done < best[0]):
                    best = (done, index)
        if best is None:
            break
        now, index = best
        program = programs[index]
        unit = program.units[position[index]]
        position[index] += 1
        idle_from[index] = now
        layer = problem.layer_by_name[unit.layer]
        if unit.layer in output_pieces and program.device == problem.output_device:
            output_pieces[unit.layer].append((now, unit.row_start, unit.row_stop))
        for entry in unit.forward:
            size = layer.out_bytes * (entry.row_stop - entry.row_start) / layer.out_rows
            when = now
            if size > 0:
                route = problem.network.route(program.device, entry.target)
                assert route is not None
                begin = max([now, *(busy_until.get(r, 0.0) for r in route.resources)])
                busy_until.update(
                    dict.fromkeys(route.resources, begin + size / route.bottleneck_bytes_per_s)
                )
                when = begin + size / route.bottleneck_bytes_per_s + route.latency_s
            key = (unit.layer, entry.row_start, entry.row_stop, program.device, entry.target)
            arrived.setdefault(key, when)
            if unit.layer in output_pieces and entry.target == problem.output_device:
                output_pieces[unit.layer].append((when, entry.row_start, entry.row_stop))
    if any(position[k] < len(p.units) for k, p in enumerate(programs)):
        raise ValueError("plan deadlocks: a unit waits for rows nobody sends")
    latency = 0.0
    for name, pieces in output_pieces.items():
        complete_at = _complete_at(pieces, problem.layer_by_name[name].out_rows)
        if complete_at is None:
            raise ValueError(f"output {name!r} never fully reaches the output device")
        latency = max(latency, complete_at)
    return latency


def _complete_at(pieces: list[tuple[float, int, int]], rows: int) -> float | None:
    """First time at which the pieces ``(time, start, stop)`` that have arrived cover ``[0, rows)``."""
    for when in sorted({piece[0] for piece in pieces}):
        reached = 0
        for start, stop in sorted((s, e) for t, s, e in pieces if t <= when):
            if start > reached:
                break
            reached = max(reached, stop)
        if reached >= rows:
            return when
    return None
