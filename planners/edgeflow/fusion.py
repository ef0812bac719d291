"""Layer fusion: a chain of splittable layers computed per device from one input slice.

Improvement over plain progressive partitioning (our addition, in the spirit of
fused-layer tiling): instead of exchanging halo rows after every layer, each
device computes the rows of the chain's first layers that its final rows need
(the receptive field, recomputing the overlap that a neighbour also computes),
so only the chain's input is fetched. Row ranges of the fused layers then
overlap across devices, which the plan format allows.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...models.edgeflow import EdgeDevice, EdgeflowProblem, required_rows
from .builder import Part, PlanBuilder, Trial, parts_from_counts
from .rollout import rollout_finish
from .shares import largest_remainder, split_widths, unit_seconds, water_fill

__all__ = ["arrival_shares", "best_fused_chain", "fusable_chain", "fused_parts"]

#: Longest chain of layers fused into one unit per device (by default).
MAX_FUSED_LAYERS = 4
#: Times the rows of a fused split are re-shared by the arrival times it gets.
SHARE_REFINEMENTS = 2
#: Fused splits (the best by roll-out) that are re-shared.
REFINED_CANDIDATES = 2


def fusable_chain(
    problem: EdgeflowProblem, first: str, max_length: int = MAX_FUSED_LAYERS
) -> list[str]:
    """``first`` and its successors while each is the only consumer of the previous one,
    reads only it, is splittable and not pinned."""
    chain = [first]
    while len(chain) < max_length:
        consumers = problem.consumers[chain[-1]]
        if len(consumers) != 1:
            break
        following = problem.layer_by_name[consumers[0]]
        if not following.splittable or following.inputs != [chain[-1]] or following.out_rows <= 1:
            break
        if problem.pinned_device(following.name) is not None:
            break
        chain.append(following.name)
    return chain


def fused_parts(problem: EdgeflowProblem, chain: list[str], final: list[Part]) -> list[list[Part]]:
    """Parts of every chain layer: ``final`` for the last, receptive fields backwards for the rest.

    Rows that no later row needs (strides larger than the kernel, VALID borders)
    go to the neighbouring part, so every layer stays covered.
    """
    parts = [final]
    for index in range(len(chain) - 1, 0, -1):
        layer = problem.layer_by_name[chain[index]]
        producer = problem.layer_by_name[chain[index - 1]]
        expanded = []
        for part in parts[0]:
            a, b = required_rows(layer, producer, part.start, part.stop)
            if a < b:
                expanded.append(Part(part.device, a, b))
        expanded.sort(key=lambda p: (p.start, p.stop))
        filled = []
        for k, part in enumerate(expanded):
            start = 0 if k == 0 else part.start
            stop = (
                producer.out_rows
                if k == len(expanded) - 1
                else max(part.stop, expanded[k + 1].start)
            )
            filled.append(Part(part.device, start, stop))
        parts.insert(0, filled)
    return parts


def _chain_trials(builder: PlanBuilder, chain: list[str], final: list[Part]) -> list[Trial] | None:
    """The chain's layers placed one after another as fused parts ending in ``final``
    (on a shadow of ``builder``); None when a device cannot hold a layer's weights, or
    when the final rows need no row of some layer of the chain (padding and strides can
    skip every row): that layer would get no unit, so the chain is not fused."""
    shadow = builder.shadow()
    trials = []
    for name, parts in zip(chain, fused_parts(builder.problem, chain, final), strict=True):
        if not parts or not builder.fits(name, [p.device for p in parts]):
            return None
        trial = shadow.trial(name, parts)
        shadow.commit(trial, record=False)
        trials.append(trial)
    return trials


def arrival_shares(
    problem: EdgeflowProblem, trials: list[Trial], devices: list[str], rows: int
) -> list[int]:
    """Final rows per device (in ``devices`` order) that let the fused chain finish together.

    The share LP of :func:`.shares.water_fill` applied to the whole chain: each
    device's ready time is when its first fused unit started in ``trials`` (its
    input slice had arrived), its seconds per final row are its chain seconds in
    ``trials`` over its final rows. A device whose slice arrives late gets fewer
    rows (ours; the plain split ignores arrival times).
    """
    ready = dict.fromkeys(devices, float("inf"))
    busy = dict.fromkeys(devices, 0.0)
    for trial in trials:
        for unit in trial.units:
            seconds = unit_seconds(problem, unit.layer, unit.device, unit.stop - unit.start)
            ready[unit.device] = min(ready[unit.device], unit.finish_s - seconds)
            busy[unit.device] += seconds
    final_rows = dict.fromkeys(devices, 0)
    for unit in trials[-1].units:
        final_rows[unit.device] += unit.stop - unit.start
    per_row = [busy[d] / max(final_rows[d], 1) for d in devices]
    shares = water_fill([ready[d] for d in devices], per_row, rows)
    return largest_remainder(shares, rows)


def best_fused_chain(
    builder: PlanBuilder,
    first: str,
    order: Sequence[str],
    position: int,
    lookahead: int,
    max_split: int,
    refinements: int = SHARE_REFINEMENTS,
    max_layers: int = MAX_FUSED_LAYERS,
) -> tuple[float, list[Trial]] | None:
    """The best fused chain starting at ``first`` (score = roll-out finish, seconds), or None.

    Candidates: every chain length from 2 to ``max_layers``, final rows split over the ``k``
    fastest devices (holders of the chain's input first among equals; ``k`` from
    :func:`.shares.split_widths` of ``max_split``), and over the holders of the
    chain's input with the fastest others,
    laid out in the order of the devices' rows of the chain's input; the rows
    are shared in proportion to speed. The :data:`REFINED_CANDIDATES` best of
    these are then re-shared up to ``refinements`` times by :func:`arrival_shares`.
    """
    problem = builder.problem
    spec = problem.layer_by_name[first]
    if (
        not spec.splittable
        or not spec.inputs
        or spec.work_flops <= 0
        or problem.pinned_device(first) is not None
    ):
        return None
    chain = fusable_chain(problem, first, max_layers)
    if len(chain) < 2:
        return None
    centre: dict[str, float] = {}
    for unit in builder.pieces[spec.inputs[0]]:
        centre.setdefault(unit.device, (unit.start + unit.stop) / 2)
    by_speed = sorted(
        problem.devices,
        key=lambda d: (-d.flops_per_s, d.name not in centre, problem.devices.index(d)),
    )
    holders = [d for d in by_speed if d.name in centre]
    proportional: list[tuple[float, int, int, list[str], list[Trial]]] = []
    for length in range(2, len(chain) + 1):
        last = problem.layer_by_name[chain[length - 1]]
        widest = min(max_split, len(by_speed), last.out_rows)
        device_sets: list[list[EdgeDevice]] = []
        for k in split_widths(widest):
            device_sets.append(by_speed[:k])
            # The holders of the chain's input with the fastest others: a holder
            # computes its slice without waiting for it to arrive.
            with_holders = (
                holders[:k] + [d for d in by_speed if d not in holders][: k - len(holders)]
            )
            if with_holders not in device_sets:
                device_sets.append(with_holders)
        for chosen in device_sets:
            laid_out = [
                d.name
                for d in sorted(
                    chosen,
                    key=lambda d: (centre.get(d.name, float("inf")), problem.devices.index(d)),
                )
            ]
            counts = largest_remainder(
                [problem.device_by_name[d].flops_per_s for d in laid_out], last.out_rows
            )
            if min(counts) == 0:
                continue
            trials = _chain_trials(builder, chain[:length], parts_from_counts(laid_out, counts))
            if trials is not None:
                score = rollout_finish(builder, trials, order, position, lookahead)
                proportional.append((score, len(proportional), length, laid_out, trials))
    proportional.sort(key=lambda candidate: candidate[:2])
    best = (proportional[0][0], proportional[0][4]) if proportional else None
    # Re-share the most promising splits by the arrival times their slices get.
    for _, _, length, laid_out, trials in proportional[:REFINED_CANDIDATES]:
        rows = problem.layer_by_name[chain[length - 1]].out_rows
        current = [u.stop - u.start for u in trials[-1].units]
        tried = {tuple(current)}
        for _ in range(refinements):
            target = arrival_shares(problem, trials, laid_out, rows)
            # Equal finish times ignore where the chain's output goes next: the
            # half-way shares are offered too, and the roll-out decides.
            halfway = largest_remainder([a + b for a, b in zip(current, target, strict=True)], rows)
            scored = []
            for counts in (target, halfway):
                if min(counts) == 0 or tuple(counts) in tried:
                    continue
                tried.add(tuple(counts))
                refined = _chain_trials(
                    builder, chain[:length], parts_from_counts(laid_out, counts)
                )
                if refined is not None:
                    score = rollout_finish(builder, refined, order, position, lookahead)
                    scored.append((score, counts, refined))
                    if best is None or score < best[0]:
                        best = (score, refined)
            if not scored or scored[0][1] != target:
                break
            current, trials = target, scored[0][2]
    return best
