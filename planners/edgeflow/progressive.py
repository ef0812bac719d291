"""Ours: EdgeFlow progressive model partitioning (Hu & Li, INFOCOM 2022; reconstruction).

Layers are decided one at a time in topological order. For each layer the
candidates are: the whole layer on each device, and for ``k = 2 .. max_split`` a
row split over the ``k`` devices that could finish it soonest, with shares from
the per-layer LP ("finish the layer as early as possible given where its inputs
already are", :func:`shares.water_fill`) rounded by largest remainder and refined
once with the start times the placement actually gets. The candidate whose
estimated finish is earliest (then fewest bytes moved) is kept.

Improvements over the plain pass (ours):

* aligned splits: rows of a split are laid out in the order of the devices' rows
  of the main input, and "keep the input's layout" is a candidate, so consecutive
  split layers exchange only halo rows;
* look-ahead: candidates are scored by a roll-out of the next layers
  (:mod:`.rollout`), which lets a split start early when it pays off later;
* layer fusion (:mod:`.fusion`): a chain of splittable layers runs per device from
  one input slice, recomputing overlapping halo rows instead of exchanging them;
* branch concurrency: a branch layer may go whole to an idle device;
* placement orders (:func:`level_order`): passes also place layers level by
  level, so every device interleaves parallel branches and one branch waiting
  for halo rows does not hold up the others;
* rebalancing: "keep the input's layout" is also offered with rows re-shared by
  speed, and fused splits are re-shared by the arrival times of their slices
  (:func:`.fusion.arrival_shares`);
* a portfolio of passes (:func:`portfolio`: every split width, plain and with
  look-ahead, each placement order) plus the whole model on each single device
  (splitting is never forced); the plan with the lowest latency (timed by
  :func:`.replay.plan_latency`) is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from ...models.edgeflow import EdgeflowPlan, EdgeflowProblem
from ...models.result import Role, SolveStatus
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver, solvers
from .baselines import single_device_parts
from .builder import PlanBuilder, Trial, build_plan, memory_overflow, parts_from_counts, whole
from .fusion import MAX_FUSED_LAYERS, SHARE_REFINEMENTS, best_fused_chain
from .replay import plan_latency
from .rollout import follow_trial, rollout_finish
from .shares import largest_remainder, split_widths, unit_seconds, water_fill

__all__ = ["progressive_plan"]

#: Layers a candidate's roll-out looks ahead.
DEFAULT_LOOKAHEAD = 8
#: Whole-layer candidates (the soonest finishing) scored by a roll-out.
ROLLOUT_SINGLES = 3
#: Longest fused chain of the portfolio's last pass.
LONG_FUSED_LAYERS = 8


def _layout_order(builder: PlanBuilder, layer: str, devices: list[str]) -> list[str]:
    """Devices ordered by where their rows of the layer's first input sit (aligned splits)."""
    problem = builder.problem
    inputs = problem.layer_by_name[layer].inputs
    index = {d.name: k for k, d in enumerate(problem.devices)}
    centre: dict[str, float] = {}
    if inputs:
        for unit in builder.pieces[inputs[0]]:
            centre.setdefault(unit.device, (unit.start + unit.stop) / 2)
    return sorted(devices, key=lambda d: (centre.get(d, float("inf")), index[d]))


def _split_trial(
    builder: PlanBuilder, layer: str, devices: list[str], ready: dict[str, float]
) -> Trial | None:
    """Split ``layer`` over ``devices`` by the share LP; None when a device would get no rows."""
    problem = builder.problem
    spec = problem.layer_by_name[layer]
    per_row = [
        max(spec.flops_per_row / problem.device_by_name[d].flops_per_s, 1e-12) for d in devices
    ]
    ready_s = [ready[d] + problem.device_by_name[d].overhead_s for d in devices]
    shares = water_fill(ready_s, per_row, spec.out_rows)
    counts = largest_remainder(shares, spec.out_rows)
    if min(counts) == 0:
        return None
    ordered = _layout_order(builder, layer, devices)
    by_device = dict(zip(devices, counts, strict=True))
    return builder.trial(layer, parts_from_counts(ordered, [by_device[d] for d in ordered]))


def _input_layout_devices(builder: PlanBuilder, layer: str) -> list[str]:
    """Devices holding rows of the layer's first input, fastest first (problem order among equals)."""
    problem = builder.problem
    inputs = problem.layer_by_name[layer].inputs
    held = {unit.device for unit in builder.pieces[inputs[0]]} if inputs else set()
    return [
        d.name
        for d in sorted(problem.devices, key=lambda d: (-d.flops_per_s, problem.devices.index(d)))
        if d.name in held
    ]


def _split_candidates(
    builder: PlanBuilder,
    layer: str,
    chosen: list[str],
    singles: dict[str, Trial],
    proportional: bool,
) -> list[Trial]:
    """Splits of ``layer`` over ``chosen`` by the share LP: from the devices' whole-layer
    start times, refined once with the starts the split gets, and with ``proportional``
    also in proportion to speed (entering a split layout may pay off only later)."""
    problem = builder.problem
    out = []
    # First guess of each device's start: when it could start the whole layer.
    ready = {d: singles[d].units[0].finish_s - unit_seconds(problem, layer, d) for d in chosen}
    trial = _split_trial(builder, layer, chosen, ready)
    if trial is not None:
        out.append(trial)
        started = {
            u.device: u.finish_s - unit_seconds(problem, layer, u.device, u.stop - u.start)
            for u in trial.units
        }
        refined = _split_trial(builder, layer, chosen, started)
        if refined is not None:
            out.append(refined)
    if proportional:
        even = _split_trial(builder, layer, chosen, dict.fromkeys(chosen, 0.0))
        if even is not None:
            out.append(even)
    return out


def _parts_key(trial: Trial) -> tuple[tuple[str, int, int], ...]:
    return tuple((u.device, u.start, u.stop) for u in trial.units)


def _best_trial(
    builder: PlanBuilder,
    layer: str,
    order: Sequence[str],
    position: int,
    max_split: int,
    lookahead: int,
) -> tuple[Trial, float]:
    """The best single-layer candidate and its score (roll-out finish, or its own finish)."""
    problem = builder.problem
    pin = problem.pinned_device(layer)
    if pin is not None:
        pinned = builder.trial(layer, whole(problem, layer, pin))
        return pinned, pinned.finish_s
    singles = {d.name: builder.trial(layer, whole(problem, layer, d.name)) for d in problem.devices}
    candidates = list(singles.values())
    if lookahead > 0:  # roll out only the devices that would finish the whole layer soonest
        candidates = sorted(candidates, key=lambda t: (t.finish_s, t.bytes_moved))[:ROLLOUT_SINGLES]
    spec = problem.layer_by_name[layer]
    if spec.splittable and spec.out_rows > 1 and spec.work_flops > 0:
        fastest = sorted(singles, key=lambda d: (singles[d].finish_s, list(singles).index(d)))
        widest = min(max_split, len(fastest), spec.out_rows)
        # Roll-outs are costly: with look-ahead only a few spread widths are scored.
        widths = split_widths(widest) if lookahead > 0 else range(2, widest + 1)
        device_sets = [fastest[:k] for k in widths]
        layout = _input_layout_devices(builder, layer)
        if 1 < len(layout) <= spec.out_rows and layout not in device_sets:
            # Keep the devices of the input's layout but re-share the rows: a layout
            # inherited from an uneven split (e.g. a fused chain whose slices
            # arrived at different times) is rebalanced for halo rows only.
            device_sets.append(layout)
        for chosen in device_sets:
            candidates += _split_candidates(builder, layer, chosen, singles, lookahead > 0)
    if spec.splittable and spec.inputs:
        # Keep the input's layout (halo rows only), as it is and rebalanced by speed.
        candidates += [follow_trial(builder, layer, balanced) for balanced in (False, True)]
    # The same rows on the same devices can come from several rules: score each once.
    distinct = {_parts_key(t): t for t in reversed(candidates)}
    candidates = [t for t in candidates if distinct[_parts_key(t)] is t]
    fitting = [t for t in candidates if builder.fits(layer, [u.device for u in t.units])]
    candidates = fitting or candidates  # none fits: keep going; the plan is rejected below
    if lookahead <= 0:
        best = min(candidates, key=lambda t: (t.finish_s, t.bytes_moved))
        return best, best.finish_s
    scored = [
        (rollout_finish(builder, [t], order, position, lookahead), t.finish_s, t.bytes_moved, k)
        for k, t in enumerate(candidates)
    ]
    score = min(scored)
    return candidates[score[3]], score[0]


def level_order(problem: EdgeflowProblem) -> list[str]:
    """Layers by level (longest path from an input tensor, in edges), ties in topological order.

    A topological order that interleaves parallel branches: every device then
    runs one layer of each branch before the next layer of any, so a branch
    waiting for rows from another device does not hold up the others.
    """
    level: dict[str, int] = {}
    for name in problem.topological_names:
        inputs = problem.layer_by_name[name].inputs
        level[name] = 1 + max((level[p] for p in inputs), default=-1)
    position = {name: k for k, name in enumerate(problem.topological_names)}
    return sorted(problem.topological_names, key=lambda name: (level[name], position[name]))


def placement_orders(problem: EdgeflowProblem) -> dict[str, list[str]]:
    """The distinct placement orders the passes try, by name: ``level`` (:func:`level_order`),
    then ``topological`` (the problem's) when it differs."""
    orders = {"level": level_order(problem)}
    if problem.topological_names != orders["level"]:
        orders["topological"] = list(problem.topological_names)
    return orders


class Pass(NamedTuple):
    """One progressive pass of the portfolio :func:`solve_progressive` runs."""

    order: str  # a key of placement_orders
    max_split: int
    lookahead: int
    share_refinements: int
    fused_layers: int = MAX_FUSED_LAYERS


def portfolio(problem: EdgeflowProblem, lookahead: int) -> list[Pass]:
    """The passes, cheap ones first (a time limit cuts the roll-outs, never a plain pass).

    Every order gets the plain passes for every split width; with ``lookahead``
    the level order then gets roll-out passes with and without the arrival-time
    re-sharing of fused chains (greedy choices scored over a short horizon can
    go either way), the topological order with it. The second roll-out pass of
    each keeps single layers whole and looks twice as far: it weighs fused,
    split chains against keeping the model on one fast device. The last pass
    fuses chains of up to :data:`LONG_FUSED_LAYERS` layers (a whole stem of
    convolutions from one input slice per device).
    """
    devices = len(problem.devices)
    orders = placement_orders(problem)
    widths = [devices, *range(1, devices)]
    passes = [Pass(order, width, 0, 0) for order in orders for width in widths]
    if lookahead > 0:
        looks = [(devices, lookahead), (1, 2 * lookahead)]
        passes += [
            Pass(order, width, depth, refinements)
            for order, refinement_options in (
                ("level", (SHARE_REFINEMENTS, 0)),
                ("topological", (SHARE_REFINEMENTS,)),
            )
            if order in orders
            for refinements in refinement_options
            for width, depth in looks
        ]
        passes.append(Pass("level", 1, 2 * lookahead, SHARE_REFINEMENTS, LONG_FUSED_LAYERS))
    return passes


def progressive_plan(
    problem: EdgeflowProblem,
    max_split: int,
    lookahead: int = 0,
    expired: Callable[[], bool] | None = None,
    order: Sequence[str] | None = None,
    share_refinements: int = SHARE_REFINEMENTS,
    fused_layers: int = MAX_FUSED_LAYERS,
) -> tuple[EdgeflowPlan, float] | None:
    """One progressive pass splitting layers over at most ``max_split`` devices.

    With ``lookahead > 0`` each candidate is scored by the estimated finish of
    the next ``lookahead`` layers when they keep its row layout (a roll-out),
    instead of by its own finish time alone. Layers are placed, and every
    device runs its units, in ``order`` (a topological order; default the
    problem's). ``share_refinements`` and ``fused_layers`` (the longest fused
    chain) are passed to :func:`.fusion.best_fused_chain`.

    Returns
    -------
    tuple or None
        The executable plan and its estimated latency in seconds (the builder's
        estimate, not the simulator's); None when ``expired()`` turned true
        between two layers.
    """
    builder = PlanBuilder(problem)
    order = list(problem.topological_names if order is None else order)
    for position, layer in enumerate(order):
        if expired is not None and expired():
            return None
        if layer in builder.pieces:  # placed already, as part of a fused chain
            continue
        trial, score = _best_trial(builder, layer, order, position, max_split, lookahead)
        fused = None
        if lookahead > 0:  # fused chains are split over up to every device
            fused = best_fused_chain(
                builder,
                layer,
                order,
                position,
                lookahead,
                len(problem.devices),
                share_refinements,
                fused_layers,
            )
        if fused is not None and fused[0] < score:
            for step in fused[1]:
                builder.commit(step)
            continue
        builder.commit(trial)
    latency = builder.deliver_outputs()
    return builder.plan(), latency


@register_solver(
    "edgeflow",
    deterministic=False,
    kind="edgeflow",
    role=Role.HEURISTIC,
    auto_rank=0,
    extra_options={
        "lookahead": Option(
            f"layers the roll-out looks ahead (default {DEFAULT_LOOKAHEAD}; 0 = plain pass only)",
            types=("int",),
            minimum=0,
        ),
        "baseline_candidates": Option(
            "let the baselines' plans compete with the passes (default true; the winner is "
            "named in metrics['pass'])",
            types=("bool",),
        ),
    },
    description="ours: EdgeFlow progressive partitioning (per-layer share LP, aligned splits, fusion, branch concurrency, level-order placement, pass portfolio)",
)
def solve_progressive(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """Run the passes of :func:`portfolio` (and the whole model on each device); keep the
    fastest plan that fits memory, timed by :func:`.replay.plan_latency`.

    With ``baseline_candidates`` (default), the plans of the registered baselines
    (Neurosurgeon's cut, DADS, MoDNN, CoEdge, HEFT) compete too, after the passes
    and in the time left (a baseline cut by the limit offers its best so far), as
    the pipeline kind's ``topo`` does: on small
    random DAGs a single cut sometimes beats every pass (5 of 40 in our check),
    and a planner a scheduler calls should never return the worse plan.
    ``metrics["pass"]`` names a baseline when its plan wins, so benchmarks can
    count how often that happens.
    """
    lookahead = int(options.option("lookahead", DEFAULT_LOOKAHEAD))
    orders = placement_orders(problem)
    # (overflows memory, latency in seconds, which pass, plan): the least key wins.
    best: tuple[bool, float, Pass | str, EdgeflowPlan] | None = None

    def keep(plan: EdgeflowPlan, run: Pass | str) -> None:
        nonlocal best
        key = (memory_overflow(problem, plan) is not None, plan_latency(problem, plan))
        if best is None or key < best[:2]:
            best = (*key, run, plan)

    for device in problem.devices:  # not splitting at all is a candidate too
        keep(
            build_plan(problem, single_device_parts(problem, device.name))[0],
            f"whole model on {device.name}",
        )
    for number, step in enumerate(portfolio(problem, lookahead)):
        built = progressive_plan(
            problem,
            step.max_split,
            step.lookahead,
            options.expired if number > 0 else None,  # the first pass always completes
            orders[step.order],
            step.share_refinements,
            step.fused_layers,
        )
        if built is None:
            break
        keep(built[0], step)
    if options.option("baseline_candidates", True):
        for name, plan in baseline_plans(problem, options):
            keep(plan, f"baseline candidate: {name}")
    assert best is not None
    overflows, latency, run, plan = best
    if overflows:
        return SolverOutput(
            SolveStatus.NO_SOLUTION,
            metrics={"reason": f"no plan found that fits memory: {memory_overflow(problem, plan)}"},
        )
    status = SolveStatus.FEASIBLE if not options.expired() else SolveStatus.TIME_LIMIT
    metrics: dict[str, object] = (
        {"pass": run}
        if isinstance(run, str)
        else {
            "placement_order": run.order,
            "max_split": run.max_split,
            "lookahead": run.lookahead,
            "share_refinements": run.share_refinements,
            "fused_layers": run.fused_layers,
        }
    )
    return SolverOutput(status, plan=plan, objective=latency, metrics=metrics)


def baseline_plans(
    problem: EdgeflowProblem, options: SolveOptions
) -> Iterator[tuple[str, EdgeflowPlan]]:
    """The registered edgeflow baselines' plans, while the time limit allows."""
    for spec in solvers("edgeflow"):
        if spec.role is not Role.BASELINE or spec.name == "single-device":
            continue  # single devices are candidates already
        if options.expired():
            return
        output = spec.function(problem, options)
        if output.plan is not None:
            yield spec.name, output.plan
