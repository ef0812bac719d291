"""Importers the CLI mounts as ``distplan import paleo`` and ``distplan import pipedream --kind edgeflow``.

Each function takes typer-annotated arguments and returns the problem; the CLI
adds ``--out``. Bad arguments raise :class:`BadInput` naming the option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...models.edgeflow import EdgeCluster, EdgeflowProblem, Layer
from ...models.errors import BadInput
from .paleo import read_paleo
from .presets import PRESETS, load_cluster

__all__ = ["import_paleo", "import_pipedream", "problem_from"]

#: FLOP/s assumed for the GPU PipeDream profiled on when turning its milliseconds into work.
PIPEDREAM_REFERENCE_FLOPS = 10e12

DevicesOption = Annotated[
    str, typer.Option("--devices", help=f"preset ({', '.join(PRESETS)}) or cluster JSON file")
]
NameOption = Annotated[
    str | None, typer.Option(help="instance name (default: from the file and preset)")
]


def problem_from(name: str, layers: list[Layer], cluster: EdgeCluster) -> EdgeflowProblem:
    """An instance from layers and a cluster."""
    return EdgeflowProblem(
        name=name,
        layers=layers,
        devices=cluster.devices,
        network=cluster.network,
        input_device=cluster.input_device,
        output_device=cluster.output_device,
    )


def import_paleo(
    spec: Annotated[Path, typer.Argument(help="Paleo architecture spec (nets/*.json)")],
    devices: DevicesOption = "rpi4x4-wifi",
    name: NameOption = None,
    bytes_per_element: Annotated[
        int, typer.Option(help="bytes per tensor element (4 = float32)")
    ] = 4,
) -> EdgeflowProblem:
    """Build an edgeflow instance from a Paleo spec at batch 1 (splittable conv/pool/concat layers)."""
    if not 1 <= bytes_per_element <= 8:
        raise BadInput(field="--bytes-per-element", reason=f"must be 1..8, got {bytes_per_element}")
    cluster = load_cluster(devices)
    _, layers = read_paleo(spec, bytes_per_element)
    label = Path(devices).stem if devices not in PRESETS else devices
    return problem_from(name or f"{spec.stem}__{label}", layers, cluster)


def import_pipedream(
    graph: Annotated[Path, typer.Argument(help="PipeDream profile graph.txt")],
    minibatch: Annotated[
        int,
        typer.Option(
            help="images in the profiled minibatch (times and sizes are divided by it; 256 for resnet18, 128 for inception_v3)"
        ),
    ],
    devices: DevicesOption = "rpi4x4-wifi",
    reference_flops: Annotated[
        float, typer.Option(help="FLOP/s of the profiling GPU (ms -> FLOPs)")
    ] = PIPEDREAM_REFERENCE_FLOPS,
    name: NameOption = None,
) -> EdgeflowProblem:
    """Build an edgeflow instance from a PipeDream profile: whole (non-splittable) layers, measured work.

    PipeDream profiles give milliseconds and bytes per minibatch and no tensor
    shapes, so every layer is one row and whole-only; work is
    ``forward_ms / 1000 / minibatch * reference_flops`` FLOPs.
    """
    from ..common.pipedream_graph import layer_name, parse_profile

    if not 1 <= minibatch <= 100_000:
        raise BadInput(field="--minibatch", reason=f"must be 1..100000, got {minibatch}")
    if not 1e6 <= reference_flops <= 1e18:
        raise BadInput(
            field="--reference-flops",
            reason=f"must be between 1e6 and 1e18 FLOP/s, got {reference_flops}",
        )
    if not graph.is_file():
        raise BadInput(field=str(graph), reason="cannot read: no such file")
    cluster = load_cluster(devices)
    try:
        profile = parse_profile(graph)
    except ValueError as exc:
        raise BadInput(field=str(graph), reason=str(exc)) from exc
    names = [f"{k}:{layer_name(n, 40)}" for k, n in enumerate(profile.names)]
    inputs: list[list[str]] = [[] for _ in names]
    for u, v in profile.edges:
        inputs[v].append(names[u])
    layers = [Layer(name="input", out_rows=1, out_bytes=profile.activation_bytes[0] / minibatch)]
    for k, layer in enumerate(names):
        is_input = not inputs[k] and profile.names[k].split(": ", 1)[-1].startswith("Input")
        if is_input:
            layers[0] = Layer(
                name=layer, out_rows=1, out_bytes=profile.activation_bytes[k] / minibatch
            )
            continue
        layers.append(
            Layer(
                name=layer,
                inputs=inputs[k] or [layers[0].name],
                work_flops=profile.forward_ms[k] / 1000.0 / minibatch * reference_flops,
                out_bytes=profile.activation_bytes[k] / minibatch,
                weight_bytes=profile.parameter_bytes[k],
            )
        )
    label = Path(devices).stem if devices not in PRESETS else devices
    return problem_from(name or f"{graph.parent.name}_pipedream__{label}", layers, cluster)
