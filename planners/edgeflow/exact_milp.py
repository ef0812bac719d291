"""``milp-split``: the split-share MILP with a proven bound (Hu & Li 2022, reconstruction).

Steps, all within the time limit (model building counts):

1. The ``edgeflow`` heuristic (:mod:`.progressive`) runs first, on at most
   :data:`HEURISTIC_SHARE` of the time; its plan is the incumbent (if it
   fails, the best single-device plan, reported in ``metrics``).
2. The relaxation MILP of :mod:`.milp_relaxation` runs on at most
   ``relaxation_share`` of what is left; its dual bound is proven.
3. The split-share MILP of :mod:`.milp_model` runs on the rest, with the
   heuristic's plan projected onto the model as a MIP start (each group's
   shares are those of its heaviest layer), completed first with those shares
   fixed on :data:`START_SHARE` of the time (HiGHS would give the completion
   of a partial start the whole limit again). Its shares are rounded and
   built (:mod:`.milp_rounding`, with and without fusing chains; the fastest
   variant is kept) and timed by the replay (:func:`.replay.plan_latency`).

The reported plan is the faster (by the replay) of the MILP's and the
incumbent, so it is never worse than ``edgeflow`` whenever ``edgeflow``
finishes within :data:`HEURISTIC_SHARE` of the limit (on the shipped
instances with a 60 s limit it needs under 2 s); under a tighter limit
``edgeflow`` alone may run more of its passes.
Without a time limit the whole solve is capped at :data:`UNLIMITED_CAP_S`.

Proof obligations
-----------------
* The split MILP is a restriction (one split per layer group, fixed device
  order, group-synchronous timing, approximate transfers): its optimum is
  *not* a bound and is reported only as ``metrics["model_latency_s"]``.
* The reported bound is the larger of the kind's closed-form bound
  (:func:`.bounds.latency_lower_bound`) and the relaxation's dual bound, both
  lower bounds on the latency of every plan the simulator accepts (proofs in
  those modules).
* ``OPTIMAL`` only when the plan's latency equals that bound within a relative
  1e-6; then it is optimal over all plans. Otherwise ``FEASIBLE`` (or
  ``TIME_LIMIT`` when the limit cut a stage). Since the MILP alone cannot close
  the gap in general, the solver is registered as a heuristic.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import pulp

from ...models.edgeflow import EdgeflowPlan, EdgeflowProblem
from ...models.result import Role, SolveStatus
from ...solvers.milp import BuildTimeout, solve_milp
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .baselines import single_device_parts
from .bounds import latency_lower_bound
from .builder import build_plan, memory_overflow
from .coarsen import coarsen
from .fusion import MAX_FUSED_LAYERS
from .milp_model import SplitModel, build_split_model
from .milp_relaxation import relaxation_bound
from .milp_rounding import plan_from_shares, start_from_plan
from .progressive import solve_progressive
from .replay import plan_latency

__all__ = ["solve_milp_split"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_GROUPS = 24
DEFAULT_RELAXATION_SHARE = 0.3
#: Share of the time limit the heuristic incumbent may take.
HEURISTIC_SHARE = 0.25
#: Share of the split MILP's time spent completing the heuristic's start.
START_SHARE = 0.1
#: Seconds the whole solve takes at most when there is no time limit (then a cut says TIME_LIMIT).
UNLIMITED_CAP_S = 60.0
#: Relative gain the MILP's plan needs to replace the heuristic's (rounding noise is no gain).
IMPROVEMENT = 1e-9
#: Relative tolerance of "the plan's latency equals the proven bound".
OPTIMALITY_TOLERANCE = 1e-6


def _incumbent(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """The ``edgeflow`` heuristic's result; if it fails, the best single-device plan that fits memory.

    The heuristic is another module's; a failure there (a degenerate instance)
    is logged and reported in ``metrics["incumbent_error"]`` rather than
    failing this solver.
    """
    try:
        return solve_progressive(problem, options)
    except (ValueError, KeyError) as exc:
        logger.exception("edgeflow heuristic failed; milp-split starts from one device")
        error = f"{type(exc).__name__}: {exc}"
    plans = [build_plan(problem, single_device_parts(problem, d.name))[0] for d in problem.devices]
    fitting = [plan for plan in plans if memory_overflow(problem, plan) is None]
    if not fitting:
        return SolverOutput(
            SolveStatus.NO_SOLUTION,
            metrics={"reason": f"edgeflow failed ({error}) and no single device fits memory"},
        )
    timed = [(plan_latency(problem, plan), k) for k, plan in enumerate(fitting)]
    latency, k = min(timed)
    metrics = {"incumbent": "single-device", "incumbent_error": error}
    return SolverOutput(SolveStatus.FEASIBLE, plan=fitting[k], objective=latency, metrics=metrics)


def _horizon_s(problem: EdgeflowProblem, heuristic_s: float) -> float:
    """A big-M in seconds: every layer on the slowest device plus every byte over the slowest link."""
    slowest = min(d.flops_per_s for d in problem.devices)
    overhead = max(d.overhead_s for d in problem.devices)
    compute = sum(layer.work_flops / slowest + overhead for layer in problem.layers)
    narrowest = (
        min(link.bandwidth_bytes_per_s for link in problem.network.links)
        if problem.network.links
        else math.inf
    )
    moved = 4 * len(problem.devices) * sum(layer.out_bytes for layer in problem.layers) / narrowest
    latency = sum(link.latency_s for link in problem.network.links)
    return 2 * (heuristic_s + compute + moved + latency * len(problem.layers)) + 1.0


def _complete_start(
    split: SplitModel, start: dict[pulp.LpVariable, float], options: SolveOptions
) -> dict[pulp.LpVariable, float]:
    """Every variable's value in the model with ``start``'s variables fixed, or {} if none is found.

    HiGHS completes a partial start in a sub-MIP that is given the whole time
    limit before the main search gets it again (measured: 16 s for an 8 s
    limit), so the start is completed here, on its own small budget.
    """
    if not start:
        return {}
    saved = {var: (var.lowBound, var.upBound) for var in start}
    for var, value in start.items():
        var.lowBound = var.upBound = value
    try:
        outcome = solve_milp(split.model, options, "highs")
    finally:
        for var, (low, high) in saved.items():
            var.lowBound, var.upBound = low, high
    if not outcome.has_solution:
        return {}
    return {
        var: float(round(var.varValue) if var.cat == pulp.LpInteger else var.varValue)
        for var in split.model.variables()
        if var.varValue is not None
    }


def _split_plan(
    problem: EdgeflowProblem, options: SolveOptions, incumbent: EdgeflowPlan, incumbent_s: float
) -> tuple[EdgeflowPlan | None, dict[str, object]]:
    """Solve the split-share MILP; its plan (or None) and metrics."""
    groups = coarsen(problem, int(options.option("max_groups", DEFAULT_MAX_GROUPS)))
    deadline = time.monotonic() + options.remaining() if not options.expired() else 0.0
    try:
        split = build_split_model(problem, groups, _horizon_s(problem, incumbent_s), deadline)
    except BuildTimeout:
        return None, {"groups": len(groups), "milp_status": "build timed out"}
    start = start_from_plan(problem, split, incumbent)
    # Time one rounding + build + replay, and keep room for the variants after the solve.
    began = time.monotonic()
    probe = {
        key: start.get(var, float(key[1] == problem.devices[0].name))
        for key, var in split.share.items()
    }
    plan_latency(problem, plan_from_shares(problem, groups, probe, list(range(len(groups)))))
    reserve_s = 3 * (time.monotonic() - began) + 0.02 * options.remaining()
    start = _complete_start(split, start, options.within(START_SHARE * options.remaining()))
    solve_s = max(0.0, options.remaining() - reserve_s)
    solve_options = options.within(solve_s)
    outcome = solve_milp(split.model, solve_options, "highs", start=start)
    metrics: dict[str, object] = {
        "groups": len(groups),
        "start_completed": bool(start),
        "milp_status": outcome.status.value,
        "model_latency_s": outcome.objective,
    }
    if not outcome.has_solution:
        return None, metrics
    shares = {key: float(var.varValue or 0.0) for key, var in split.share.items()}
    starts = [float(var.varValue or 0.0) for var in split.start]
    variants: dict[int, EdgeflowPlan] = {}
    timed: dict[int, float] = {}
    for fuse in (1, MAX_FUSED_LAYERS, len(problem.layers)):
        if variants and options.expired():
            break
        variants[fuse] = plan_from_shares(problem, groups, shares, starts, fuse)
        timed[fuse] = plan_latency(problem, variants[fuse])
    chosen = min(timed, key=lambda fuse: (timed[fuse], fuse))
    metrics["fused_up_to"] = chosen
    return variants[chosen], metrics


@register_solver(
    "milp-split",
    kind="edgeflow",
    role=Role.HEURISTIC,
    needs=("pulp", "highspy"),
    deterministic=False,
    description=(
        "MILP over row shares of coarsened layer groups (fixed device order, group-synchronous "
        "timing) seeded with edgeflow, plus a relaxation MILP whose dual bound is proven; the "
        "split model is a restriction, so registered as a heuristic (OPTIMAL only when the plan "
        "meets the proven bound)"
    ),
    extra_options={
        "max_groups": Option(
            f"layers are merged into at most this many groups (default {DEFAULT_MAX_GROUPS})",
            types=("int",),
            minimum=1,
        ),
        "relaxation_share": Option(
            "share of the time after the heuristic given to the bound's relaxation"
            f" (default {DEFAULT_RELAXATION_SHARE})",
            types=("float",),
            minimum=0.0,
            maximum=1.0,
        ),
    },
)
def solve_milp_split(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """Heuristic incumbent, relaxation bound, split-share MILP; keep the faster plan (module docstring)."""
    share = float(options.option("relaxation_share", DEFAULT_RELAXATION_SHARE))
    if math.isinf(options.time_limit):
        options = dataclasses.replace(options, time_limit=UNLIMITED_CAP_S)
    heuristic = _incumbent(problem, options.within(HEURISTIC_SHARE * options.remaining()))
    if heuristic.plan is None:
        return heuristic  # no plan fits memory: the heuristic says why
    best_plan, best_s = heuristic.plan, float(heuristic.objective or math.inf)
    source = str(heuristic.metrics.get("incumbent", "edgeflow"))

    relaxed, metrics = relaxation_bound(problem, options, share * options.remaining())
    metrics = dict(metrics)
    metrics["relaxation_bound_s"] = relaxed

    found, split_metrics = _split_plan(
        problem, options.within(options.remaining()), best_plan, best_s
    )
    metrics.update(split_metrics)
    if found is not None and memory_overflow(problem, found) is None:
        found_s = plan_latency(problem, found)
        metrics["milp_plan_latency_s"] = found_s
        if found_s < best_s * (1 - IMPROVEMENT):
            best_plan, best_s, source = found, found_s, "milp"
    metrics["plan_source"] = source
    metrics["edgeflow_latency_s"] = heuristic.objective
    if "incumbent_error" in heuristic.metrics:
        metrics["incumbent_error"] = heuristic.metrics["incumbent_error"]

    bound = max(latency_lower_bound(problem), relaxed or 0.0)
    if best_s <= bound * (1 + OPTIMALITY_TOLERANCE):
        status = SolveStatus.OPTIMAL
    elif options.expired() or split_metrics.get("milp_status") in (
        "time_limit",
        "no_solution",
        "build timed out",
    ):
        status = SolveStatus.TIME_LIMIT
    else:
        status = SolveStatus.FEASIBLE
    return SolverOutput(status, plan=best_plan, objective=best_s, bound=bound, metrics=metrics)
