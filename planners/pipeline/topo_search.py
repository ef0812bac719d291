"""The ``topo`` planner's refinement: simulation-scored local search over plans.

A plan is a tuple of layer-position bounds (the stages of the linearised model)
and a tuple of GPU groups (the replicas of every stage, in ring order). Plans
are scored with the list scheduler's :class:`~.list_schedule.EventModel`, which
replays an iteration under the semantics of ``models/pipeline.py`` (it agrees
with the independent simulator on fixed orders); the score is the best
iteration time over the schedules the problem allows whose memory fits, so the
search optimises what the simulator will measure.

Neighbourhood of a plan (first improvement, moves in a seeded random order
within each family, families in the order below):

1. shift one stage boundary by 1, 2, 4 or 8 candidate positions, or to where
   the two stages' compute times (work / summed speed) balance;
2. move one replica to the neighbouring stage;
3. split a stage in two (its replicas into two runs of several sizes, or with
   the unused GPU best connected to it), each part's work in proportion to its
   speed, or merge two neighbouring stages;
4. give an unused GPU to a stage, or take a replica out of service;
5. swap two GPUs of different stages, or a used GPU with an unused one.

When a local optimum is reached with budget left, the planner kicks the best
plan with a few random moves (:func:`perturb`) and searches again (iterated
local search); all randomness comes from one seeded generator.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ...models.pipeline import PipelineProblem, Schedule
from ..common.linearize import Linearization
from .list_schedule import EventModel, memory_caps, policies
from .schedules import stage_orders

__all__ = ["Plan", "PlanScorer", "local_search", "perturb"]

#: (layer-position bounds, GPU groups)
Plan = tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]


@dataclass
class PlanScorer:
    """Scores plans by their best simulated iteration time, with a cache.

    Attributes
    ----------
    problem, lin
        The problem and its linearisation (bounds are positions in ``lin.order``).
    thorough
        Replay every allowed schedule and every list rule of
        :func:`~.list_schedule.policies`. Otherwise, when the problem allows
        the list schedule, only its two rules with the memory cap (forward
        first, backward first), which nearly always match the best of all;
        the final choice replays every schedule anyway.
    evaluations
        Plans scored so far (cache misses).
    work
        Simulated tasks so far (a replay of ``W`` workers costs ``2 K W``);
        search budgets are counted in it, so they do not depend on the clock.
    """

    problem: PipelineProblem
    lin: Linearization
    thorough: bool = False
    evaluations: int = 0
    work: int = 0
    _cache: dict[Plan, tuple[float, Schedule | None]] = field(default_factory=dict)

    def best(self, count: int) -> list[Plan]:
        """The ``count`` best plans scored so far (finite scores only, ties by plan)."""
        finite = [(value, plan) for plan, (value, _) in self._cache.items() if math.isfinite(value)]
        return [plan for _, plan in sorted(finite)[:count]]

    def stage_of_layer(self, bounds: tuple[int, ...]) -> list[int]:
        """Stage index of every layer."""
        return self.lin.stage_of_layer(list(bounds))

    def score(self, plan: Plan) -> float:
        """Best iteration seconds of ``plan`` over the allowed schedules that fit memory (``inf``: none)."""
        return self.scored(plan)[0]

    def scored(self, plan: Plan) -> tuple[float, Schedule | None]:
        """``(seconds, schedule)`` of the best allowed schedule for ``plan``."""
        hit = self._cache.get(plan)
        if hit is not None:
            self.work += 1  # so that a search that only revisits plans still ends
            return hit
        self.evaluations += 1
        bounds, groups = plan
        problem = self.problem
        gpus_of_stage = [list(g) for g in groups]
        num_stages, k = len(groups), problem.microbatches
        model = EventModel(problem, self.stage_of_layer(bounds), gpus_of_stage)
        caps = memory_caps(problem, model.facts, gpus_of_stage)
        replay_work = 2 * k * model.num_workers
        # Building the model costs about one replay, and no less than a pass over the layers.
        self.work += max(replay_work, len(problem.layers) // 4 + 16)
        best: tuple[float, Schedule | None] = (math.inf, None)
        if min(caps) >= 1:
            allowed = problem.schedules
            quick = "list" in allowed and not self.thorough
            if (
                "1f1b" in allowed
                and not quick
                and all(c >= min(num_stages - s, k) for s, c in enumerate(caps))
            ):
                seconds, _ = model.run(orders=stage_orders("1f1b", num_stages, k))
                self.work += replay_work
                best = min(best, (seconds, "1f1b"), key=lambda x: x[0])
            if "list" in allowed:
                rules = policies(num_stages, caps)
                for rule in rules if self.thorough else [r for r in rules if r.cap == tuple(caps)]:
                    seconds, _ = model.run(policy=rule)
                    self.work += replay_work
                    best = min(best, (seconds, "list"), key=lambda x: x[0])
            if "gpipe" in allowed and not quick and min(caps) >= k:
                seconds, _ = model.run(orders=stage_orders("gpipe", num_stages, k))
                self.work += replay_work
                best = min(best, (seconds, "gpipe"), key=lambda x: x[0])
        self._cache[plan] = best
        return best


@dataclass(frozen=True)
class _Context:
    """What the neighbourhood of a plan depends on besides the plan."""

    grid: list[int]
    index_of: dict[int, int]
    unused: tuple[int, ...]
    width: np.ndarray
    speed: np.ndarray
    work: np.ndarray  # prefix sums of forward + backward seconds over positions
    allow_replication: bool

    def nearest(self, target: float, lo: int, hi: int) -> int | None:
        """The grid position strictly inside ``(lo, hi)`` whose prefix work is nearest ``target``."""
        inside = self.grid[self.index_of[lo] + 1 : self.index_of[hi]]
        if not inside:
            return None
        return min(inside, key=lambda p: (abs(self.work[p] - target), p))

    def speed_of(self, group: tuple[int, ...]) -> float:
        return float(sum(self.speed[g] for g in group))


def _neighbours(plan: Plan, ctx: _Context, rng: random.Random) -> Iterator[Plan]:
    """Every neighbour of ``plan`` (see the module docstring), family by family."""
    bounds, groups = plan
    num_stages = len(groups)
    unused, work = ctx.unused, ctx.work

    def shuffled(moves: list[Plan]) -> list[Plan]:
        rng.shuffle(moves)
        return moves

    # 1. Boundary shifts, and the boundary that balances the two stages' compute.
    moves: list[Plan] = []
    for i in range(1, num_stages):
        here = ctx.index_of[bounds[i]]
        targets = []
        for step in (1, -1, 2, -2, 4, -4, 8, -8):
            if 0 < here + step < len(ctx.grid):
                targets.append(ctx.grid[here + step])
        left, right = ctx.speed_of(groups[i - 1]), ctx.speed_of(groups[i])
        lo, hi = bounds[i - 1], bounds[i + 1]
        balanced = ctx.nearest(work[lo] + (work[hi] - work[lo]) * left / (left + right), lo, hi)
        if balanced is not None:
            targets.append(balanced)
        for target in dict.fromkeys(targets):
            if lo < target < hi and target != bounds[i]:
                moves.append((bounds[:i] + (target,) + bounds[i + 1 :], groups))
    yield from shuffled(moves)
    if not ctx.allow_replication:
        # Only swaps and unused GPUs can change the placement.
        moves = []
        for i in range(num_stages):
            for u in unused:
                moves.append((bounds, groups[:i] + ((u,),) + groups[i + 1 :]))
            for j in range(i + 1, num_stages):
                swapped = list(groups)
                swapped[i], swapped[j] = groups[j], groups[i]
                moves.append((bounds, tuple(swapped)))
        yield from shuffled(moves)
        return
    # 2. A replica moves to the neighbouring stage.
    moves = []
    for i in range(num_stages):
        if len(groups[i]) < 2:
            continue
        for g in groups[i]:
            rest = tuple(x for x in groups[i] if x != g)
            if i + 1 < num_stages:
                moves.append((bounds, groups[:i] + (rest, (g,) + groups[i + 1]) + groups[i + 2 :]))
            if i > 0:
                moves.append(
                    (bounds, groups[: i - 1] + (groups[i - 1] + (g,), rest) + groups[i + 1 :])
                )
    yield from shuffled(moves)
    # 3. Split a stage (its replicas in two runs, or with the best-connected unused GPU), each part's
    #    work in proportion to its speed; merge two neighbouring stages.
    moves = []
    for i in range(num_stages):
        lo, hi, group = bounds[i], bounds[i + 1], groups[i]
        parts: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        if len(group) >= 2:
            for first in sorted({1, len(group) // 2, (len(group) + 1) // 2, len(group) - 1}):
                parts.append((group[:first], group[first:]))
        elif unused:
            helper = max(unused, key=lambda u: (ctx.width[group[0], u], ctx.speed[u], -u))
            parts.append((group, (helper,)))
        for head, tail in parts:
            share = ctx.speed_of(head) / (ctx.speed_of(head) + ctx.speed_of(tail))
            cut = ctx.nearest(work[lo] + (work[hi] - work[lo]) * share, lo, hi)
            if cut is not None:
                moves.append(
                    (
                        bounds[: i + 1] + (cut,) + bounds[i + 1 :],
                        groups[:i] + (head, tail) + groups[i + 1 :],
                    )
                )
        if i + 1 < num_stages:
            moves.append(
                (
                    bounds[: i + 1] + bounds[i + 2 :],
                    groups[:i] + (groups[i] + groups[i + 1],) + groups[i + 2 :],
                )
            )
    yield from shuffled(moves)
    # 4. Unused GPUs join a stage; replicas leave service.
    moves = []
    for i in range(num_stages):
        for u in unused:
            moves.append((bounds, groups[:i] + (groups[i] + (u,),) + groups[i + 1 :]))
        if len(groups[i]) >= 2:
            for g in groups[i]:
                moves.append(
                    (
                        bounds,
                        groups[:i] + (tuple(x for x in groups[i] if x != g),) + groups[i + 1 :],
                    )
                )
    yield from shuffled(moves)
    # 5. Swaps.
    moves = []
    for i in range(num_stages):
        for j in range(i + 1, num_stages):
            for a, g in enumerate(groups[i]):
                for b, h in enumerate(groups[j]):
                    new_i = groups[i][:a] + (h,) + groups[i][a + 1 :]
                    new_j = groups[j][:b] + (g,) + groups[j][b + 1 :]
                    moves.append(
                        (
                            bounds,
                            groups[:i] + (new_i,) + groups[i + 1 : j] + (new_j,) + groups[j + 1 :],
                        )
                    )
        for a, _ in enumerate(groups[i]):
            for u in unused:
                new_i = groups[i][:a] + (u,) + groups[i][a + 1 :]
                moves.append((bounds, groups[:i] + (new_i,) + groups[i + 1 :]))
    yield from shuffled(moves)


def local_search(
    start: Plan,
    scorer: PlanScorer,
    positions: list[int],
    width: np.ndarray,
    *,
    rng: random.Random,
    work_limit: int,
    deadline: float = math.inf,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Plan, float]:
    """First-improvement local search from ``start``.

    Parameters
    ----------
    start
        The initial plan.
    scorer
        Scores plans (its cache is shared across searches).
    positions
        Sorted layer positions a stage boundary may take (including 0 and L).
    width
        Widest-path bandwidth between GPUs (bytes/s), to pick helper GPUs.
    rng
        Orders the moves within each family.
    work_limit
        Stop once ``scorer.work`` reaches this value.
    deadline
        Stop at this ``clock()`` time.

    Returns
    -------
    tuple
        The best plan found and its score in seconds.
    """
    current, current_score = start, scorer.score(start)
    improved = True
    while improved:
        improved = False
        for neighbour in _moves(current, scorer, positions, width, rng):
            if scorer.work >= work_limit or clock() >= deadline:
                return current, current_score
            value = scorer.score(neighbour)
            if value < current_score * (1 - 1e-9):
                current, current_score = neighbour, value
                improved = True
                break
    return current, current_score


def _moves(
    plan: Plan, scorer: PlanScorer, positions: list[int], width: np.ndarray, rng: random.Random
) -> Iterator[Plan]:
    problem = scorer.problem
    bounds, groups = plan
    grid = sorted(set(positions) | set(bounds))
    used = {g for group in groups for g in group}
    ctx = _Context(
        grid=grid,
        index_of={p: i for i, p in enumerate(grid)},
        unused=tuple(g for g in range(problem.num_gpus) if g not in used),
        width=width,
        speed=np.array([gpu.speed for gpu in problem.cluster.gpus]),
        work=scorer.lin.forward_s + scorer.lin.backward_s,
        allow_replication=problem.allow_replication,
    )
    return _neighbours(plan, ctx, rng)


def perturb(
    plan: Plan,
    scorer: PlanScorer,
    positions: list[int],
    width: np.ndarray,
    rng: random.Random,
    steps: int = 2,
) -> Plan:
    """``steps`` random moves from ``plan`` (an iterated-local-search kick; nothing is scored)."""
    for _ in range(steps):
        moves = list(_moves(plan, scorer, positions, width, rng))
        if not moves:
            break
        plan = moves[rng.randrange(len(moves))]
    return plan
