"""PipeDream's hierarchical optimizer: one DP level per level of the network.

Clean-room reconstruction of the hierarchical mode of PipeDream's optimizer
(Narayanan et al., SOSP 2019, Sec. 3.1, "the optimizer ... for hierarchical
topologies"; ``optimizer/optimizer_graph_hierarchical.py`` of msr-fiddle/pipedream,
read for the algorithm, no code copied), as its authors run it on multi-server
clusters: ``-n GPUS_PER_SERVER SERVERS -b INTRA INTER``.

Level 1 solves, for every range of states ``(i, j]`` (every start, not only the
first), the best pipeline of that range on the ``n_1`` GPUs of one server with
the intra-server bandwidth ``b_1``::

    A_1(i, j, m) = min( (T_ij + 4 (m-1) P_ij / (b_1 m)) / m ,
                        min_{k, m'} max(A_1(i, k, m - m'), (T_kj + 4 (m'-1) P_kj / (b_1 m')) / m') )

Level 2 treats a server as one worker whose time for a range is the level-1
optimum on all its GPUs, ``A_1(i, j, n_1)``, and solves the ranges from the
start on ``n_2`` servers with the inter-server bandwidth ``b_2``. Its
one-stage term divides the weight synchronisation by ``n_1`` (every GPU of the
server syncs a share) and its split term does not, as the reference does; we
keep that asymmetry so the figures match PipeDream's own. A level-2 stage
replicated on ``R`` servers runs its level-1 plan on each of them.

Ranges and predecessors follow the reference: row ``i`` of a table holds ranges
that start at state position ``i`` (row 0: from the beginning); a split after
state ``k`` is allowed in row ``i > 0`` only when ``k >= i`` and ``k`` is not a
predecessor of state ``i - 1``; ranges are sums of down-set prefixes. Ties keep
the first candidate in (predecessor position, replica count) order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LevelTables", "Stage", "hierarchical_partition", "replica_cap", "solve_level"]

#: ``(start state, end state exclusive, replicas)`` of one stage.
Stage = tuple[int, int, int]


@dataclass(frozen=True)
class LevelTables:
    """One level's DP: ``time[i, j, m]`` with ``m + 1`` workers and the choices to trace plans back.

    ``split[i, j, m]`` is the state ``k`` after which the last stage starts (-1:
    one stage), ``rest[i, j, m]`` the worker index of the part before it, and
    ``replicas[i, j, m]`` the last stage's replica count.
    """

    time: np.ndarray
    split: np.ndarray
    rest: np.ndarray
    replicas: np.ndarray

    def trace(self, row: int, end: int, workers: int) -> list[Stage]:
        """The stages of the plan in ``time[row, end, workers]`` (state positions), in pipeline order."""
        stages: list[Stage] = []
        j, m = end, workers
        while self.split[row, j, m] >= 0:
            k = int(self.split[row, j, m])
            stages.append((k + 1, j + 1, int(self.replicas[row, j, m])))
            j, m = k, int(self.rest[row, j, m])
        stages.append((row, j + 1, int(self.replicas[row, j, m])))
        return stages[::-1]


def replica_cap(workers: int, straight_pipeline: bool, max_replicas: int | None) -> int:
    """Most replicas of one stage: 1 for a straight pipeline, else ``min(workers, max_replicas)``."""
    if straight_pipeline:
        return 1
    return workers if max_replicas is None else max(1, min(workers, max_replicas))


def solve_level(
    range_s: np.ndarray,
    range_parameter_bytes: np.ndarray,
    is_predecessor: np.ndarray,
    workers: int,
    bandwidth_bytes_per_s: float,
    *,
    within: int = 1,
    rows: int | None = None,
    straight_pipeline: bool = False,
    max_replicas: int | None = None,
    use_fewer_machines: bool = False,
) -> LevelTables:
    """One level of PipeDream's DP (module docstring) for the first ``rows`` rows.

    Parameters
    ----------
    range_s, range_parameter_bytes
        ``(S + 1, S)``: seconds per minibatch and parameter bytes of the range
        of row ``i`` ending at state ``j`` (``inf`` seconds where the range is empty).
    is_predecessor
        ``(S, S)`` booleans: ``is_predecessor[a, k]`` when state ``k`` is a
        transitive predecessor of state ``a``.
    workers
        Workers ``n`` of this level.
    bandwidth_bytes_per_s
        The level's bandwidth.
    within
        Workers inside one worker of this level (divides the one-stage sync term).
    rows
        Rows to solve (default all ``S + 1``; the last level needs row 0 only).
    straight_pipeline, use_fewer_machines
        The reference's flags: no replication; plans may leave workers idle.
    max_replicas
        Most replicas of one stage (None: no cap).
    """
    num_states = range_s.shape[1]
    rows = range_s.shape[0] if rows is None else rows
    n, bandwidth = workers, bandwidth_bytes_per_s
    time = np.full((rows, num_states, n), np.inf)
    split = np.full((rows, num_states, n), -1, dtype=np.int64)
    rest = np.full((rows, num_states, n), -1, dtype=np.int64)
    replicas = np.zeros((rows, num_states, n), dtype=np.int64)
    row_index = np.arange(rows)
    # allowed[i, k]: a split after state k is allowed in row i.
    allowed = np.ones((rows, num_states), dtype=bool)
    if rows > 1:
        allowed[1:] = (np.arange(num_states)[None, :] >= row_index[1:, None]) & ~is_predecessor[
            row_index[1:] - 1
        ]
    last_r = np.arange(1, min(replica_cap(n, straight_pipeline, max_replicas) + 1, max(n, 2)))
    for j in range(num_states):
        work, params = range_s[:rows, j], range_parameter_bytes[:rows, j]
        for m in range(replica_cap(n, straight_pipeline, max_replicas)):
            sync = 4 * m * params / (bandwidth * (m + 1)) / within
            time[:, j, m] = np.where(np.isfinite(work), (work + sync) / (m + 1), np.inf)
            replicas[:, j, m] = m + 1
        preds = np.flatnonzero(is_predecessor[j, :j]) if n > 1 else np.zeros(0, dtype=np.int64)
        best = np.full((rows, n), np.inf)
        best_k = np.full((rows, n), -1, dtype=np.int64)
        best_r = np.zeros((rows, n), dtype=np.int64)
        if len(preds):
            last_work = range_s[preds + 1, j][:, None]
            last_params = range_parameter_bytes[preds + 1, j][:, None]
            last = (
                last_work + 4 * (last_r - 1) * last_params / (bandwidth * last_r)
            ) / last_r  # (k, r)
            earlier = np.where(allowed[:, preds, None], time[:, preds, :], np.inf)  # (i, k, m)
            for m in range(1, n):
                usable = last_r <= m
                rs = last_r[usable]
                cand = np.maximum(earlier[:, :, m - rs], last[None, :, usable])  # (i, k, r)
                flat = cand.reshape(rows, -1)
                arg = np.argmin(flat, axis=1)
                best[:, m] = flat[row_index, arg]
                best_k[:, m] = preds[arg // len(rs)]
                best_r[:, m] = rs[arg % len(rs)]
        for m in range(1, n):
            keep_time = time[:, j, m].copy()
            if use_fewer_machines:
                fewer = ~np.isfinite(keep_time) | (time[:, j, m - 1] < keep_time)
                for table in (time, split, rest, replicas):
                    table[:, j, m] = np.where(fewer, table[:, j, m - 1], table[:, j, m])
                keep_time = time[:, j, m].copy()
            better = best[:, m] < keep_time
            time[:, j, m] = np.where(better, best[:, m], time[:, j, m])
            split[:, j, m] = np.where(better, best_k[:, m], split[:, j, m])
            rest[:, j, m] = np.where(better, m - best_r[:, m], rest[:, j, m])
            replicas[:, j, m] = np.where(better, best_r[:, m], replicas[:, j, m])
    return LevelTables(time, split, rest, replicas)


def prefix_ranges(prefix: np.ndarray) -> np.ndarray:
    """``(S + 1, S)`` range sums from down-set prefixes: row 0 the prefix, row ``i`` ``prefix[j] - prefix[i-1]`` (``j >= i``)."""
    num_states = len(prefix)
    out = np.full((num_states + 1, num_states), np.nan)
    out[0] = prefix
    i = np.arange(1, num_states + 1)[:, None]
    j = np.arange(num_states)[None, :]
    out[1:] = np.where(j >= i, prefix[None, :] - prefix[i - 1], np.nan)
    return out


def hierarchical_partition(
    compute_s: np.ndarray,
    parameter_bytes: np.ndarray,
    is_predecessor: np.ndarray,
    levels: list[tuple[int, float]],
    *,
    straight_pipeline: bool = False,
    use_fewer_machines: bool = False,
    max_replicas: int | None = None,
) -> tuple[float, list[list[Stage]], list[Stage]]:
    """PipeDream's two-level optimizer.

    Parameters
    ----------
    compute_s, parameter_bytes
        Per state (topological position): the down-set's forward plus
        backward seconds per minibatch and parameter bytes.
    is_predecessor
        ``(S, S)``: ``is_predecessor[a, k]`` when state ``k`` precedes state ``a``.
    levels
        ``[(GPUs per server, intra bytes/s), (servers, inter bytes/s)]``.
    max_replicas
        Most GPUs one stage may use in total (None: no cap); level 1 caps its
        replicas at it and level 2 its servers at ``max_replicas // n_1``
        (at least 1; conservative when a level-1 stage uses fewer GPUs).

    Returns
    -------
    tuple
        The bottleneck (seconds per minibatch; ``inf`` when no plan exists),
        the level-1 stages inside every level-2 stage, and the level-2 stages
        (``(start, end, servers)``).
    """
    (inner, intra), (outer, inter) = levels
    work = prefix_ranges(compute_s)
    params = prefix_ranges(parameter_bytes)
    work = np.where(np.isnan(work), np.inf, work)
    params = np.nan_to_num(params)
    options = {"straight_pipeline": straight_pipeline, "use_fewer_machines": use_fewer_machines}
    cap1 = max_replicas
    cap2 = None if max_replicas is None else max(1, max_replicas // inner)
    level1 = solve_level(work, params, is_predecessor, inner, intra, max_replicas=cap1, **options)
    server_s = level1.time[:, :, inner - 1]
    level2 = solve_level(
        server_s,
        params,
        is_predecessor,
        outer,
        inter,
        within=inner,
        rows=1,
        max_replicas=cap2,
        **options,
    )
    last = len(compute_s) - 1
    bottleneck = float(level2.time[0, last, outer - 1])
    if not math.isfinite(bottleneck):
        return math.inf, [], []
    top = level2.trace(0, last, outer - 1)
    inside = [level1.trace(start, end - 1, inner - 1) for start, end, _ in top]
    return bottleneck, inside, top
