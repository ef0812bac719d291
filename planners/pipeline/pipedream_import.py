"""Import PipeDream per-layer profiles (``graph.txt``) as pipeline problems.

PipeDream's profiler (Narayanan et al., SOSP 2019, Sec. 3.1 and 4) writes one
line per layer and one line per edge::

    node7 -- Conv2d(64, 192, ...) -- forward_compute_time=4.2, backward_compute_time=8.9, activation_size=93454336.0, parameter_size=307968.0
    \tnode6 -- node7

Times are milliseconds and sizes bytes, both for one whole profiled minibatch.
``activation_size`` may be a list ``[a; b; c]`` for layers with several outputs
(its sum is the layer's output bytes). Node ids are not in topological order.
An optional fourth field ``stage_id=N`` (written by PipeDream's partitioner) is
accepted and ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from ...models.graph import topological_order
from ...models.pipeline import Cluster, PipelineLayer, PipelineProblem

__all__ = ["Profile", "import_pipedream", "layer_name", "parse_profile"]

#: Longest layer name an imported problem carries (the description is shortened).
MAX_NAME_CHARS = 64

_FIELDS = ("forward_compute_time", "backward_compute_time", "activation_size", "parameter_size")
_PAIR = re.compile(r"(\w+)=(\[[^\]]*\]|[^,\s]+)")


class Profile(NamedTuple):
    """A parsed profile, layers in a topological order.

    Attributes
    ----------
    names:
        ``"<node id>: <layer description>"`` of every layer (description as profiled).
    forward_ms, backward_ms:
        Milliseconds per whole profiled minibatch.
    activation_bytes:
        Output activation bytes per whole minibatch (a list of outputs is summed).
    parameter_bytes:
        Weight bytes.
    edges:
        ``(producer, consumer)`` indices into the lists above.
    """

    names: list[str]
    forward_ms: list[float]
    backward_ms: list[float]
    activation_bytes: list[float]
    parameter_bytes: list[float]
    edges: list[tuple[int, int]]


def _number(text: str, line_number: int, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"line {line_number}: {field}={text!r} is not a number") from None
    if value != value or value < 0 or value == float("inf"):
        raise ValueError(f"line {line_number}: {field}={text!r} must be a finite non-negative number")
    return value


def _parse_node(line: str, line_number: int) -> tuple[str, str, list[float]]:
    """``(node_id, description, [forward_ms, backward_ms, activation_bytes, parameter_bytes])``."""
    tokens = line.strip().split(" -- ")
    if len(tokens) >= 4 and tokens[-1].strip().startswith("stage_id="):
        tokens = tokens[:-1]
    if len(tokens) < 3:
        raise ValueError(
            f"line {line_number}: expected 'nodeID -- description -- forward_compute_time=..., "
            f"backward_compute_time=..., activation_size=..., parameter_size=...', got {line.strip()[:80]!r}"
        )
    node_id, description, metadata = tokens[0].strip(), " -- ".join(tokens[1:-1]).strip(), tokens[-1]
    if not node_id or " " in node_id:
        raise ValueError(f"line {line_number}: bad node id {node_id!r}")
    pairs = dict(_PAIR.findall(metadata))
    missing = [f for f in _FIELDS if f not in pairs]
    if missing:
        raise ValueError(f"line {line_number}: node {node_id} lacks {', '.join(missing)}")
    values: list[float] = []
    for field in _FIELDS:
        text = pairs[field]
        if text.startswith("["):
            parts = [p.strip() for p in text[1:-1].split(";") if p.strip()]
            if not parts:
                raise ValueError(f"line {line_number}: {field} is an empty list")
            values.append(sum(_number(p, line_number, field) for p in parts))
        else:
            values.append(_number(text, line_number, field))
    return node_id, description, values


def parse_profile(path: str | Path) -> Profile:
    """Read a PipeDream ``graph.txt`` profile.

    Layers come back in a deterministic topological order: Kahn's algorithm,
    taking among the ready layers the one whose node line comes first in the
    file (PipeDream itself keeps file order where it has a choice).

    Parameters
    ----------
    path
        The ``graph.txt`` file.

    Returns
    -------
    Profile
        ``(names, forward_ms, backward_ms, activation_bytes, parameter_bytes, edges)``
        in PipeDream's units (milliseconds and bytes per whole minibatch).

    Raises
    ------
    OSError
        When the file cannot be read.
    ValueError
        On a malformed line (the message gives its number), an edge naming an
        unknown node, a duplicate node, a self-loop, a cycle or an empty profile.
    """
    text = Path(path).read_text(encoding="utf-8")
    ids: list[str] = []
    descriptions: list[str] = []
    stats: list[list[float]] = []
    index_of: dict[str, int] = {}
    edges: list[tuple[int, int]] = []
    seen_edges: set[tuple[int, int]] = set()
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("\t"):
            ends = [e.strip() for e in line.strip().split(" -- ")]
            if len(ends) != 2 or not all(ends):
                raise ValueError(f"line {line_number}: expected an edge '<TAB>nodeA -- nodeB', got {line.strip()[:80]!r}")
            for end in ends:
                if end not in index_of:
                    raise ValueError(f"line {line_number}: edge names unknown node {end!r}")
            u, v = index_of[ends[0]], index_of[ends[1]]
            if u == v:
                raise ValueError(f"line {line_number}: self-loop on {ends[0]}")
            if (u, v) not in seen_edges:  # a repeated edge line adds nothing
                seen_edges.add((u, v))
                edges.append((u, v))
            continue
        node_id, description, values = _parse_node(line, line_number)
        if node_id in index_of:
            raise ValueError(f"line {line_number}: node {node_id} is defined twice")
        index_of[node_id] = len(ids)
        ids.append(node_id)
        descriptions.append(description)
        stats.append(values)
    if not ids:
        raise ValueError(f"{path}: no node lines")

    order = _topological_order(len(ids), edges)
    if len(order) != len(ids):
        raise ValueError(f"{path}: the layer graph has a cycle")
    position = {old: new for new, old in enumerate(order)}
    return Profile(
        names=[f"{ids[i]}: {descriptions[i]}" for i in order],
        forward_ms=[stats[i][0] for i in order],
        backward_ms=[stats[i][1] for i in order],
        activation_bytes=[stats[i][2] for i in order],
        parameter_bytes=[stats[i][3] for i in order],
        edges=[(position[u], position[v]) for u, v in edges],
    )


def _topological_order(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Kahn's algorithm, smallest index (file position) first among the ready nodes; partial on a cycle."""
    return topological_order(range(n), edges) or []


def layer_name(name: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """``name`` with runs of whitespace collapsed, cut to ``max_chars`` with ``...``."""
    compact = " ".join(name.split())
    if len(compact) <= max_chars:
        return compact
    return compact[: max_chars - 3].rstrip() + "..."


def import_pipedream(
    graph_path: str | Path,
    cluster: Cluster,
    microbatches: int,
    name: str | None = None,
    *,
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
    profile's order.

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
    zero_input_time
        Zero the compute time of ``Input`` source layers (default True).

    Returns
    -------
    PipelineProblem

    Raises
    ------
    ValueError
        On a malformed profile or ``microbatches < 1``.
    """
    if microbatches < 1:
        raise ValueError(f"microbatches: must be at least 1, got {microbatches}")
    path = Path(graph_path)
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
    model = path.parent.name if path.stem == "graph" else path.stem
    return PipelineProblem(
        name=name or f"{model}__k{microbatches}",
        layers=layers,
        edges=profile.edges,
        cluster=cluster,
        microbatches=microbatches,
        notes=(
            f"PipeDream profile {model}/{path.name} (msr-fiddle/pipedream, MIT, (c) Microsoft Corporation): "
            f"{len(layers)} layers; the profiled minibatch is one iteration split into {microbatches} "
            "micro-batches (times and activation bytes divided by K, parameters unchanged)"
            + ("; Input layers' data-loading time set to 0." if any(is_input) else ".")
        ),
    )
