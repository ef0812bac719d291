"""Bottleneck sensing and the grouping MILP of our DS-Sync planner.

Reconstruction of DS-Sync's "divide" step (Wang et al., INFOCOM 2022, Sec. III;
the paper's text is not available to us):

1. *Sensing*: for every rack, the links shared by all of its routes to other
   racks are its uplink; their smallest residual capacity (capacity minus peak
   background load, bytes/s) divided by the ring rate (the smallest NIC rate,
   bytes/s) is how many cross-rack ring hops the uplink carries without being
   overcommitted: the rack's *budget* (at least 1, so that a slow rack still
   mixes, through one ring at its uplink's rate).
2. *MILP* (HiGHS through PuLP): ``t[r, g] = 1`` when rack ``r`` sends one worker
   to mixing group ``g``; ``u[g] = 1`` when group ``g`` is used. Maximise
   ``sum t - 1e-3 sum u`` (cross-rack mixing, then fewer groups) subject to
   ``sum_g t[r, g] <= min(budget_r, workers_r)`` (no uplink overcommitted),
   ``2 u[g] <= sum_r t[r, g] <= max_group u[g]`` (size limits), and the symmetry
   breaking ``u[g] >= u[g+1]``, ``size_g >= size_{g+1}``. Workers of one rack are
   interchangeable here, so the model has ``R * G`` binaries, not ``n * G``: 256
   workers solve in well under a second.

The workers left out of mixing groups average inside their rack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pulp

from ...models.dssync import DssyncProblem
from ...models.result import SolveStatus
from ...solvers.milp import solve_milp
from ...solvers.options import SolveOptions
from .schedules import workers_by_rack

__all__ = ["MixingGroups", "rack_budgets", "solve_grouping"]


def rack_budgets(problem: DssyncProblem) -> list[int]:
    """Cross-rack ring hops every rack's uplink carries at the ring rate (see module docs)."""
    racks = workers_by_rack(problem)
    host = {w.name: w.host for w in problem.workers}
    net = problem.network
    peak: dict[str, float] = {}
    for load in problem.background:
        for link in net.directed_links:
            if (link.source, link.target) == (load.source, load.target):
                key = f"link:{link.index}"
                peak[key] = peak.get(key, 0.0) + load.peak_bytes_per_s()
    ring_rate = min(w.nic_bytes_per_s for w in problem.workers)
    budgets = []
    for r, members in enumerate(racks):
        others = [host[rack[0]] for k, rack in enumerate(racks) if k != r]
        pairs = [(host[name], others[0]) for name in members if others]
        pairs += [(host[members[0]], other) for other in others]
        egress: set[str] | None = None
        ingress: set[str] | None = None
        for a, b in pairs:
            out_path, in_path = net.route(a, b), net.route(b, a)
            out_used = set(out_path.resources) if out_path else set()
            in_used = set(in_path.resources) if in_path else set()
            egress = out_used if egress is None else egress & out_used
            ingress = in_used if ingress is None else ingress & in_used
        shared = (egress or set()) | (ingress or set())
        if not shared:
            budgets.append(len(members))
            continue
        residual = min(net.capacity_of(res) - peak.get(res, 0.0) for res in shared)
        # At least one hop, so a slow rack still mixes (its one ring runs at the uplink's rate).
        budgets.append(min(len(members), max(1, math.floor(residual / ring_rate + 1e-9))))
    return budgets


@dataclass(frozen=True)
class MixingGroups:
    """The MILP's answer: ``racks_of_group[g]`` lists the racks (indices) of mixing group ``g``."""

    racks_of_group: list[list[int]]
    mixing: float
    bound: float | None
    status: SolveStatus


def solve_grouping(problem: DssyncProblem, max_group: int, options: SolveOptions) -> MixingGroups:
    """Solve the grouping MILP (module docs) with groups of at most ``max_group`` racks."""
    budgets = rack_budgets(problem)
    racks = range(len(budgets))
    # Enough groups for every budgeted slot: max(budget) per "layer" of at most max_group racks.
    layers = math.ceil(len(budgets) / max(max_group, 1))
    slots = range(min(sum(budgets) // 2, max(budgets, default=0) * layers))
    if len(budgets) < 2 or max_group < 2 or not slots:
        return MixingGroups([], 0.0, 0.0, SolveStatus.OPTIMAL)
    model = pulp.LpProblem("dssync_grouping", pulp.LpMaximize)
    joins = {(r, g): pulp.LpVariable(f"t_{r}_{g}", cat="Binary") for r in racks for g in slots}
    used = {g: pulp.LpVariable(f"u_{g}", cat="Binary") for g in slots}
    model += pulp.lpSum(joins.values()) - 1e-3 * pulp.lpSum(used.values())
    for r in racks:
        model += pulp.lpSum(joins[r, g] for g in slots) <= budgets[r], f"uplink_{r}"
    size = {g: pulp.lpSum(joins[r, g] for r in racks) for g in slots}
    for g in slots:
        model += size[g] >= 2 * used[g], f"min_size_{g}"
        model += size[g] <= max_group * used[g], f"max_size_{g}"
        if g + 1 in used:
            model += used[g] >= used[g + 1], f"order_used_{g}"
            model += size[g] >= size[g + 1], f"order_size_{g}"
    outcome = solve_milp(model, options)
    if not outcome.has_solution:
        return MixingGroups([], 0.0, outcome.bound, outcome.status)
    groups = [
        [r for r in racks if (joins[r, g].value() or 0) > 0.5]
        for g in slots
        if (used[g].value() or 0) > 0.5
    ]
    return MixingGroups(groups, float(outcome.objective or 0.0), outcome.bound, outcome.status)
