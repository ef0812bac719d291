"""Cluster presets and cluster files.

The presets are physical networks (GPUs, NVLink, PCIe switches, NICs, switches)
built in :mod:`.presets`, which documents each with its sources. :func:`flat` and
:func:`servers` build clusters in the legacy *matrix form*, which means what it
says: every GPU pair with a nonzero entry has its own private directed link that
no other pair shares, and GPUs relay for each other (use a preset or a network
file to model a NIC that a server's GPUs share).

A cluster file is JSON with the fields of
:class:`~distplan.models.pipeline.Cluster`: ``{"gpus": [...], "network": {...}}``
(network form; every GPU may name its ``node`` and ``server``) or ``{"gpus":
[...], "bandwidth_bytes_per_s": [[...]], "latency_s": [[...]]}`` (matrix form,
``latency_s`` optional).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from ...models.pipeline import GPU, Cluster
from .presets import PRESETS, dgx1_8, ib_rail_2x8, mixed_4x4, nvswitch_8, two_by_four_10gbe

__all__ = [
    "PRESETS",
    "dgx1_8",
    "flat",
    "ib_rail_2x8",
    "load_cluster",
    "mixed_4x4",
    "nvswitch_8",
    "servers",
    "two_by_four_10gbe",
]


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
    """Servers of ``gpus_per_server`` GPUs each, in the matrix form (private links per pair).

    GPU ``s * gpus_per_server + g`` is GPU ``g`` of server ``s``. Every
    inter-server pair gets its own ``inter_bytes_per_s`` link: this is NOT one
    shared NIC per server (see :mod:`.presets` for that).
    """
    gpus = [
        GPU(name=f"s{s}g{g}", memory_bytes=memory, speed=speed, server=f"s{s}")
        for s, (memory, speed) in enumerate(zip(memory_of_server, speed_of_server, strict=True))
        for g in range(gpus_per_server)
    ]

    def bandwidth(i: int, j: int) -> float:
        same = i // gpus_per_server == j // gpus_per_server
        return intra_bytes_per_s if same else inter_bytes_per_s

    return Cluster(gpus=gpus, bandwidth_bytes_per_s=_matrix(len(gpus), bandwidth))


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
        raise ValueError(
            f"{path}: a cluster file must hold a JSON object with gpus and a network or bandwidth_bytes_per_s"
        )
    try:
        return Cluster.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(tuple(first["loc"]))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ValueError(f"{path}: {where}: {first['msg']}{more}") from None
