"""Device presets for ``--devices PRESET``: edge clusters with documented figures.

Speeds are *effective* FLOP/s for DNN inference, not peak:

* Raspberry-Pi-4-class: quad Cortex-A72 at 1.5 GHz (Raspberry Pi 4 Model B
  product brief); about 10 GFLOP/s effective for convolutions (the figure issue 10
  gives; an assumption, not a measurement of ours).
* Jetson-class: NVIDIA Jetson Nano, 472 GFLOP/s fp16 peak (NVIDIA product page);
  about 100 GFLOP/s effective (issue 10's figure; an assumption).
* WLAN: 802.11ac in practice delivers tens of Mbit/s to one station; the presets
  use 50 and 100 Mbit/s of goodput for the whole shared medium (issue 10's
  figures), 0.5 ms one-way latency per hop (an assumption).
* Switch: 1 Gbit/s Ethernet ports, a non-blocking switch, 0.05 ms per hop.
* Per-unit overhead: 0.5 ms (operator dispatch and message handling; an assumption).

Device 0 of every preset holds the input (the camera) and receives the result.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from ...models.edgeflow import EdgeCluster, EdgeDevice
from ...models.errors import BadInput
from ...models.network import Network, NetworkLink, NetworkNode

__all__ = ["PRESETS", "load_cluster", "preset"]

MBIT = 1e6 / 8  # bytes/s in one Mbit/s
GFLOP = 1e9
OVERHEAD_S = 0.5e-3


def _cluster(
    speeds: list[tuple[str, float]], hub: str, bytes_per_s: float, latency_s: float, shared: bool
) -> EdgeCluster:
    """Devices all linked to one hub: a WLAN medium (shared) or a non-blocking switch."""
    nodes = [
        NetworkNode(name=name, role="compute", capacity_bytes_per_s=None, forwards=None)
        for name, _ in speeds
    ]
    nodes.append(
        NetworkNode(
            name=hub,
            role="forward",
            capacity_bytes_per_s=bytes_per_s if shared else None,
            forwards=None,
        )
    )
    links = [
        NetworkLink(
            source=name,
            target=hub,
            bandwidth_bytes_per_s=bytes_per_s,
            latency_s=latency_s,
            duplex=True,
        )
        for name, _ in speeds
    ]
    devices = [
        EdgeDevice(name=name, flops_per_s=flops, overhead_s=OVERHEAD_S, memory_bytes=4e9)
        for name, flops in speeds
    ]
    first = speeds[0][0]
    return EdgeCluster(
        devices=devices,
        network=Network(nodes=nodes, links=links),
        input_device=first,
        output_device=first,
    )


def preset(name: str) -> EdgeCluster:
    """The preset ``name`` (see :data:`PRESETS`).

    Raises
    ------
    BadInput
        When no preset has that name.
    """
    if name not in PRESETS:
        raise BadInput(
            field="--devices", reason=f"unknown preset {name!r}; presets: {', '.join(PRESETS)}"
        )
    if name == "rpi4x4-wifi":
        return _cluster(
            [(f"pi{k}", 10 * GFLOP) for k in range(4)], "wlan", 50 * MBIT, 0.5e-3, shared=True
        )
    if name == "jetson2-rpi4-wifi":
        speeds = [(f"pi{k}", 10 * GFLOP) for k in range(4)] + [
            (f"jetson{k}", 100 * GFLOP) for k in range(2)
        ]
        return _cluster(speeds, "wlan", 100 * MBIT, 0.5e-3, shared=True)
    gflops = [10, 5, 10, 25, 50, 100, 150, 200]
    return _cluster(
        [(f"dev{k}", g * GFLOP) for k, g in enumerate(gflops)],
        "switch",
        1000 * MBIT,
        0.05e-3,
        shared=False,
    )


PRESETS: dict[str, str] = {
    "rpi4x4-wifi": "4 Raspberry-Pi-4-class devices (10 GFLOP/s) on one 50 Mbit/s WLAN",
    "jetson2-rpi4-wifi": "4 Pi-class (10 GFLOP/s) + 2 Jetson-class (100 GFLOP/s) on one 100 Mbit/s WLAN",
    "mixed8-switch": "8 devices of 5-200 GFLOP/s on a 1 Gbit/s non-blocking switch",
}


def load_cluster(spec: str) -> EdgeCluster:
    """A preset name, or a JSON file holding an :class:`EdgeCluster`.

    Raises
    ------
    BadInput
        Unknown preset, unreadable file, or invalid contents (naming the field).
    """
    if spec in PRESETS:
        return preset(spec)
    path = Path(spec)
    if not path.is_file():
        raise BadInput(
            field="--devices",
            reason=f"{spec!r} is neither a preset ({', '.join(PRESETS)}) nor a file",
        )
    try:
        return EdgeCluster.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise BadInput(field="--devices", reason=f"{spec}: not valid JSON: {exc.msg}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise BadInput(field=f"--devices {location}", reason=first["msg"]) from exc
