"""The ``topo`` planner's DP: partition, replication and placement along one GPU ordering.

For a fixed ordering of the GPUs, a plan gives stage ``i`` the blocks
``[a_i, a_{i+1})`` of the linearised model and the next ``r_i`` GPUs of the
ordering. The DP scores a plan with a synchronous-pipeline estimate
(reconstruction, in the spirit of Alpa's Eq. 2 extended with communication and
synchronisation)::

    sum_i (compute_i + 2 * transfer_i + allreduce_i) + (K - 1) * max_i max(compute_i, transfer_i)

* ``compute_i`` = stage work times the largest ``share / speed`` of its
  replicas (whole-sample shares, :func:`~.costs.replica_shares`; the slowest
  replica sets the pace; the small launch overhead is left out);
* ``transfer_i`` = seconds to send the activations crossing the stage's last
  boundary to the first GPU of the next run, each replica its share, all at
  once on the shared network (:meth:`~.costs.ClusterView.step_lines`: the
  slowest route alone or the busiest NIC, switch port or link, whichever is
  larger; replicas of one server share its NIC), once forward and once
  backward in the fill/drain, and the boundary's occupancy per micro-batch in
  the steady state;
* ``allreduce_i`` = the cheaper of a ring and a two-level all-reduce of the
  stage's parameters over its replicas on the shared network
  (:meth:`~.costs.ClusterView.allreduce_s`);
* memory: every replica must hold ``(1 + optimizer_state_factor)`` times the
  stage's parameters plus its share of the activations of as many micro-batches
  as 1F1B can keep in flight, bounded conservatively by
  ``min(K, 1 + stages that can still follow)`` (or of one micro-batch, the
  fallback when nothing else fits: the list schedule caps in-flight counts);
* a later stage's all-reduce overlaps the backward drain of the stages in
  front of it: ``overlap`` stage backward times (estimated as the model's
  backward share of ``t_max``) are hidden.

As in Alpa the max term is handled by enumerating the bottleneck ``t_max``:
for each ``t_max`` the DP minimises the sum over plans whose every stage and
transfer fits within ``t_max``; all ``t_max`` of a grid are solved at once with
numpy. The grid is geometric from ``work / sum(speed)`` up to the largest
stage time, then refined on the distinct stage times around the best value.
Unused GPUs are allowed (they sit at the head of the ordering).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...models.pipeline import PipelineProblem
from ..common.linearize import Linearization, candidate_cuts
from .costs import ClusterView, lines_s

__all__ = ["BlockTables", "DPPlan", "block_tables", "fold_best_split", "plan_along"]


@dataclass(frozen=True)
class BlockTables:
    """Sums over block ranges ``[a, b)`` of a coarsened linearisation.

    ``cuts[b]`` is the layer position where block ``b`` starts (``cuts[-1] = L``);
    matrices are ``(B + 1) x (B + 1)`` indexed by block boundaries ``a, b``;
    ``cut_bytes[b]`` the activation bytes crossing boundary ``b`` per micro-batch.
    """

    cuts: tuple[int, ...]
    work_s: np.ndarray
    parameter_bytes: np.ndarray
    activation_bytes: np.ndarray
    cut_bytes: np.ndarray

    @property
    def num_blocks(self) -> int:
        return len(self.cuts) - 1


def block_tables(lin: Linearization, max_blocks: int) -> BlockTables:
    """Coarsen ``lin`` into at most ``max_blocks`` blocks (:func:`~.linearize.candidate_cuts`) and sum them."""
    cuts = candidate_cuts(lin, max_blocks)
    index = np.array(cuts)

    def matrix(prefix: np.ndarray) -> np.ndarray:
        values = prefix[index]
        return values[None, :] - values[:, None]

    return BlockTables(
        cuts=tuple(cuts),
        work_s=matrix(lin.forward_s) + matrix(lin.backward_s),
        parameter_bytes=matrix(lin.parameter_bytes),
        activation_bytes=matrix(lin.activation_bytes),
        cut_bytes=lin.cut_bytes[index].copy(),
    )


@dataclass(frozen=True)
class DPPlan:
    """A plan found by the DP: layer-position bounds, GPU groups, and its estimate in seconds."""

    bounds: tuple[int, ...]
    groups: tuple[tuple[int, ...], ...]
    estimate_s: float


@dataclass
class _Option:
    """Costs of every block range on one run of the ordering (inf where infeasible)."""

    cost: np.ndarray  # seconds added to the sum (all-reduce excluded)
    neck: np.ndarray  # seconds that must fit within t_max
    allreduce: np.ndarray | None  # ring all-reduce seconds (None: one replica)


def _options(
    problem: PipelineProblem,
    view: ClusterView,
    tables: BlockTables,
    ordering: tuple[int, ...],
    minimal_memory: bool = False,
) -> dict[tuple[int, int], _Option]:
    """Cost and bottleneck matrices of every (start position, replica count) of ``ordering``.

    ``minimal_memory`` requires room for one stashed micro-batch only (what a
    memory-capped list schedule needs) instead of 1F1B's conservative count.
    """
    n, k = len(ordering), problem.microbatches
    num_blocks = tables.num_blocks
    factor = 1.0 + problem.optimizer_state_factor
    upper = np.triu(np.ones((num_blocks + 1, num_blocks + 1), dtype=bool), k=1)
    static = factor * tables.parameter_bytes
    blocks_after = num_blocks - np.arange(num_blocks + 1)
    is_last = np.arange(num_blocks + 1) == num_blocks
    max_replicas = n if problem.allow_replication else 1
    out: dict[tuple[int, int], _Option] = {}
    for j in range(n):
        for r in range(1, min(max_replicas, n - j) + 1):
            group = ordering[j : j + r]
            speeds = view.speed[list(group)]
            shares = np.array(view.shares(group))
            if shares.min() <= 0:  # a replica without a whole sample: no plan
                continue
            # The slowest replica: its share of the samples over its speed (launch overhead left out).
            compute = tables.work_s * float((shares / speeds).max())
            # Transfer to the next run's first GPU: each replica sends its share, all at once, on the
            # shared network (replicas of one server share its NIC: the lines charge every resource).
            if j + r < n:
                nxt = ordering[j + r]
                lines = view.step_lines(
                    [(g, nxt, float(share)) for g, share in zip(group, shares, strict=True)]
                )
                transfer = np.where(is_last, 0.0, lines_s(lines, tables.cut_bytes))
                allowed_end = np.ones(num_blocks + 1, dtype=bool)
            else:
                transfer = np.zeros(num_blocks + 1)
                allowed_end = is_last
            # Gradient all-reduce over the group: the cheaper of ring and two-level on the shared network.
            allreduce = view.allreduce_s(group, tables.parameter_bytes) if r > 1 else None
            # Memory: in flight at most min(K, 1 + stages that can still follow).
            in_flight = np.minimum(k, 1 + np.minimum(n - j - r, blocks_after))
            if minimal_memory:
                in_flight = np.ones_like(in_flight)
            fits = upper & allowed_end[None, :]
            stash = tables.activation_bytes * in_flight[None, :]
            for share, memory in {
                (share, view.memory_bytes[g]) for g, share in zip(group, shares, strict=True)
            }:
                fits &= static + share * stash <= memory
            cost = np.where(fits, compute + 2 * transfer[None, :], np.inf)
            neck = np.where(fits, np.maximum(compute, transfer[None, :]), np.inf)
            if fits.any():
                out[(j, r)] = _Option(cost=cost, neck=neck, allreduce=allreduce)
    return out


def fold_best_split(
    total: np.ndarray, replicas: int, best: np.ndarray, best_b: np.ndarray, best_r: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fold one replica count's candidates into the running best of a stage DP.

    ``total[t, a, b]`` is the value of a stage of blocks ``[a, b)`` plus the
    best rest after ``b`` for ``t_max`` number ``t``; returns the smaller of
    ``best[t, a]`` and ``min_b total[t, a, b]``, with the end block and replica
    count of the minimiser (the earlier choice on ties).
    """
    arg = total.argmin(axis=2)
    value = np.take_along_axis(total, arg[:, :, None], axis=2)[:, :, 0]
    better = value < best
    return (
        np.minimum(best, value),
        np.where(better, arg, best_b),
        np.where(better, replicas, best_r),
    )


def _solve(
    options: dict[tuple[int, int], _Option],
    n: int,
    num_blocks: int,
    tmax: np.ndarray,
    keep: bool,
    hidden: float,
) -> tuple[np.ndarray, list[np.ndarray], dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Least sums for a batch of ``t_max`` values: ``table[d][t, a]`` = blocks ``a..`` on the last ``d`` GPUs.

    A stage after the first hides ``hidden * t_max`` seconds of its all-reduce
    behind the backward drain of the stages before it.
    """
    t_count = len(tmax)
    later = (np.arange(num_blocks + 1) > 0)[None, :, None]
    slack = (hidden * tmax)[:, None, None] * later
    table = [np.full((t_count, num_blocks + 1), np.inf) for _ in range(n + 1)]
    table[0][:, num_blocks] = 0.0
    choice: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for d in range(1, n + 1):
        j = n - d
        best = np.full((t_count, num_blocks + 1), np.inf)
        best_b = np.zeros((t_count, num_blocks + 1), dtype=np.int64)
        best_r = np.zeros((t_count, num_blocks + 1), dtype=np.int64)
        for r in range(1, d + 1):
            option = options.get((j, r))
            rest = table[d - r]
            if option is None or not np.isfinite(rest).any():
                continue
            stage = option.cost[None, :, :]
            if option.allreduce is not None:
                stage = stage + np.maximum(option.allreduce[None, :, :] - slack, 0.0)
            total = np.where(option.neck[None, :, :] <= tmax[:, None, None], stage, np.inf)
            total += rest[:, None, :]
            best, best_b, best_r = fold_best_split(total, r, best, best_b, best_r)
        table[d] = best
        if keep:
            choice[d] = (best_b, best_r)
    starts = np.stack([table[d][:, 0] for d in range(n + 1)])  # (n + 1, T): by GPUs used
    return starts, table, choice


def plan_along(
    problem: PipelineProblem,
    view: ClusterView,
    tables: BlockTables,
    ordering: tuple[int, ...],
    *,
    coarse: int = 20,
    fine: int = 20,
    keep_best: int = 6,
    backward_s: float = 0.0,
    overlap: float = 1.0,
    minimal_memory: bool = False,
) -> list[DPPlan]:
    """The best plans along ``ordering`` by the DP estimate (see the module docstring).

    Parameters
    ----------
    problem, view, tables
        The problem, its cluster view and its block tables.
    ordering
        Every GPU once; stages take contiguous runs of it.
    coarse, fine
        Sizes of the geometric ``t_max`` grid and of its refinement.
    keep_best
        Most plans returned (from distinct ``t_max`` values, best estimate first).
    backward_s
        Backward seconds of the whole model on a speed-1.0 GPU (with the total
        work it gives the backward share of a stage's time).
    overlap
        Stages hidden in front of a later stage's all-reduce, in units of one
        stage's backward time (``0``: every all-reduce fully exposed).
    minimal_memory
        Require memory for one in-flight micro-batch per stage only (a
        fallback when nothing fits the conservative 1F1B count).

    Returns
    -------
    list of DPPlan
        Empty when nothing fits.
    """
    n, k = len(ordering), problem.microbatches
    num_blocks = tables.num_blocks
    options = _options(problem, view, tables, ordering, minimal_memory)
    if not options:
        return []
    total_work = tables.work_s[0, num_blocks]
    backward_share = float(backward_s / total_work) if total_work > 0 else 0.0
    hidden = overlap * backward_share
    necks = np.unique(np.concatenate([o.neck[np.isfinite(o.neck)] for o in options.values()]))
    lower = max(float(tables.work_s[0, num_blocks] / view.speed.sum()), float(necks[0]))
    necks = necks[necks >= lower * (1 - 1e-12)]
    if len(necks) == 0:
        return []
    upper = float(necks[-1])

    def evaluate(tmax: np.ndarray) -> np.ndarray:
        starts, _, _ = _solve(options, n, num_blocks, tmax, keep=False, hidden=hidden)
        return starts.min(axis=0) + (k - 1) * tmax

    grid = np.unique(np.geomspace(lower, upper, coarse)) if upper > lower else np.array([lower])
    values = evaluate(grid)
    best = int(np.argmin(values))
    if np.isfinite(values[best]):
        lo = grid[best - 1] if best > 0 else lower
        hi = grid[best + 1] if best + 1 < len(grid) else upper
        window = necks[(necks >= lo) & (necks <= hi)]
        if len(window) > fine:
            window = window[np.unique(np.linspace(0, len(window) - 1, fine).round().astype(int))]
        grid = np.concatenate([grid, window])
        values = np.concatenate([values, evaluate(window)])
    ranked = [i for i in np.argsort(values, kind="stable") if np.isfinite(values[i])]
    chosen: list[float] = []
    for i in ranked:
        if all(abs(grid[i] - c) > 1e-12 * max(1.0, c) for c in chosen):
            chosen.append(float(grid[i]))
        if len(chosen) >= keep_best:
            break
    if not chosen:
        return []
    tmax = np.array(chosen)
    starts, _, choice = _solve(options, n, num_blocks, tmax, keep=True, hidden=hidden)
    plans: list[DPPlan] = []
    for t in range(len(tmax)):
        d = int(np.argmin(starts[:, t]))
        if not np.isfinite(starts[d, t]):
            continue
        bounds, groups, a = [0], [], 0
        while a < num_blocks:
            best_b, best_r = choice[d]
            b, r = int(best_b[t, a]), int(best_r[t, a])
            j = n - d
            groups.append(tuple(ordering[j : j + r]))
            bounds.append(tables.cuts[b])
            a, d = b, d - r
        plan = DPPlan(tuple(bounds), tuple(groups), float(starts[:, t].min() + (k - 1) * tmax[t]))
        if plan not in plans:
            plans.append(plan)
    return plans
