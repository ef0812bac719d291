"""Literature baselines for pipeline planning: GPipe's uniform split, torchgpipe's
balance-by-time, and GPipe with data-parallel pipelines (``gpipe_dp``).

Clean-room reconstructions from the papers (no code copied), run as their users
run them. The partitioners ignore the interconnect, heterogeneity and memory, as
the systems do; the stage count is what a user tunes, so every stage count ``S``
that divides the GPU count ``N`` is tried, each stage replicated ``N / S`` times
(data parallelism inside the stage), and the fastest by simulation is kept. The
partition is replayed under the common schedule menu (GPipe, 1F1B, list) so
that solvers are compared on partitions (option ``schedules="native"``: GPipe
only). Options keep the old behaviour: ``replicas="none"`` is one single-GPU
stage per GPU. A partition that overflows memory under every schedule is
reported as ``no_solution`` with the simulator's reasons, the honest outcome for
a memory-oblivious baseline. Alpa's DP lives in :mod:`.alpa`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ...models.pipeline import PipelineProblem
from ...models.result import Role
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from ..common.linearize import linearize
from .finalize import SCHEDULE_OPTION, menu_or_native, simulate_partitions, to_output
from .list_schedule import list_schedule

__all__ = [
    "balance_by_time",
    "gpipe_dp",
    "min_max_partition",
    "stage_counts",
    "uniform",
]

logger = logging.getLogger(__name__)

#: Stage boundaries ``[0, c_1, ..., L]`` (positions of the topological order) for ``S`` stages.
Splitter = Callable[[PipelineProblem, int], list[int]]

_REPLICAS_OPTION = {
    "replicas": Option(
        "'divisors' (default: every stage count S dividing the GPUs, N/S replicas per stage, "
        "best S by simulation) or 'none' (one single-GPU stage per GPU, the old behaviour)",
        choices=("divisors", "none"),
    )
}


def stage_counts(problem: PipelineProblem, num_layers: int, replicas: object) -> list[int]:
    """Stage counts a user would try: divisors of the GPU count (at most ``num_layers``), or ``min(N, L)``."""
    n = problem.num_gpus
    if replicas == "none" or not problem.allow_replication:
        return [min(n, num_layers)]
    if replicas != "divisors":
        raise ValueError(f"options.replicas: 'divisors' or 'none', got {replicas!r}")
    return [s for s in range(1, min(n, num_layers) + 1) if n % s == 0]


def _stage_major(num_stages: int, replicas: int) -> list[list[int]]:
    """Stage ``s`` on GPUs ``s R .. s R + R - 1`` (replicas side by side, inside a server when they fit)."""
    return [list(range(s * replicas, (s + 1) * replicas)) for s in range(num_stages)]


def _pipeline_major(num_stages: int, replicas: int) -> list[list[int]]:
    """Replica ``i`` of stage ``s`` on GPU ``i S + s``: each of the ``R`` pipeline copies on ``S`` adjacent GPUs."""
    return [[i * num_stages + s for i in range(replicas)] for s in range(num_stages)]


def _replicated(
    problem: PipelineProblem,
    options: SolveOptions,
    split: Splitter,
    layouts: tuple[Callable[[int, int], list[list[int]]], ...] = (_stage_major,),
) -> SolverOutput:
    """Try every stage count and layout, replay each under the schedules, keep the fastest."""
    lin = linearize(problem)
    counts = stage_counts(problem, lin.num_layers, options.option("replicas", "divisors"))
    schedules = menu_or_native(problem, options.option("schedules", "menu"), "gpipe")
    partitions: list[tuple[list[int], list[list[int]]]] = []
    labels: list[tuple[int, int, str]] = []
    for num_stages in counts:
        stage_of_layer = lin.stage_of_layer(split(problem, num_stages))
        replicas = (
            problem.num_gpus // num_stages
            if options.option("replicas", "divisors") != "none"
            else 1
        )
        for layout in layouts:
            groups = layout(num_stages, replicas)
            if groups not in [p[1] for p in partitions]:
                partitions.append((stage_of_layer, groups))
                labels.append((num_stages, replicas, layout.__name__.strip("_")))
    candidates, chosen = simulate_partitions(problem, partitions, schedules, list_schedule)
    metrics: dict = {"stage_counts_tried": counts}
    if chosen is not None:
        metrics.update(
            num_stages=labels[chosen][0],
            replicas_per_stage=labels[chosen][1],
            layout=labels[chosen][2],
        )
    return to_output(candidates, metrics)


# ----------------------------------------------------------------------------- uniform


def _equal_counts(problem: PipelineProblem, num_stages: int) -> list[int]:
    """Boundaries of ``num_stages`` equal layer counts, the first ``L mod S`` one layer longer."""
    num_layers = len(problem.layers)
    base, extra = divmod(num_layers, num_stages)
    bounds = [0]
    for s in range(num_stages):
        bounds.append(bounds[-1] + base + (1 if s < extra else 0))
    return bounds


@register_solver(
    "uniform",
    honours_time_limit=False,
    kind="pipeline",
    role=Role.BASELINE,
    description="GPipe (Huang et al. 2019): equal layer counts per stage, N/S replicas per stage, best S",
    extra_options={**_REPLICAS_OPTION, **SCHEDULE_OPTION},
)
def uniform(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """GPipe's pipeline layout (Huang et al., NeurIPS 2019, Sec. 2.2) with equal layer counts.

    GPipe partitions the sequence of L layers into S cells and places cell
    ``s`` on accelerator ``s``; users combine it with data parallelism. This
    baseline takes the simplest partition, S cells of equal layer counts over
    the topological order, for every S dividing the GPU count N (each cell
    replicated N/S times on adjacent GPUs) and keeps the fastest by simulation
    (GPipe's own partitioner balances estimated costs: ``balance_by_time``).
    """
    return _replicated(problem, options, _equal_counts)


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


def _balanced_by_time(problem: PipelineProblem, num_stages: int) -> list[int]:
    """torchgpipe's ``balance_by_time`` split: min-max of forward plus backward speed-1.0 seconds."""
    lin = linearize(problem)
    work = np.diff(lin.forward_s) + np.diff(lin.backward_s)
    return min_max_partition(work, num_stages)[0]


@register_solver(
    "balance_by_time",
    honours_time_limit=False,
    kind="pipeline",
    role=Role.BASELINE,
    description="torchgpipe balance_by_time (Kim et al. 2020): min-max time partition, N/S replicas, best S",
    extra_options={**_REPLICAS_OPTION, **SCHEDULE_OPTION},
)
def balance_by_time(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """torchgpipe's automatic balancing ``torchgpipe.balance.balance_by_time`` (Kim et al., arXiv:2004.09910).

    torchgpipe profiles every layer's forward plus backward time and splits the
    sequential model into S contiguous partitions so that the slowest is as
    fast as possible; here that split is computed exactly
    (:func:`min_max_partition`) on speed-1.0 times over the topological order.
    Like torchgpipe it ignores the interconnect, the GPUs' speeds and memory.
    Users run it with data parallelism (``torch.nn.parallel`` around the
    pipeline): every S dividing N is tried, each partition replicated N/S
    times on adjacent GPUs, and the fastest by simulation is kept.
    """
    return _replicated(problem, options, _balanced_by_time)


# ----------------------------------------------------------------------------- gpipe_dp


@register_solver(
    "gpipe_dp",
    honours_time_limit=False,
    kind="pipeline",
    role=Role.BASELINE,
    description="GPipe/torchgpipe balance with data-parallel pipelines: best S and replica layout by simulation",
    extra_options={**_REPLICAS_OPTION, **SCHEDULE_OPTION},
)
def gpipe_dp(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """torchgpipe's balance (``balance_by_time``) with data parallelism in both layouts users deploy.

    For every stage count S dividing N, the min-max time partition into S
    stages, each replicated R = N/S times, in two placements: *stage-major*
    (a stage's replicas on adjacent GPUs, so its gradient all-reduce stays
    inside a server) and *pipeline-major* (R copies of the whole pipeline,
    each on S adjacent GPUs, so stage boundaries stay inside a server, as
    GPipe with data parallelism is usually run). The stage count, layout and
    schedule are chosen by simulation (Huang et al., NeurIPS 2019, Sec. 2;
    Kim et al., arXiv:2004.09910, Sec. 3.3).
    """
    return _replicated(problem, options, _balanced_by_time, (_stage_major, _pipeline_major))


from . import alpa as alpa  # noqa: E402  (registers alpa_dp; imported here because kind.py imports this module)
