"""Roll-outs: how a partial plan would continue if every later layer kept its input's row layout."""

from __future__ import annotations

from collections.abc import Sequence

from .builder import PlanBuilder, Trial, parts_from_counts, whole
from .shares import largest_remainder

__all__ = ["follow_trial", "rollout_finish"]

ROLLOUT_BALANCED = True


def follow_trial(builder: PlanBuilder, layer: str, balanced: bool = ROLLOUT_BALANCED) -> Trial:
    """The roll-out policy: keep the first input's row layout, or the best device for whole layers.

    With ``balanced`` the layout keeps its devices and their order but the rows
    are shared in proportion to speed (an uneven layout is rebalanced at once);
    otherwise in proportion to the input's rows.
    """
    problem = builder.problem
    spec = problem.layer_by_name[layer]
    pin = problem.pinned_device(layer)
    if pin is not None:
        return builder.trial(layer, whole(problem, layer, pin))
    if spec.splittable and spec.inputs:
        pieces = sorted(builder.pieces[spec.inputs[0]], key=lambda u: (u.start, u.device))
        if len(pieces) > 1:
            weights = [
                problem.device_by_name[u.device].flops_per_s if balanced else u.stop - u.start
                for u in pieces
            ]
            counts = largest_remainder(weights, spec.out_rows)
            if min(counts) > 0:
                return builder.trial(layer, parts_from_counts([u.device for u in pieces], counts))
    holders = sorted({u.device for p in spec.inputs for u in builder.pieces[p]}) or [
        problem.input_device
    ]
    return min(
        (builder.trial(layer, whole(problem, layer, d)) for d in holders), key=lambda t: t.finish_s
    )


def rollout_finish(
    builder: PlanBuilder,
    trials: list[Trial],
    order: Sequence[str],
    position: int,
    lookahead: int,
) -> float:
    """Estimated finish (seconds) of the layers up to ``order[position + lookahead]``
    (``order`` is the placement order, a topological one) if ``trials`` are taken
    and every later layer keeps its input's layout."""
    shadow = builder.shadow()
    finish = 0.0
    for trial in trials:
        shadow.commit(trial, record=False)
        finish = max(finish, trial.finish_s)
    for name in order[position : position + 1 + lookahead]:
        if name in shadow.pieces:
            continue
        step = follow_trial(shadow, name)
        shadow.commit(step, record=False)
        finish = max(finish, step.finish_s)
    return finish
