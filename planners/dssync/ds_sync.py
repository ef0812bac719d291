"""Our DS-Sync planner (the ``auto`` default): bottleneck-free groups, Latin-square shuffle.

Reconstruction of DS-Sync's divide-and-shuffle (Wang et al., INFOCOM 2022,
Sec. III-IV; the paper's text is not available to us):

* *Divide*: :func:`~.grouping.solve_grouping` picks which racks send one worker
  to each cross-rack mixing group so that no rack uplink carries more ring hops
  than its residual capacity serves at the NIC rate; the other workers average
  inside their rack.
* *Shuffle*: a mixing partition is repeated ``S`` times with rotated members:
  in shuffle ``s`` the ``k``-th mixing slot of rack ``r`` takes the rack's worker
  ``(k + s (c_r + r)) mod W_r`` (``c_r`` = the rack's mixing slots), a
  Latin-square rotation, so the workers of every rack take turns and meet
  different partners in other racks. Between mixing partitions come ``H - 1``
  intra-rack partitions (one ring per rack).
* *By simulation*: the period ``H``, the largest mixing group (all racks or half
  of them) and the limit case of one group of every worker (exact averaging,
  ring or hierarchical, every ``H``-th iteration) are scored by the evaluator's
  simulators; the fastest to the target loss is returned.

The grouping MILP's bound is a bound on the grouping sub-problem (mixing
slots), not on the time to target: it goes in ``metrics``, never in ``bound``.
"""

from __future__ import annotations

import math

from ...models.dssync import DssyncProblem
from ...models.result import Role
from ...solvers.options import SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .grouping import MixingGroups, solve_grouping
from .schedules import Candidate, PartitionMembers, global_partition, pick_by_simulation, workers_by_rack

__all__ = ["ds_sync", "shuffle_schedule"]

#: Periods ``H`` (iterations per mixing partition) tried by simulation.
PERIODS = (1, 2, 4, 8)
#: Largest number of shuffles in one period.
MAX_SHUFFLES = 16


def shuffle_schedule(
    problem: DssyncProblem, mixing: MixingGroups, period: int
) -> list[PartitionMembers]:
    """The divide-and-shuffle schedule (module docs): ``S`` shuffles of ``H`` partitions each."""
    racks = workers_by_rack(problem)
    slots = [[g for g, group in enumerate(mixing.racks_of_group) if r in group] for r in range(len(racks))]
    busiest = max((len(s) for s in slots if s), default=0)
    if busiest == 0:
        return [[list(rack) for rack in racks]]
    smallest = min(len(racks[r]) / len(s) for r, s in enumerate(slots) if s)
    shuffles = min(MAX_SHUFFLES, max(1, math.ceil(smallest)))
    schedule: list[PartitionMembers] = []
    for s in range(shuffles):
        groups: PartitionMembers = [[] for _ in mixing.racks_of_group]
        leftovers: PartitionMembers = []
        for r, members in enumerate(racks):
            taken = set()
            for k, g in enumerate(slots[r]):
                pick = (k + s * (len(slots[r]) + r)) % len(members)
                while pick in taken:
                    pick = (pick + 1) % len(members)
                taken.add(pick)
                groups[g].append(members[pick])
            rest = [name for j, name in enumerate(members) if j not in taken]
            if rest:
                leftovers.append(rest)
        schedule += [[list(rack) for rack in racks]] * (period - 1)
        schedule.append(groups + leftovers)
    return schedule


def _candidates(problem: DssyncProblem, options: SolveOptions, metrics: dict) -> list[Candidate]:
    racks = workers_by_rack(problem)
    limits = sorted({len(racks), max(2, math.ceil(len(racks) / 2))}, reverse=True)
    candidates = []
    for limit in limits:
        mixing = solve_grouping(problem, limit, options)
        metrics[f"grouping_max{limit}"] = {
            "mixing_slots": mixing.mixing,
            "milp_bound": mixing.bound,
            "status": str(mixing.status),
            "groups": len(mixing.racks_of_group),
        }
        if not mixing.racks_of_group:
            continue
        for period in PERIODS:
            schedule = shuffle_schedule(problem, mixing, period)
            candidates.append(Candidate(f"shuffle max{limit} H={period}", schedule))
    everyone, own_rack = global_partition(problem), [list(rack) for rack in racks]
    for period in PERIODS:
        partitions = [own_rack] * (period - 1) + [everyone]
        candidates.append(Candidate(f"global ring H={period}", partitions))
    candidates.append(Candidate("global hierarchical H=1", [everyone], "hierarchical"))
    return candidates


@register_solver("ds_sync", kind="dssync", role=Role.HEURISTIC, needs=("highspy",), auto_rank=0)
def ds_sync(problem: DssyncProblem, options: SolveOptions) -> SolverOutput:
    """DS-Sync: bottleneck-free groups (MILP), Latin-square shuffle, H and sizes by simulation."""
    metrics: dict = {}
    output = pick_by_simulation(problem, _candidates(problem, options, metrics), options)
    output.metrics.update(metrics)
    return output
