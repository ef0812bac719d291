"""Closed-form lower bound on the iteration time, and the memory pre-check.

Both follow from the semantics in ``models/pipeline.py`` alone.
"""

from __future__ import annotations

from ...models.pipeline import PipelineProblem

GB = 1e9


def iteration_lower_bound(problem: PipelineProblem) -> float:
    """A lower bound on the iteration time, seconds.

    Every micro-batch's forward and backward work must be done somewhere, and a
    GPU of speed ``v`` does at most ``v`` seconds of speed-1 work per second; so
    the iteration takes at least ``K * sum(forward_s + backward_s) / sum(speed)``.
    The work of one micro-batch also forms a chain through a layer's forward and
    backward that no split across replicas can beat:
    ``max_layer (forward_s + backward_s) / sum(speed)`` is dominated by the first
    term, so the bound is that first term.
    """
    work_s = sum(layer.forward_s + layer.backward_s for layer in problem.layers)
    total_speed = sum(gpu.speed for gpu in problem.cluster.gpus)
    return problem.microbatches * work_s / total_speed


def memory_infeasibility(problem: PipelineProblem) -> str | None:
    """Why no plan can fit in GPU memory, or None when that is not ruled out.

    Necessary conditions only: every layer's weights and optimizer state fit on
    the largest GPU (a layer cannot be split), and the model's weights and
    optimizer state fit on all GPUs together (replicas only add copies).
    """
    factor = 1.0 + problem.optimizer_state_factor
    gpus = problem.cluster.gpus
    largest = max(gpus, key=lambda g: g.memory_bytes)
    for index, layer in enumerate(problem.layers):
        need = factor * layer.parameter_bytes
        if need > largest.memory_bytes:
            return (
                f"layer {index} ({layer.name}) needs {need / GB:.1f} GB for weights and optimizer state, "
                f"largest GPU holds {largest.memory_bytes / GB:.1f} GB"
            )
    need = factor * sum(layer.parameter_bytes for layer in problem.layers)
    total = sum(g.memory_bytes for g in gpus)
    if need > total:
        return (
            f"layers 0-{len(problem.layers) - 1} need {need / GB:.1f} GB for weights and optimizer state, "
            f"the {len(gpus)} GPUs hold {total / GB:.1f} GB together"
        )
    return None
