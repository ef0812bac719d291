"""Alpa's inter-operator stage DP as a baseline (``alpa_dp``), with Alpa's own cost model.

Clean-room reconstruction of Zheng et al., "Alpa: Automating Inter- and
Intra-Operator Parallelism for Distributed Deep Learning" (OSDI 2022), Sec. 5
(no code copied). As Alpa runs it:

* the stage latency ``t_i`` includes the stage's data-parallel gradient
  synchronisation divided by the number of micro-batches ``K`` (Alpa profiles
  each stage-mesh pair with its intra-op plan, whose all-reduce runs once per
  iteration and is amortised over the ``K`` micro-batches in Eq. 2); the
  all-reduce is estimated on the shared network
  (:meth:`~.costs.ClusterView.allreduce_s`);
* submeshes are host-aligned (Sec. 5.2): ``(1, 2^m)`` shapes inside one host
  (``2^m`` GPUs of one server), or ``(n, M)``, whole hosts;
* cross-stage communication is not in the DP (Alpa's inter-op pass ignores it;
  the simulator charges it afterwards).

Options keep the old behaviour: ``gradient_sync=False`` charges no
synchronisation, ``submeshes="any"`` allows every contiguous GPU group.
"""

from __future__ import annotations

import math

import numpy as np

from ...models.pipeline import PipelineProblem
from ...models.result import Role, SolveStatus
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from ..common.linearize import Linearization, candidate_cuts, linearize
from .costs import ClusterView
from .finalize import SCHEDULE_OPTION, menu_or_native, simulate_candidates, to_output
from .list_schedule import list_schedule
from .topo_dp import fold_best_split

__all__ = ["alpa_dp", "alpa_stage_dp", "host_aligned"]


def host_aligned(servers: list[str], first: int, size: int) -> bool:
    """Whether GPUs ``first .. first + size - 1`` form an Alpa submesh (Sec. 5.2).

    Either ``size`` is a power of two and all of them sit in one server, or
    they are whole servers (every GPU of each server they touch).
    """
    group = servers[first : first + size]
    if len(set(group)) == 1 and size & (size - 1) == 0:
        return True
    touched = set(group)
    whole = all(servers.count(s) == group.count(s) for s in touched)
    return whole and (first == 0 or servers[first - 1] != servers[first])


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
    gradient_sync: bool = True,
    submeshes: str = "host_aligned",
) -> tuple[list[int], list[tuple[int, int]], float] | None:
    """Alpa's inter-operator DP (Zheng et al., OSDI 2022, Sec. 5.2, Eq. 2-3).

    Minimises ``T* = sum_i t_i + (K - 1) * max_j t_j`` over slicings of the
    (coarsened) layer sequence into stages, each assigned a submesh. For a
    candidate bound ``t_max`` Eq. 3 computes ``F(s, k, d; t_max)``, the least
    total latency of slicing blocks ``k..B-1`` into ``s`` stages on ``d``
    devices with every stage latency at most ``t_max``; ``T*(t_max) =
    F(S, 0, N; t_max) + (K - 1) t_max`` minimised over ``S`` and ``t_max``.

    Reconstruction choices (documented deviations):

    * devices form a 1-D list (GPU indices, servers in order), so a submesh is
      a contiguous group of ``r`` GPU indices; with ``submeshes="host_aligned"``
      only Alpa's shapes (:func:`host_aligned`), with ``"any"`` every ``r``;
      stages take groups in index order and together use all GPUs (fewer only
      when no plan can use them all);
    * the stage latency ``t_intra`` is Alpa's "intra-op" cost on that group:
      data-parallel compute ``work / sum(speed)`` plus, with ``gradient_sync``,
      the group's gradient all-reduce divided by ``K`` (Alpa's cost model);
      like Alpa's DP it ignores cross-stage communication;
    * memory: a stage with ``s - 1`` stages after it stashes ``min(s, K)``
      micro-batches under 1F1B, which must fit every replica (as Alpa's
      profiling marks out-of-memory stage-mesh pairs infeasible);
    * ``t_max`` runs over the distinct stage latencies in increasing order,
      from ``work / sum(all speeds)`` (no slicing beats it), grouped in buckets
      within a factor ``1 + epsilon`` of their first value and tried at each
      bucket's largest value (Alpa skips values within a gap of the last one
      tried; the top of the bucket keeps every latency of it allowed), and stops once
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
    # A submesh never has more devices than the micro-batch has samples (each needs a whole one).
    most = min(n, problem.samples_per_microbatch or n) if problem.allow_replication else 1
    sizes = range(1, most + 1)
    if submeshes not in ("host_aligned", "any"):
        raise ValueError(f"options.submeshes: 'host_aligned' or 'any', got {submeshes!r}")
    view = ClusterView(problem)
    servers = view.server_of_gpu
    # latency[(j, r)][a, b]: stage of blocks [a, b) on GPUs j..j+r-1; cap: in-flight that fits.
    latency: dict[tuple[int, int], np.ndarray] = {}
    caps: dict[tuple[int, int], np.ndarray] = {}
    for j in range(n):
        for r in sizes:
            if j + r > n:
                break
            if submeshes == "host_aligned" and not host_aligned(servers, j, r):
                continue
            group = list(range(j, j + r))
            stage_s = work / speed[j : j + r].sum()
            if gradient_sync and r > 1:
                stage_s = stage_s + view.allreduce_s(group, parameter) / k
            lat = np.where(upper, stage_s, np.inf)
            cap = _group_memory_caps(problem, parameter, activation, group)
            latency[(j, r)] = np.where(cap >= 1, lat, np.inf)
            caps[(j, r)] = cap
    values = np.unique(np.concatenate([m[np.isfinite(m)] for m in latency.values()]))
    lower = float(work[0, num_blocks] / speed.sum())
    values = values[values >= lower * (1 - 1e-12)]
    if len(values) == 0:
        return None
    # Buckets of values within a factor 1 + epsilon of their first; each is tried at its largest
    # value, so every stage latency of the bucket is allowed (at most 1 + epsilon on the max term).
    thresholds: list[float] = []
    bucket_start = float(values[0])
    for v, after in zip(values, [*values[1:], np.inf], strict=True):
        if after > bucket_start * (1 + epsilon):
            thresholds.append(float(v))
            bucket_start = float(after)
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
        table = [
            [np.full((t_count, num_blocks + 1), np.inf) for _ in range(n + 1)]
            for _ in range(layers + 1)
        ]
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
                    if (j, r) not in latency or not np.isfinite(rest).any():
                        continue
                    lat = (
                        np.where(caps[(j, r)] >= need, latency[(j, r)], np.inf)
                        if staged
                        else latency[(j, r)]
                    )
                    stage = np.where(
                        lat[None, :, :] <= tmax[:, None, None], lat[None, :, :], np.inf
                    )
                    total = stage + rest[:, None, :]
                    best, best_b, best_r = fold_best_split(total, r, best, best_b, best_r)
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
    honours_time_limit=False,
    kind="pipeline",
    role=Role.BASELINE,
    description="Alpa inter-op stage DP (Zheng et al. OSDI 2022, Sec. 5): gradient sync / K, host-aligned submeshes",
    extra_options={
        "max_blocks": Option(
            "most blocks the layers are clustered into (default 64)", types=("int",), minimum=1
        ),
        "epsilon": Option(
            "relative gap between enumerated t_max values (default 0.01; 0 = every value)",
            types=("float",),
            minimum=0,
        ),
        "gradient_sync": Option(
            "charge each stage's gradient all-reduce / K in its latency (default true; false: the old DP)",
            types=("bool",),
        ),
        "submeshes": Option(
            "'host_aligned' (default: (1, 2^m) inside a host or whole hosts) or 'any' contiguous group",
            choices=("host_aligned", "any"),
        ),
        **SCHEDULE_OPTION,
    },
)
def alpa_dp(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """Alpa's stage slicing and submesh assignment (:func:`alpa_stage_dp`), replayed under the schedule menu."""
    found = alpa_stage_dp(
        problem,
        max_blocks=int(options.option("max_blocks", 64)),
        epsilon=float(options.option("epsilon", 0.01)),
        gradient_sync=bool(options.option("gradient_sync", True)),
        submeshes=str(options.option("submeshes", "host_aligned")),
    )
    if found is None:
        return SolverOutput(
            SolveStatus.NO_SOLUTION,
            metrics={"reason": "no stage slicing fits GPU memory under 1F1B"},
        )
    bounds, groups, value = found
    lin = linearize(problem)
    stage_of_layer = lin.stage_of_layer(bounds)
    gpus_of_stage = [list(range(j, j + r)) for j, r in groups]
    schedules = menu_or_native(problem, options.option("schedules", "menu"), "1f1b")
    candidates = simulate_candidates(
        problem, stage_of_layer, gpus_of_stage, schedules, list_schedule
    )
    return to_output(candidates, {"alpa_objective_s": value})
