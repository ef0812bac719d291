"""Literature baselines for pipeline planning: GPipe's uniform split, torchgpipe's
balance-by-time, and Alpa's inter-operator stage DP.

All three are clean-room reconstructions from the papers (no code copied). They
are deliberately faithful to what each system assumes: ``uniform`` and
``balance_by_time`` ignore the interconnect, heterogeneity and memory, and
``alpa_dp`` ignores communication between stages. Whatever partition they
choose is replayed by the independent simulator; one that overflows memory is
reported as ``no_solution`` with the simulator's reasons, the honest outcome
for a memory-oblivious baseline.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ...models.pipeline import PipelineProblem, Schedule
from ...models.result import Role, SolveStatus
from ...solvers.options import SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from ..common.linearize import Linearization, candidate_cuts, linearize
from .finalize import simulate_candidates, to_output
from .list_schedule import list_schedule

__all__ = [
    "alpa_dp",
    "alpa_stage_dp",
    "balance_by_time",
    "min_max_partition",
    "uniform",
]

logger = logging.getLogger(__name__)


def _fixed_schedules(problem: PipelineProblem, preferred: Schedule) -> list[Schedule]:
    """``preferred`` when the problem allows it, else the other allowed fixed schedules."""
    if preferred in problem.schedules:
        return [preferred]
    fixed = [s for s in problem.schedules if s != "list"]
    return fixed or ["list"]


def _finish(
    problem: PipelineProblem,
    stage_of_layer: list[int],
    gpus_of_stage: list[list[int]],
    preferred: Schedule,
    metrics: dict,
) -> SolverOutput:
    schedules = _fixed_schedules(problem, preferred)
    candidates = simulate_candidates(problem, stage_of_layer, gpus_of_stage, schedules, list_schedule)
    return to_output(candidates, metrics)


# ----------------------------------------------------------------------------- uniform


@register_solver(
    "uniform",
    kind="pipeline",
    role=Role.BASELINE,
    description="GPipe (Huang et al. 2019): equal layer counts per stage, one GPU per stage, fill-drain",
)
def uniform(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """GPipe's pipeline layout (Huang et al., NeurIPS 2019, Sec. 2.2) with equal layer counts.

    GPipe partitions the sequence of L layers into K cells, places cell ``k``
    on accelerator ``k`` and runs fill-drain micro-batching. This baseline
    takes the simplest partition: S = #GPUs cells (fewer when there are fewer
    layers) of equal layer counts over the problem's topological order, the
    first ``L mod S`` one layer longer (GPipe's own partitioner balances
    estimated cell costs; that variant is ``balance_by_time``). Stage ``s``
    runs on GPU ``s`` with fill-drain, or another allowed fixed schedule when
    the problem forbids it.
    """
    order = problem.topological_order
    num_layers = len(order)
    num_stages = min(problem.num_gpus, num_layers)
    base, extra = divmod(num_layers, num_stages)
    stage_of_layer = [0] * num_layers
    position = 0
    for s in range(num_stages):
        for _ in range(base + (1 if s < extra else 0)):
            stage_of_layer[order[position]] = s
            position += 1
    gpus_of_stage = [[s] for s in range(num_stages)]
    return _finish(problem, stage_of_layer, gpus_of_stage, "gpipe", {"num_stages": num_stages})


# --------------------------------------------------------------------- balance_by_time


def min_max_partition(costs: list[float] | np.ndarray, num_parts: int) -> tuple[list[int], float]:
    """Split a sequence into ``num_parts`` non-empty contiguous parts minimising the largest sum.

    Among the partitions with the smallest bottleneck, the one with the least
    sum of squared part sums is returned (ties: earliest boundaries), so the
    non-bottleneck parts are balanced too.

    Parameters
    ----------
    costs
        Non-negative cost of every item, in sequence order.
    num_parts
        Number of parts, ``1 <= num_parts <= len(costs)``.

    Returns
    -------
    tuple
        The boundaries ``[0, c_1, ..., len(costs)]`` and the bottleneck (largest part sum).

    Examples
    --------
    >>> min_max_partition([1, 2, 3, 4, 5], 2)
    ([0, 3, 5], 9.0)
    """
    values = np.asarray(costs, dtype=float)
    n = len(values)
    if not 1 <= num_parts <= n:
        raise ValueError(f"num_parts: must be between 1 and {n}, got {num_parts}")
    prefix = np.concatenate(([0.0], np.cumsum(values)))
    span = prefix[None, :] - prefix[:, None]  # span[q, p]: sum of items q..p-1
    valid = np.triu(np.ones((n + 1, n + 1), dtype=bool), k=1)
    # Phase 1: the smallest bottleneck, DP over (parts, prefix length).
    best = np.where(np.arange(n + 1) >= 1, prefix, np.inf)
    for _ in range(1, num_parts):
        candidate = np.where(valid, np.maximum(best[:, None], span), np.inf)
        best = candidate.min(axis=0)
    bottleneck = float(best[n])
    # Phase 2: least sum of squares with every part within the bottleneck.
    allowed = valid & (span <= bottleneck * (1 + 1e-12) + 1e-300)
    score = np.where(allowed[0], span[0] ** 2, np.inf)
    choices = []
    for _ in range(1, num_parts):
        candidate = np.where(allowed, score[:, None] + span**2, np.inf)
        choice = candidate.argmin(axis=0)
        choices.append(choice)
        score = candidate[choice, np.arange(n + 1)]
    bounds = [n]
    for choice in reversed(choices):
        bounds.append(int(choice[bounds[-1]]))
    bounds.append(0)
    return bounds[::-1], bottleneck


@register_solver(
    "balance_by_time",
    kind="pipeline",
    role=Role.BASELINE,
    description="torchgpipe balance_by_time (Kim et al. 2020): min-max time partition, one GPU per stage",
)
def balance_by_time(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """torchgpipe's automatic balancing ``torchgpipe.balance.balance_by_time`` (Kim et al., arXiv:2004.09910).

    torchgpipe profiles every layer's forward plus backward time and splits the
    sequential model into S = #GPUs contiguous partitions (fewer when there are
    fewer layers) so that the slowest partition is as fast as possible; here
    that split is computed exactly (:func:`min_max_partition`) on speed-1.0
    times over the topological order. Like torchgpipe it ignores the
    interconnect, the GPUs' speeds and memory: partition ``s`` runs on GPU
    ``s`` with GPipe's fill-drain schedule.
    """
    lin = linearize(problem)
    num_stages = min(problem.num_gpus, lin.num_layers)
    work = np.diff(lin.forward_s) + np.diff(lin.backward_s)
    bounds, bottleneck = min_max_partition(work, num_stages)
    stage_of_layer = lin.stage_of_layer(bounds)
    gpus_of_stage = [[s] for s in range(num_stages)]
    metrics = {"num_stages": num_stages, "balanced_stage_s": bottleneck}
    return _finish(problem, stage_of_layer, gpus_of_stage, "gpipe", metrics)


# ----------------------------------------------------------------------------- alpa_dp


def _block_sums(lin: Linearization, cuts: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Work (speed-1.0 s), parameter and activation bytes of block ranges ``[a, b)`` as matrices."""
    index = np.array(cuts)

    def matrix(prefix: np.ndarray) -> np.ndarray:
        values = prefix[index]
        return values[None, :] - values[:, None]

    work = matrix(lin.forward_s) + matrix(lin.backward_s)
    return work, matrix(lin.parameter_bytes), matrix(lin.activation_bytes)


def _group_memory_caps(
    problem: PipelineProblem, parameter: np.ndarray, activation: np.ndarray, gpus: list[int]
) -> np.ndarray:
    """For every block range, the most micro-batches a replica group may hold in flight (-1: weights do not fit)."""
    speed = np.array([problem.cluster.gpus[g].speed for g in gpus])
    memory = np.array([problem.cluster.gpus[g].memory_bytes for g in gpus])
    static = (1.0 + problem.optimizer_state_factor) * parameter
    cap = np.full(parameter.shape, float(problem.microbatches))
    for share, mem in zip(speed / speed.sum(), memory, strict=True):
        free = mem - static
        stash = share * activation
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = np.where(stash > 0, np.floor(free / np.where(stash > 0, stash, 1.0)), np.inf)
        fit = np.where(free < 0, -1.0, fit)
        cap = np.minimum(cap, fit)
    return cap


def alpa_stage_dp(
    problem: PipelineProblem,
    *,
    max_blocks: int = 64,
    epsilon: float = 0.01,
    batch: int = 32,
) -> tuple[list[int], list[tuple[int, int]], float] | None:
    """Alpa's inter-operator DP (Zheng et al., OSDI 2022, Sec. 5.2, Eq. 2-3).

    Minimises ``T* = sum_i t_i + (K - 1) * max_j t_j`` over slicings of the
    (coarsened) layer sequence into stages, each assigned a submesh. For a
    candidate bound ``t_max`` Eq. 3 computes ``F(s, k, d; t_max)``, the least
    total latency of slicing blocks ``k..B-1`` into ``s`` stages on ``d``
    devices with every stage latency at most ``t_max``; ``T*(t_max) =
    F(S, 0, N; t_max) + (K - 1) t_max`` minimised over ``S`` and ``t_max``.

    Reconstruction choices (documented deviations):

    * devices form a 1-D list, so a submesh is a contiguous group of ``r`` GPU
      indices (every ``r``, a superset of Alpa's ``(1, 2^m)`` and ``(n, M)``
      shapes); stages take groups in index order and together use all GPUs
      (fewer only when no plan can use them all);
    * the stage latency ``t_intra`` is Alpa's "intra-op" cost on that group:
      data-parallel compute, ``work / sum(speed)``; like Alpa's DP it ignores
      cross-stage communication and gradient synchronisation;
    * memory: a stage with ``s - 1`` stages after it stashes ``min(s, K)``
      micro-batches under 1F1B, which must fit every replica (as Alpa's
      profiling marks out-of-memory stage-mesh pairs infeasible);
    * ``t_max`` runs over the distinct stage latencies in increasing order,
      from ``work / sum(all speeds)`` (no slicing beats it), skipping values
      within a factor ``1 + epsilon`` of the last one tried, and stops once
      ``K * t_max`` reaches the best ``T*`` (Alpa's early pruning);
    * layers are clustered into at most ``max_blocks`` blocks with
      :func:`~.linearize.candidate_cuts` (Alpa's operator clustering).

    Returns
    -------
    tuple or None
        Layer-position boundaries ``[0, ..., L]``, the ``(first GPU, replicas)``
        of every stage, and ``T*``; None when no slicing fits memory.
    """
    lin = linearize(problem)
    cuts = candidate_cuts(lin, max_blocks)
    num_blocks = len(cuts) - 1
    n, k = problem.num_gpus, problem.microbatches
    work, parameter, activation = _block_sums(lin, cuts)
    upper = np.triu(np.ones((num_blocks + 1, num_blocks + 1), dtype=bool), k=1)
    speed = np.array([g.speed for g in problem.cluster.gpus])
    sizes = range(1, n + 1) if problem.allow_replication else range(1, 2)
    # latency[(j, r)][a, b]: stage of blocks [a, b) on GPUs j..j+r-1; cap: in-flight that fits.
    latency: dict[tuple[int, int], np.ndarray] = {}
    caps: dict[tuple[int, int], np.ndarray] = {}
    for j in range(n):
        for r in sizes:
            if j + r > n:
                break
            group = list(range(j, j + r))
            lat = np.where(upper, work / speed[j : j + r].sum(), np.inf)
            cap = _group_memory_caps(problem, parameter, activation, group)
            latency[(j, r)] = np.where(cap >= 1, lat, np.inf)
            caps[(j, r)] = cap
    values = np.unique(np.concatenate([m[np.isfinite(m)] for m in latency.values()]))
    lower = float(work[0, num_blocks] / speed.sum())
    values = values[values >= lower * (1 - 1e-12)]
    if len(values) == 0:
        return None
    thresholds: list[float] = []
    for v in values:
        if not thresholds or v > thresholds[-1] * (1 + epsilon) or v == values[-1]:
            thresholds.append(float(v))
    max_stages = min(n, num_blocks)

    def run(tmax: np.ndarray, use_all: bool, keep: bool, staged: bool):
        """Eq. 3 for a batch of ``t_max`` values: ``T*(t_max)`` per value, and the choices when ``keep``.

        ``staged`` keeps Alpa's stage-count dimension ``s`` (needed only when
        some stage's memory depends on how many stages follow it); otherwise
        ``F(k, d)`` is the same minimum taken over every ``s`` at once.
        """
        t_count = len(tmax)
        layers = max_stages if staged else 1
        # table[s][d]: (T, B+1), least latency sum of blocks a.. on the last d GPUs.
        table = [[np.full((t_count, num_blocks + 1), np.inf) for _ in range(n + 1)] for _ in range(layers + 1)]
        table[0][0][:, num_blocks] = 0.0
        if not staged:
            table[1] = table[0]
        choice: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for s in range(1, layers + 1):
            need = min(s, k) if staged else 1
            for d in range(1, n + 1):
                j = n - d
                best = np.full((t_count, num_blocks + 1), np.inf)
                best_b = np.zeros((t_count, num_blocks + 1), dtype=np.int64)
                best_r = np.zeros((t_count, num_blocks + 1), dtype=np.int64)
                for r in sizes:
                    if r > d:
                        break
                    rest = table[s - 1][d - r]
                    if not np.isfinite(rest).any():
                        continue
                    lat = np.where(caps[(j, r)] >= need, latency[(j, r)], np.inf) if staged else latency[(j, r)]
                    stage = np.where(lat[None, :, :] <= tmax[:, None, None], lat[None, :, :], np.inf)
                    total = stage + rest[:, None, :]
                    arg = total.argmin(axis=2)
                    value = np.take_along_axis(total, arg[:, :, None], axis=2)[:, :, 0]
                    if keep:
                        better = value < best
                        best_b = np.where(better, arg, best_b)
                        best_r = np.where(better, r, best_r)
                    best = np.minimum(best, value)
                table[s][d] = best
                if keep:
                    choice[(s, d)] = (best_b, best_r)
        devices = [n] if use_all else list(range(1, n + 1))
        ends = [(s, d, table[s][d][:, 0]) for s in range(1, layers + 1) for d in devices]
        totals = np.min(np.stack([e for _, _, e in ends]), axis=0) + (k - 1) * tmax
        return totals, ends, choice

    def binding(tmax: float) -> bool:
        """Whether some stage within ``tmax`` fits fewer in-flight micro-batches than stages could follow it."""
        most = min(max_stages, k)
        return any(bool(((caps[key] < most) & (latency[key] <= tmax)).any()) for key in latency)

    def search(use_all: bool) -> tuple[float, float | None]:
        best_value, best_tmax = math.inf, None
        for start in range(0, len(thresholds), batch):
            chunk = np.array(thresholds[start : start + batch])
            if k * chunk[0] >= best_value:
                break
            totals, _, _ = run(chunk, use_all, keep=False, staged=binding(float(chunk[-1])))
            i = int(np.argmin(totals))
            if totals[i] < best_value:
                best_value, best_tmax = float(totals[i]), float(chunk[i])
        return best_value, best_tmax

    use_all = True
    best_value, best_tmax = search(use_all)
    if best_tmax is None:
        use_all = False
        best_value, best_tmax = search(use_all)
    if best_tmax is None:
        return None
    staged = binding(best_tmax)
    _, ends, choice = run(np.array([best_tmax]), use_all, keep=True, staged=staged)
    s, d, _ = min(ends, key=lambda e: float(e[2][0]))
    bounds, groups, a = [0], [], 0
    while a < num_blocks:
        best_b, best_r = choice[(s, d)]
        b, r = int(best_b[0, a]), int(best_r[0, a])
        groups.append((n - d, r))
        bounds.append(cuts[b])
        a, d = b, d - r
        if staged:
            s -= 1
    return bounds, groups, best_value


@register_solver(
    "alpa_dp",
    kind="pipeline",
    role=Role.BASELINE,
    description="Alpa inter-op stage DP (Zheng et al. OSDI 2022, Sec. 5.2): t_max enumeration, submeshes, 1F1B",
    extra_options={
        "max_blocks": "most blocks the layers are clustered into (default 64)",
        "epsilon": "relative gap between enumerated t_max values (default 0.01; 0 = every value)",
    },
)
def alpa_dp(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """Alpa's stage slicing and submesh assignment (:func:`alpa_stage_dp`) with the 1F1B schedule."""
    found = alpa_stage_dp(
        problem,
        max_blocks=int(options.option("max_blocks", 64)),
        epsilon=float(options.option("epsilon", 0.01)),
    )
    if found is None:
        return SolverOutput(SolveStatus.NO_SOLUTION, metrics={"reason": "no stage slicing fits GPU memory under 1F1B"})
    bounds, groups, value = found
    lin = linearize(problem)
    stage_of_layer = lin.stage_of_layer(bounds)
    gpus_of_stage = [list(range(j, j + r)) for j, r in groups]
    return _finish(problem, stage_of_layer, gpus_of_stage, "1f1b", {"alpa_objective_s": value})
