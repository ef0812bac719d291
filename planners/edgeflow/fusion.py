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

from ...models.edgeflow import EdgeflowProblem, required_rows
from .builder import Part, PlanBuilder, Trial, parts_from_counts
from .rollout import rollout_finish
from .shares import largest_remainder

__all__ = ["best_fused_chain", "fusable_chain", "fused_parts"]

#: Longest chain of layers fused into one unit per device.
MAX_FUSED_LAYERS = 4


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


def best_fused_chain(
    builder: PlanBuilder,
    first: str,
    order: Sequence[str],
    position: int,
    lookahead: int,
    max_split: int,
) -> tuple[float, list[Trial]] | None:
    """The best fused chain starting at ``first`` (score = roll-out finish, seconds), or None.

    Candidates: every chain length from 2, final rows split over the ``k``
    fastest devices in proportion to speed (every ``2 <= k <= max_split`` up to 4
    devices, else 2, about half and all of them), laid out in the order
    of the devices' rows of the chain's input.
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
    chain = fusable_chain(problem, first)
    if len(chain) < 2:
        return None
    by_speed = sorted(problem.devices, key=lambda d: (-d.flops_per_s, problem.devices.index(d)))
    centre: dict[str, float] = {}
    for unit in builder.pieces[spec.inputs[0]]:
        centre.setdefault(unit.device, (unit.start + unit.stop) / 2)
    best: tuple[float, list[Trial]] | None = None
    for length in range(2, len(chain) + 1):
        last = problem.layer_by_name[chain[length - 1]]
        widest = min(max_split, len(by_speed), last.out_rows)
        for k in sorted(
            {2, (widest + 2) // 2, widest} if widest > 4 else set(range(2, widest + 1))
        ):
            chosen = by_speed[:k]
            laid_out = sorted(
                chosen, key=lambda d: (centre.get(d.name, float("inf")), problem.devices.index(d))
            )
            counts = largest_remainder([d.flops_per_s for d in laid_out], last.out_rows)
            if min(counts) == 0:
                continue
            final = parts_from_counts([d.name for d in laid_out], counts)
            shadow = builder.shadow()
            trials = []
            for name, parts in zip(
                chain[:length], fused_parts(problem, chain[:length], final), strict=True
            ):
                if not builder.fits(name, [p.device for p in parts]):
                    break
                trial = shadow.trial(name, parts)
                shadow.commit(trial, record=False)
                trials.append(trial)
            else:
                score = rollout_finish(builder, trials, order, position, lookahead)
                if best is None or score < best[0]:
                    best = (score, trials)
    return best
