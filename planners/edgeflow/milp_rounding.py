"""Round the split MILP's shares into an executable plan, and project a plan onto the model.

The shares of each group (:mod:`.milp_model`) are rounded to rows by the
largest-remainder method (:func:`.shares.largest_remainder`, Hu & Li 2022's
share rounding; reconstruction), laid out in the devices' fixed order, and
built by :mod:`.builder`; consecutive groups with the same split that form a
chain may be fused (:func:`.fusion.fused_parts`).
"""

from __future__ import annotations

import heapq

import pulp

from ...models.edgeflow import EdgeflowPlan, EdgeflowProblem
from .builder import Part, build_plan, parts_from_counts, whole
from .fusion import fused_parts
from .milp_model import SplitModel, is_chain, is_whole_group
from .shares import largest_remainder

__all__ = ["plan_from_shares", "start_from_plan"]


def plan_from_shares(
    problem: EdgeflowProblem,
    groups: list[list[str]],
    shares: dict[tuple[int, str], float],
    starts: list[float],
    fuse_up_to: int = 1,
) -> EdgeflowPlan:
    """Round the shares by largest remainder and build the plan, groups placed by start time.

    Consecutive split groups with the same shares whose layers form a chain
    are fused (:func:`.fusion.fused_parts`: the last layer's rows are rounded,
    earlier layers take the receptive fields, so no halo moves inside the run),
    up to ``fuse_up_to`` layers per run; 1 rounds every layer on its own.
    """
    names = [d.name for d in problem.devices]
    weights: list[list[float]] = []
    for g in range(len(groups)):
        row = [shares[(g, d)] if shares[(g, d)] > 1e-9 else 0.0 for d in names]
        weights.append(row if sum(row) > 0 else [float(k == 0) for k in range(len(names))])
    runs: list[list[int]] = []
    for g, members in enumerate(groups):
        if (
            runs
            and _fusable(problem, [groups[h] for h in runs[-1]] + [members], fuse_up_to)
            and all(
                abs(a - b) <= 1e-9 for a, b in zip(weights[runs[-1][0]], weights[g], strict=True)
            )
        ):
            runs[-1].append(g)
        else:
            runs.append([g])
    parts: dict[str, list[Part]] = {}
    for run in runs:
        members = [n for g in run for n in groups[g]]
        share = weights[run[0]]
        if _fusable(problem, [members], fuse_up_to):
            last = problem.layer_by_name[members[-1]]
            final = parts_from_counts(names, largest_remainder(share, last.out_rows))
            parts.update(zip(members, fused_parts(problem, members, final), strict=True))
            continue
        for name in members:
            if is_whole_group(problem, [name]):
                device = names[max(range(len(names)), key=lambda k: (share[k], -k))]
                parts[name] = whole(problem, name, device)
            else:
                rows = problem.layer_by_name[name].out_rows
                parts[name] = parts_from_counts(names, largest_remainder(share, rows))
    members_of = [[n for g in run for n in groups[g]] for run in runs]
    order = [
        n
        for r in _ranked_runs(problem, members_of, [starts[run[0]] for run in runs])
        for n in members_of[r]
    ]
    return build_plan(problem, parts, order)[0]


def _ranked_runs(
    problem: EdgeflowProblem, members_of: list[list[str]], starts: list[float]
) -> list[int]:
    """Runs in a topological order that takes the earliest model start first (ties: index).

    Sorting by start alone could put a consumer first when solver tolerances
    make two starts equal up to 1e-9.
    """
    run_of = {n: r for r, members in enumerate(members_of) for n in members}
    after: list[set[int]] = [set() for _ in members_of]
    waiting = [0] * len(members_of)
    for layer in problem.layers:
        for producer in layer.inputs:
            a, b = run_of[producer], run_of[layer.name]
            if a != b and b not in after[a]:
                after[a].add(b)
                waiting[b] += 1
    ready = [(starts[r], r) for r in range(len(members_of)) if waiting[r] == 0]
    heapq.heapify(ready)
    ranked = []
    while ready:
        _, r = heapq.heappop(ready)
        ranked.append(r)
        for b in sorted(after[r]):
            waiting[b] -= 1
            if waiting[b] == 0:
                heapq.heappush(ready, (starts[b], b))
    return ranked


def _fusable(problem: EdgeflowProblem, pieces: list[list[str]], fuse_up_to: int) -> bool:
    """Whether the concatenated layers are a split chain of 2 to ``fuse_up_to`` layers."""
    members = [n for piece in pieces for n in piece]
    return (
        2 <= len(members) <= fuse_up_to
        and not is_whole_group(problem, members)
        and is_chain(problem, members)
    )


def start_from_plan(
    problem: EdgeflowProblem, split: SplitModel, plan: EdgeflowPlan
) -> dict[pulp.LpVariable, float]:
    """A partial MIP start: each group's shares as the plan's rows of its heaviest layer per device."""
    rows: dict[tuple[str, str], int] = {}
    for program in plan.programs:
        for unit in program.units:
            key = (unit.layer, program.device)
            rows[key] = rows.get(key, 0) + unit.row_stop - unit.row_start
    values: dict[pulp.LpVariable, float] = {}
    for g, members in enumerate(split.groups):
        heaviest = max(members, key=lambda n: (problem.layer_by_name[n].work_flops, n))
        counts = {d.name: rows.get((heaviest, d.name), 0) for d in problem.devices}
        total = sum(counts.values())
        if total == 0:
            return {}
        if is_whole_group(problem, members):
            chosen = max(counts, key=lambda d: counts[d])
            counts = {d: int(d == chosen) for d in counts}
            total = 1
        for device, count in counts.items():
            values[split.share[(g, device)]] = count / total
            values[split.on[(g, device)]] = float(count > 0)
    return values
