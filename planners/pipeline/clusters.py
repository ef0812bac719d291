"""Cluster presets and cluster files.

Presets (all latency-free: transfers cost ``bytes / bandwidth`` only):

``nvswitch-8``
    8 GPUs of 32e9 bytes behind an NVSwitch: 150e9 bytes/s between every pair.
``dgx1-8``
    DGX-1 (V100) hybrid cube-mesh: 8 GPUs of 16e9 bytes in two quads
    ``{0..3}`` and ``{4..7}``; 25e9 bytes/s NVLink from every GPU to the three
    others of its quad and to its twin ``i <-> i+4`` in the other quad;
    10e9 bytes/s over PCIe/QPI for the remaining pairs.
``2x4-10gbe``
    Two servers of 4 GPUs of 32e9 bytes: 50e9 bytes/s NVLink inside a server,
    1.25e9 bytes/s (10 GbE) between servers.
``4x4-mixed``
    Four servers of 4 GPUs: servers 0 and 1 hold 32e9-byte GPUs of speed 1.0,
    servers 2 and 3 hold 16e9-byte GPUs of speed 0.5; 12e9 bytes/s inside a
    server, 3e9 bytes/s between servers.

A cluster file is JSON ``{"gpus": [{"name", "memory_bytes", "speed"}],
"bandwidth_bytes_per_s": [[...]], "latency_s": [[...]]}`` (``latency_s``
optional), the fields of :class:`~distplan.models.pipeline.Cluster`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from ...models.pipeline import GPU, Cluster

__all__ = ["PRESETS", "dgx1_8", "flat", "load_cluster", "mixed_4x4", "nvswitch_8", "servers", "two_by_four_10gbe"]


def _matrix(n: int, bandwidth: Callable[[int, int], float]) -> list[list[float]]:
    """An ``n x n`` bandwidth matrix (bytes/s) with zeros on the diagonal."""
    return [[0.0 if i == j else float(bandwidth(i, j)) for j in range(n)] for i in range(n)]


def flat(n: int, bandwidth: float, memory: float = 1e15) -> Cluster:
    """``n`` identical speed-1.0 GPUs of ``memory`` bytes, ``bandwidth`` bytes/s between every pair."""
    if n < 1:
        raise ValueError(f"n: need at least one GPU, got {n}")
    gpus = [GPU(name=f"gpu{i}", memory_bytes=memory, speed=1.0) for i in range(n)]
    return Cluster(gpus=gpus, bandwidth_bytes_per_s=_matrix(n, lambda i, j: bandwidth))


def servers(
    gpus_per_server: int,
    memory_of_server: list[float],
    speed_of_server: list[float],
    intra_bytes_per_s: float,
    inter_bytes_per_s: float,
) -> Cluster:
    """Servers of ``gpus_per_server`` GPUs each (GPU ``s * gpus_per_server + g`` is GPU ``g`` of server ``s``)."""
    gpus = [
        GPU(name=f"s{s}g{g}", memory_bytes=memory, speed=speed)
        for s, (memory, speed) in enumerate(zip(memory_of_server, speed_of_server, strict=True))
        for g in range(gpus_per_server)
    ]

    def bandwidth(i: int, j: int) -> float:
        same = i // gpus_per_server == j // gpus_per_server
        return intra_bytes_per_s if same else inter_bytes_per_s

    return Cluster(gpus=gpus, bandwidth_bytes_per_s=_matrix(len(gpus), bandwidth))


def nvswitch_8() -> Cluster:
    """8 GPUs of 32e9 bytes, 150e9 bytes/s between every pair (NVSwitch)."""
    gpus = [GPU(name=f"gpu{i}", memory_bytes=32e9, speed=1.0) for i in range(8)]
    return Cluster(gpus=gpus, bandwidth_bytes_per_s=_matrix(8, lambda i, j: 150e9))


def dgx1_8() -> Cluster:
    """DGX-1 hybrid cube-mesh: NVLink (25e9 B/s) inside each quad and to the twin ``i+4``, else 10e9 B/s."""

    def bandwidth(i: int, j: int) -> float:
        same_quad = i // 4 == j // 4
        twins = abs(i - j) == 4
        return 25e9 if same_quad or twins else 10e9

    gpus = [GPU(name=f"gpu{i}", memory_bytes=16e9, speed=1.0) for i in range(8)]
    return Cluster(gpus=gpus, bandwidth_bytes_per_s=_matrix(8, bandwidth))


def two_by_four_10gbe() -> Cluster:
    """Two servers of 4 GPUs of 32e9 bytes: 50e9 B/s NVLink inside, 1.25e9 B/s (10 GbE) between."""
    return servers(4, [32e9, 32e9], [1.0, 1.0], 50e9, 1.25e9)


def mixed_4x4() -> Cluster:
    """Four servers of 4 GPUs: two of 32e9-byte speed-1.0 GPUs, two of 16e9-byte speed-0.5 GPUs."""
    return servers(4, [32e9, 32e9, 16e9, 16e9], [1.0, 1.0, 0.5, 0.5], 12e9, 3e9)


#: Preset name -> builder.
PRESETS: dict[str, Callable[[], Cluster]] = {
    "nvswitch-8": nvswitch_8,
    "dgx1-8": dgx1_8,
    "2x4-10gbe": two_by_four_10gbe,
    "4x4-mixed": mixed_4x4,
}


def _location(loc: tuple[int | str, ...]) -> str:
    """``("gpus", 0, "speed")`` -> ``"gpus[0].speed"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "cluster"


def load_cluster(spec: str | Path) -> Cluster:
    """A preset by name, or a cluster JSON file by path.

    Parameters
    ----------
    spec
        A key of :data:`PRESETS` or the path of a cluster JSON file.

    Returns
    -------
    Cluster

    Raises
    ------
    ValueError
        When ``spec`` is neither a preset nor a readable file (the message
        lists the presets), or the file is not valid JSON or not a valid
        cluster (the message names the field).
    """
    text = str(spec)
    if text in PRESETS:
        return PRESETS[text]()
    valid = ", ".join(PRESETS)
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"unknown cluster preset or file {text!r}; valid presets: {valid}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a cluster file must hold a JSON object with gpus and bandwidth_bytes_per_s")
    try:
        return Cluster.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(tuple(first["loc"]))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ValueError(f"{path}: {where}: {first['msg']}{more}") from None
