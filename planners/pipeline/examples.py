"""Small pipeline instances every pipeline solver must handle (the conformance tests use them)."""

from __future__ import annotations

from ...models.pipeline import PipelineLayer, PipelineProblem
from .clusters import flat

__all__ = ["small_examples"]


def _chain(name: str, forward_s: list[float], gpus: int, microbatches: int) -> PipelineProblem:
    layers = [
        PipelineLayer(
            name=f"{name}-l{i}",
            forward_s=f,
            backward_s=2 * f,
            activation_bytes=1e6,
            parameter_bytes=4e6,
        )
        for i, f in enumerate(forward_s)
    ]
    return PipelineProblem(
        name=name,
        layers=layers,
        edges=[(i, i + 1) for i in range(len(layers) - 1)],
        cluster=flat(gpus, 1e10, memory=16e9),
        microbatches=microbatches,
    )


def small_examples() -> list[PipelineProblem]:
    """A balanced chain on 2 GPUs, an unbalanced chain on 3 GPUs, and a diamond DAG on 2 GPUs."""
    diamond = _chain("diamond", [0.002, 0.001, 0.003, 0.002], 2, 4)
    diamond = PipelineProblem.model_validate({**diamond.model_dump(), "edges": [(0, 1), (0, 2), (1, 3), (2, 3)]})
    return [
        _chain("chain-balanced", [0.001, 0.001, 0.001, 0.001], 2, 4),
        _chain("chain-unbalanced", [0.004, 0.001, 0.001, 0.002, 0.003], 3, 2),
        diamond,
    ]
