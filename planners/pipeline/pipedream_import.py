"""Import PipeDream per-layer profiles (``graph.txt``) as pipeline problems.

The file format and its reader live in :mod:`distplan.planners.common.pipedream_graph`;
this module turns a parsed profile into a :class:`~distplan.models.pipeline.PipelineProblem`.
"""

from __future__ import annotations

from pathlib import Path

from ...models.errors import BadInput
from ...models.pipeline import (
    DEFAULT_LAUNCH_OVERHEAD_S,
    Cluster,
    PipelineLayer,
    PipelineProblem,
)
from ..common.pipedream_graph import layer_name, parse_profile

__all__ = ["PROFILED_MINIBATCH", "import_pipedream"]

#: Samples per profiled minibatch of the PipeDream profiles, read off their tensors:
#: the image models' ``Input`` output is ``B x 3 x H x W`` fp32 bytes (224 x 224:
#: 602112 bytes a sample, so alexnet, resnet18 and squeezenet1_0 with 154140672
#: bytes have B = 256; vgg16, resnet50, resnext50 and nasnetamobile with 77070336
#: have B = 128; resnet101 and resnext101 with 38535168 have B = 64;
#: inception_v3 at 299 x 299: 137319936 = 128 x 1072812); gnmt_large's LSTM hidden
#: state is ``B x 1024`` fp32 = 524288 bytes, so B = 128.
PROFILED_MINIBATCH: dict[str, int] = {
    "alexnet": 256,
    "resnet18": 256,
    "squeezenet1_0": 256,
    "vgg16": 128,
    "resnet50": 128,
    "resnext50": 128,
    "nasnetamobile": 128,
    "inception_v3": 128,
    "gnmt_large": 128,
    "resnet101": 64,
    "resnext101": 64,
}


def import_pipedream(
    graph_path: str | Path,
    cluster: Cluster,
    microbatches: int,
    name: str | None = None,
    *,
    minibatch_samples: int | None = None,
    launch_overhead_s: float = DEFAULT_LAUNCH_OVERHEAD_S,
    zero_input_time: bool = True,
) -> PipelineProblem:
    """Build a pipeline problem from a PipeDream profile.

    The profiled minibatch is taken as one iteration's global batch, split into
    ``microbatches`` (K) equal micro-batches. Per micro-batch, a layer's forward
    and backward seconds are the profiled milliseconds ``/ 1000 / K`` and its
    output activation bytes the profiled bytes ``/ K`` (a linear scaling model:
    it ignores that small batches use a GPU less efficiently). Parameter bytes
    are unchanged. Layers follow the topological order of :func:`parse_profile`
    and are named ``"node12: Conv2d(...)"`` (shortened to
    :data:`MAX_NAME_CHARS`); edges are reindexed accordingly and keep the
    profile's order. A micro-batch holds ``minibatch_samples / K`` whole samples
    (``samples_per_microbatch``), so K must divide the profiled minibatch; every
    layer pays ``launch_overhead_s`` per task (default
    :data:`~distplan.models.pipeline.DEFAULT_LAUNCH_OVERHEAD_S`).

    The profiler books the data loading of a minibatch as the forward time of
    the ``Input`` source nodes (0.6 s for AlexNet); that is host work, not GPU
    work, and PipeDream's optimizer zeroes it, so by default the importer sets
    the forward and backward times of source layers whose description starts
    with ``Input`` to 0 (their activation bytes, the input tensor, are kept).

    Parameters
    ----------
    graph_path
        PipeDream ``graph.txt``.
    cluster
        The GPUs and interconnect (see :mod:`.clusters`).
    microbatches
        K, micro-batches per iteration (at least 1).
    name
        Instance name; default ``"<profile folder>__k<K>"``.
    minibatch_samples
        Samples of the profiled minibatch; default: :data:`PROFILED_MINIBATCH`
        of the profile folder's name.
    launch_overhead_s
        Fixed seconds per layer and task (see :mod:`distplan.models.pipeline`).
    zero_input_time
        Zero the compute time of ``Input`` source layers (default True).

    Returns
    -------
    PipelineProblem

    Raises
    ------
    ValueError
        On a malformed profile, ``microbatches < 1``, an unknown minibatch size,
        or K not dividing the minibatch (the message names the argument).
    """
    if microbatches < 1:
        raise ValueError(f"microbatches: must be at least 1, got {microbatches}")
    path = Path(graph_path)
    model = path.parent.name if path.stem == "graph" else path.stem
    if minibatch_samples is None:
        if model not in PROFILED_MINIBATCH:
            known = ", ".join(sorted(PROFILED_MINIBATCH))
            raise BadInput(
                "minibatch_samples",
                f"the minibatch of profile {model!r} is unknown (known: {known}); "
                "give the samples per profiled minibatch",
            )
        minibatch_samples = PROFILED_MINIBATCH[model]
    if minibatch_samples < 1 or minibatch_samples % microbatches:
        raise BadInput(
            "microbatches",
            f"K={microbatches} must divide the profiled minibatch of "
            f"{minibatch_samples} samples into whole micro-batches",
        )
    profile = parse_profile(path)
    k = float(microbatches)
    consumed = {v for _, v in profile.edges}
    is_input = [
        zero_input_time and i not in consumed and name.split(": ", 1)[-1].startswith("Input")
        for i, name in enumerate(profile.names)
    ]
    layers = [
        PipelineLayer(
            name=layer_name(profile.names[i]),
            forward_s=0.0 if is_input[i] else profile.forward_ms[i] / 1000.0 / k,
            backward_s=0.0 if is_input[i] else profile.backward_ms[i] / 1000.0 / k,
            activation_bytes=profile.activation_bytes[i] / k,
            parameter_bytes=profile.parameter_bytes[i],
        )
        for i in range(len(profile.names))
    ]
    return PipelineProblem(
        name=name or f"{model}__k{microbatches}",
        layers=layers,
        edges=profile.edges,
        cluster=cluster,
        microbatches=microbatches,
        samples_per_microbatch=minibatch_samples // microbatches,
        launch_overhead_s=launch_overhead_s,
        notes=(
            f"PipeDream profile {model}/{path.name} (msr-fiddle/pipedream, MIT, (c) Microsoft Corporation): "
            f"{len(layers)} layers; the profiled minibatch is one iteration split into {microbatches} "
            f"micro-batches of {minibatch_samples // microbatches} samples (times and activation bytes divided by K, "
            f"parameters unchanged; {launch_overhead_s * 1e6:g} µs launch overhead per layer and task)"
            + ("; Input layers' data-loading time set to 0." if any(is_input) else ".")
        ),
    )
