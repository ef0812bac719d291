"""Exact over whole-layer plans: CP-SAT placement and scheduling of layer groups.

Model (ours; the paper's formulation is not available to us)
-------------------------------------------------------------
* Layers are coarsened into at most ``max_groups`` groups (:func:`.coarsen.coarsen`);
  every group runs whole on one device (``on[g][d]``, exactly one, pins fixed).
* Each group has an optional interval per device whose duration is the group's
  work over the device's speed plus one overhead per layer; one no-overlap per
  device.
* For every group ``u``, and ordered device pair ``(a, b)``, an optional transfer
  interval of ``bytes(u) / bottleneck(a, b)`` (bytes of ``u``'s layers read by
  other groups) is present when ``u`` is on ``a`` and some consumer on ``b``;
  it starts after ``u`` ends, the consumer starts ``latency(a, b)`` after it ends,
  and it occupies every resource of the route (each directed link, the shared
  medium): one no-overlap per resource. Outputs are sent to ``output_device``
  likewise.
* Objective: the time the last output is on ``output_device``; integer ticks of
  one microsecond.

The model's optimum is the best whole-layer plan *for its own transfer order*;
the simulator replays transfers first-come first-served, so the reported
objective is the replayed plan's latency. Its optimality covers whole-layer plans
of the coarsened groups only: row splits are outside it, so its bound is not a
bound on the problem and is reported as ``metrics["whole_layer_bound_s"]``; the
result's bound is the kind's closed-form one.
"""

from __future__ import annotations

import math

from ...models.edgeflow import EdgeflowProblem
from ...models.result import Role, SolveStatus
from ...solvers.options import SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .baselines import heft_plan
from .builder import build_plan, whole
from .coarsen import coarsen
from .replay import plan_latency

__all__ = ["solve_cpsat_whole_layer"]

TICK_S = 1e-6
DEFAULT_MAX_GROUPS = 24


def _ticks(seconds: float) -> int:
    return int(math.ceil(seconds / TICK_S - 1e-9))


@register_solver(
    "cpsat-whole-layer",
    kind="edgeflow",
    role=Role.EXACT,
    needs=("ortools",),
    description="CP-SAT: exact over whole-layer placements and schedules of coarsened layer groups (no row splits)",
    extra_options={"max_groups": f"layers are merged into at most this many groups (default {DEFAULT_MAX_GROUPS})"},
)
def solve_cpsat_whole_layer(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """Place and schedule whole layer groups with CP-SAT; hinted with HEFT's placement."""
    from ortools.sat.python import cp_model

    from ...solvers.cpsat import solve_cpsat

    max_groups = int(options.option("max_groups", DEFAULT_MAX_GROUPS))
    groups = coarsen(problem, max_groups)
    group_of = {name: g for g, names in enumerate(groups) for name in names}
    devices = [d.name for d in problem.devices]
    model = cp_model.CpModel()
    heft, _ = heft_plan(problem)
    heft_device = {u.layer: p.device for p in heft.programs for u in p.units}
    horizon = _ticks(max(plan_latency(problem, heft), 1e-6)) * 4 + 1000

    on: list[dict[str, cp_model.IntVar]] = []
    start, end = [], []
    per_device: dict[str, list[cp_model.IntervalVar]] = {d: [] for d in devices}
    for g, names in enumerate(groups):
        start.append(model.NewIntVar(0, horizon, f"start{g}"))
        end.append(model.NewIntVar(0, horizon, f"end{g}"))
        pins = {problem.pinned_device(n) for n in names} - {None}
        choice: dict[str, cp_model.IntVar] = {}
        for d in devices:
            if pins and d not in pins:
                continue
            device = problem.device_by_name[d]
            seconds = sum(device.overhead_s + problem.layer_by_name[n].work_flops / device.flops_per_s for n in names)
            present = model.NewBoolVar(f"on{g}_{d}")
            size = _ticks(seconds)
            per_device[d].append(model.NewOptionalIntervalVar(start[g], size, end[g], present, f"run{g}_{d}"))
            choice[d] = present
        model.AddExactlyOne(choice.values())
        model.AddHint(choice.get(heft_device[names[0]], next(iter(choice.values()))), 1)
        on.append(choice)
    for intervals in per_device.values():
        model.AddNoOverlap(intervals)

    per_resource: dict[str, list[cp_model.IntervalVar]] = {}
    finish = model.NewIntVar(0, horizon, "latency")
    consumers: dict[int, set[int]] = {g: set() for g in range(len(groups))}
    sent_bytes = [0.0] * len(groups)
    for layer in problem.layers:
        for producer in layer.inputs:
            a, b = group_of[producer], group_of[layer.name]
            if a != b:
                consumers[a].add(b)
    for g, names in enumerate(groups):
        readers = {c for n in names for c in problem.consumers[n] if group_of[c] != g}
        sent_bytes[g] = sum(problem.layer_by_name[n].out_bytes for n in names if readers & set(problem.consumers[n]))
        outputs = [n for n in names if n in problem.output_layers]
        output_bytes = sum(problem.layer_by_name[n].out_bytes for n in outputs)
        for c in sorted(consumers[g]):
            for a in on[g]:
                if a in on[c]:
                    model.Add(start[c] >= end[g]).OnlyEnforceIf([on[g][a], on[c][a]])
        targets = [(d, sent_bytes[g], sorted(consumers[g])) for d in devices]
        if outputs:
            targets.append((problem.output_device, output_bytes, [-1]))
            if problem.output_device in on[g]:
                model.Add(finish >= end[g]).OnlyEnforceIf(on[g][problem.output_device])
        for b, nbytes, readers_of in targets:
            for a in on[g]:
                if a == b:
                    continue
                route = problem.network.route(a, b)
                assert route is not None
                needed = [on[c][b] for c in readers_of if c >= 0 and b in on[c]]
                if readers_of != [-1] and not needed:
                    continue
                present = model.NewBoolVar(f"send{g}_{a}_{b}_{readers_of == [-1]}")
                model.AddImplication(present, on[g][a])
                for need in needed:
                    model.AddBoolOr([on[g][a].Not(), need.Not(), present])
                if readers_of == [-1]:
                    model.AddImplication(on[g][a], present)
                size = _ticks(nbytes / route.bottleneck_bytes_per_s) if nbytes > 0 else 0
                begin = model.NewIntVar(0, horizon, f"sb{g}_{a}_{b}")
                done = model.NewIntVar(0, horizon, f"se{g}_{a}_{b}")
                interval = model.NewOptionalIntervalVar(begin, size, done, present, f"send{g}_{a}_{b}")
                model.Add(begin >= end[g]).OnlyEnforceIf(present)
                lag = _ticks(route.latency_s) if nbytes > 0 else 0
                for c in readers_of:
                    if c < 0:
                        model.Add(finish >= done + lag).OnlyEnforceIf(present)
                    elif b in on[c]:
                        model.Add(start[c] >= done + lag).OnlyEnforceIf([present, on[c][b]])
                if size > 0:
                    for resource in route.resources:
                        per_resource.setdefault(resource, []).append(interval)
    for intervals in per_resource.values():
        model.AddNoOverlap(intervals)
    model.Minimize(finish)
    outcome = solve_cpsat(model, options)
    if not outcome.has_solution:
        return SolverOutput(outcome.status, metrics={"reason": "CP-SAT found no whole-layer plan within the time limit"})
    solver = outcome.solver
    device_of = {g: next(d for d, v in on[g].items() if solver.Value(v)) for g in range(len(groups))}
    group_rank = {g: (solver.Value(start[g]), g) for g in range(len(groups))}
    order = [n for g in sorted(range(len(groups)), key=lambda g: group_rank[g]) for n in groups[g]]
    parts = {n: whole(problem, n, device_of[group_of[n]]) for n in order}
    plan, _ = build_plan(problem, parts, order)
    metrics = {
        "groups": len(groups),
        "whole_layer_bound_s": None if outcome.bound is None else outcome.bound * TICK_S,
        "whole_layer_optimal": outcome.status is SolveStatus.OPTIMAL,
        "model_latency_s": None if outcome.objective is None else outcome.objective * TICK_S,
    }
    status = SolveStatus.FEASIBLE if outcome.status is SolveStatus.OPTIMAL else outcome.status
    return SolverOutput(status, plan=plan, objective=plan_latency(problem, plan), metrics=metrics)
