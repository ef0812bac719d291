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
  different partners in other racks; racks with equal budgets also trade their
  places in the mixing groups every shuffle (circle method of round-robin
  tournaments; a plain shift is tried too), so groups smaller than all racks
  still join every pair of racks within the period. A schedule whose period
  does not connect every worker (rho_P = 1) is never proposed. Between mixing partitions come ``H - 1``
  rack-local partitions (one ring per rack, or rotated pairs).
* *By simulation*: the period ``H`` (8, 4, 2, 1; above
  :data:`FULL_SCAN_WORKERS` workers a family's scan stops at the first ``H``
  that is no faster than the previous one), the largest mixing
  group (all racks or half of them), the rack-local grouping (whole rack,
  rotated pairs or round-robin pairs) and the limit case of one group of every worker (exact averaging,
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
from .schedules import (
    Candidate,
    PartitionMembers,
    global_partition,
    pick_by_simulation,
    workers_by_rack,
)

__all__ = ["ds_sync", "mixes_everyone", "shuffle_schedule"]

#: Periods ``H`` (iterations per mixing partition) tried by simulation.
PERIODS = (1, 2, 4, 8)
#: Rack-local groupings tried by simulation: (group size or None for the whole rack,
#: whether pairs follow a round-robin tournament instead of a rotation).
LOCAL_GROUPINGS: tuple[tuple[int | None, bool], ...] = ((2, True), (2, False), (None, False))
#: Up to this many workers every period is scored; above it a family's scan over
#: the period stops at the first H no faster than the previous one (planning time).
FULL_SCAN_WORKERS = 64
#: How racks trade mixing slots between shuffles, tried by simulation (the first
#: only above FULL_SCAN_WORKERS workers).
RACK_ROTATIONS = ("circle", "shift")
#: Largest number of shuffles in one period.
MAX_SHUFFLES = 16


def _rotated(members: list[str], shift: int) -> list[str]:
    shift %= len(members)
    return members[shift:] + members[:shift]


def _round_robin_pairs(members: list[str], round_: int) -> PartitionMembers:
    """Round ``round_`` of a round-robin tournament (circle method): every pair meets once
    in ``len(members) - 1`` rounds (an odd member out sits alone)."""
    players = list(members) + ([""] if len(members) % 2 else [])
    order = [players[0], *_rotated(players[1:], round_)]
    half = len(order) // 2
    pairs = [[order[i], order[-1 - i]] for i in range(half)]
    return [[m for m in pair if m] for pair in pairs if any(pair)]


def _local_groups(
    members: list[str], round_: int, size: int | None, round_robin: bool
) -> PartitionMembers:
    """Rack-local groups of one shuffle: round-robin pairs, or rotated chunks of ``size``."""
    if round_robin and size == 2 and len(members) > 2:
        return _round_robin_pairs(members, round_)
    return _chunks(_rotated(members, round_), size)


def _chunks(members: list[str], size: int | None) -> PartitionMembers:
    if size is None or size >= len(members):
        return [list(members)]
    return [members[k : k + size] for k in range(0, len(members), size)]


def shuffle_schedule(
    problem: DssyncProblem,
    mixing: MixingGroups,
    period: int,
    intra_size: int | None = None,
    round_robin: bool = False,
    rack_rotation: str = "circle",
) -> list[PartitionMembers]:
    """The divide-and-shuffle schedule (module docs): ``S`` shuffles of ``H`` partitions each.

    ``intra_size`` splits the rack-local groups into rotated chunks of that many
    workers (None: one ring per rack); with ``round_robin`` pairs follow a
    round-robin tournament, so every two workers of a rack meet within ``W - 1``
    shuffles. ``S`` is the largest rack size (capped at
    :data:`MAX_SHUFFLES`), so the rotation reaches every offset.
    ``rack_rotation`` is how racks with equal budgets trade mixing slots between
    shuffles: ``"circle"`` (round-robin tournament) or ``"shift"`` (every rack
    takes the next rack's slots; may repeat pairings, see :func:`mixes_everyone`).
    """
    racks = workers_by_rack(problem)
    slots = [
        [g for g, group in enumerate(mixing.racks_of_group) if r in group]
        for r in range(len(racks))
    ]
    shuffles = min(MAX_SHUFFLES, max(len(rack) for rack in racks))
    if intra_size is None and not any(slots):
        shuffles = 1
    blocks: dict[int, list[int]] = {}
    for r, rack_slots in enumerate(slots):
        blocks.setdefault(len(rack_slots), []).append(r)
    base_slots = slots
    schedule: list[PartitionMembers] = []
    for s in range(shuffles):
        # Racks with equal budgets trade their slot patterns (the circle method of
        # round-robin tournaments: the first rack stays, the others rotate by s), so
        # mixing groups smaller than all racks meet different racks every shuffle.
        slots = list(base_slots)
        for block in blocks.values():
            for i, r in enumerate(block):
                if rack_rotation == "shift":
                    slots[r] = base_slots[block[(i + s) % len(block)]]
                elif i > 0:
                    slots[r] = base_slots[block[1 + (i - 1 + s) % (len(block) - 1)]]
        local: PartitionMembers = []
        for r, members in enumerate(racks):
            local += _local_groups(members, s * (r + 1), intra_size, round_robin)
        schedule += [local] * (period - 1)
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
                leftovers += _local_groups(rest, s if round_robin else 0, intra_size, round_robin)
        schedule.append(groups + leftovers)
    return schedule


def mixes_everyone(problem: DssyncProblem, schedule: list[PartitionMembers]) -> bool:
    """Whether the period's groups connect every worker (then rho_P < 1: a product of
    orthogonal projections keeps a vector's norm only if every projection fixes it)."""
    parent = {w.name: w.name for w in problem.workers}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for partition in schedule:
        for group in partition:
            for member in group[1:]:
                parent[root(member)] = root(group[0])
    return len({root(name) for name in parent}) == 1


def _candidates(problem: DssyncProblem, options: SolveOptions, metrics: dict) -> list[Candidate]:
    """Every schedule to score, most promising first (pairs locally, long periods)."""
    racks = workers_by_rack(problem)
    limits = sorted({len(racks), max(2, math.ceil(len(racks) / 2))}, reverse=True)
    shuffles = []
    for limit in limits:
        mixing = solve_grouping(problem, limit, options)
        metrics[f"grouping_max{limit}"] = {
            "mixing_slots": mixing.mixing,
            "milp_bound": mixing.bound,
            "status": str(mixing.status),
            "groups": len(mixing.racks_of_group),
        }
        if mixing.racks_of_group:
            shuffles.append((limit, mixing))
    candidates = []
    large = len(problem.workers) > FULL_SCAN_WORKERS
    for rotation in RACK_ROTATIONS[:1] if large else RACK_ROTATIONS:
        for intra, round_robin in LOCAL_GROUPINGS:
            for limit, mixing in shuffles:
                local = "rack" if intra is None else f"{'rr' if round_robin else ''}{intra}"
                family = f"shuffle max{limit} intra{local} {rotation}"
                scan = family if large else None
                for period in sorted(PERIODS, reverse=True):
                    schedule = shuffle_schedule(
                        problem, mixing, period, intra, round_robin, rotation
                    )
                    if mixes_everyone(problem, schedule):
                        candidates.append(Candidate(f"{family} H={period}", schedule, family=scan))
    everyone, own_rack = global_partition(problem), [list(rack) for rack in racks]
    for period in sorted(PERIODS, reverse=True):
        partitions = [own_rack] * (period - 1) + [everyone]
        scan = "global ring" if large else None
        candidates.append(Candidate(f"global ring H={period}", partitions, family=scan))
    candidates.append(Candidate("global hierarchical H=1", [everyone], "hierarchical"))
    return candidates


@register_solver("ds_sync", kind="dssync", role=Role.HEURISTIC, needs=("highspy",), auto_rank=0)
def ds_sync(problem: DssyncProblem, options: SolveOptions) -> SolverOutput:
    """DS-Sync: bottleneck-free groups (MILP), Latin-square shuffle, H and sizes by simulation."""
    metrics: dict = {}
    output = pick_by_simulation(problem, _candidates(problem, options, metrics), options)
    output.metrics.update(metrics)
    return output
