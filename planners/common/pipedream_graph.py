"""Read PipeDream per-layer profiles (``graph.txt``): nodes with times and sizes, edges.

PipeDream's profiler (Narayanan et al., SOSP 2019, Sec. 3.1 and 4) writes one
line per layer and one line per edge::

    node7 -- Conv2d(64, 192, ...) -- forward_compute_time=4.2, backward_compute_time=8.9, activation_size=93454336.0, parameter_size=307968.0
    \tnode6 -- node7

Times are milliseconds and sizes bytes, both for one whole profiled minibatch.
``activation_size`` may be a list ``[a; b; c]`` for layers with several outputs
(its sum is the layer's output bytes). Node ids are not in topological order.
An optional fourth field ``stage_id=N`` (written by PipeDream's partitioner) is
accepted and ignored. This module is the generic reader every kind that imports
PipeDream profiles shares (pipeline training, edge inference); what a kind makes
of the numbers is its importer's business.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from ...models.graph import topological_order

__all__ = ["MAX_NAME_CHARS", "Profile", "layer_name", "parse_profile"]

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
        raise ValueError(
            f"line {line_number}: {field}={text!r} must be a finite non-negative number"
        )
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
    node_id, description, metadata = (
        tokens[0].strip(),
        " -- ".join(tokens[1:-1]).strip(),
        tokens[-1],
    )
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
                raise ValueError(
                    f"line {line_number}: expected an edge '<TAB>nodeA -- nodeB', got {line.strip()[:80]!r}"
                )
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

    order = topological_order(range(len(ids)), edges)
    if order is None:
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


def layer_name(name: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """``name`` with runs of whitespace collapsed, cut to ``max_chars`` with ``...``."""
    compact = " ".join(name.split())
    if len(compact) <= max_chars:
        return compact
    return compact[: max_chars - 3].rstrip() + "..."
