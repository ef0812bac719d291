"""Physical cluster presets: GPUs, NVLink/NVSwitch, PCIe switches, CPUs, NICs and switches.

Every preset is a :class:`~distplan.models.pipeline.Cluster` in the network
form: GPUs are compute nodes (they do not relay), everything else forwards,
links are full duplex (each direction its own capacity) and latency-free
(transfers cost ``bytes / bottleneck``). Bandwidths are bytes/s per direction,
memories bytes. What a transfer shares is what it physically shares: all GPUs
of a server send to other servers through that server's NIC(s).

``nvswitch-8``
    8 V100 GPUs of 32e9 bytes, each with one port of 150e9 bytes/s (six NVLink 2
    links of 25e9) into one non-blocking NVSwitch fabric (NVIDIA DGX-2 system
    architecture whitepaper, 2018: six NVLinks per V100 at 25 GB/s per
    direction each, into non-blocking NVSwitches). A GPU sending to several
    peers at once shares its one port.
``dgx1-8``
    NVIDIA DGX-1 with V100 (NVIDIA DGX-1 system architecture whitepaper): 8
    GPUs of 16e9 bytes; NVLink hybrid cube mesh, one 25e9 link per connected pair (inside
    each quad ``{0..3}``, ``{4..7}`` and between twins ``i``, ``i+4``; the V100
    machine doubles two pairs per GPU, ignored here: conservative); two GPUs per
    PCIe 3.0 x16 switch (16e9), two switches per CPU socket, the sockets joined
    by QPI (one 9.6 GT/s link, 19.2e9). Pairs without NVLink go over PCIe.
``2x4-10gbe``
    Two servers of 4 V100 GPUs of 32e9 bytes. Inside: NVLink all-to-all with two
    links per pair (50e9; as in the 4-GPU DGX Station) and a PCIe 3.0 x16 switch
    (16e9 per GPU) holding ONE 10 GbE NIC (1.25e9 bytes/s) that links to a
    top-of-rack switch. All inter-server traffic of a server shares its NIC.
``4x4-mixed``
    Four servers of 4 GPUs: servers 0 and 1 hold 32e9-byte GPUs of speed 1.0,
    servers 2 and 3 16e9-byte GPUs of speed 0.5. Inside: a PCIe switch with a
    12e9 bytes/s port per GPU (PCIe 3.0 x16 at a typical 75% efficiency); one
    25 GbE NIC per server (3.125e9 bytes/s) to a top-of-rack switch.
``2x8-ib-rail``
    Two DGX-class servers of 8 V100 GPUs of 32e9 bytes: an NVSwitch inside
    (150e9 per GPU port, as ``nvswitch-8``); one 100 Gb/s InfiniBand NIC
    (12.5e9 bytes/s) per GPU pair behind the pair's PCIe 3.0 switch (16e9), the
    ratio of the DGX-2 (16 GPUs, 8 EDR NICs; DGX-2 datasheet); PCIe switches
    hang off the host CPU (16e9). Rail-optimised: NIC ``k`` of both servers
    joins rail switch ``k``, so GPU pair ``k`` of one server reaches pair ``k``
    of the other through its own NIC and rail.
"""

from __future__ import annotations

from collections.abc import Callable

from ....models.network import Network, NetworkLink, NetworkNode
from ....models.pipeline import GPU, Cluster

__all__ = ["PRESETS", "dgx1_8", "ib_rail_2x8", "mixed_4x4", "nvswitch_8", "two_by_four_10gbe"]

NVLINK2_BYTES_PER_S = 25e9
PCIE3_X16_BYTES_PER_S = 16e9
QPI_BYTES_PER_S = 19.2e9
TEN_GBE_BYTES_PER_S = 1.25e9
TWENTY_FIVE_GBE_BYTES_PER_S = 3.125e9
IB_EDR_BYTES_PER_S = 12.5e9


class _Builder:
    """Accumulates GPUs, forwarding nodes and duplex links of one cluster."""

    def __init__(self) -> None:
        self.gpus: list[GPU] = []
        self.nodes: list[NetworkNode] = []
        self.links: list[NetworkLink] = []

    def gpu(self, name: str, memory_bytes: float, server: str, speed: float = 1.0) -> str:
        self.gpus.append(GPU(name=name, memory_bytes=memory_bytes, speed=speed, server=server))
        self.nodes.append(NetworkNode(name=name, role="compute"))
        return name

    def switch(self, name: str) -> str:
        self.nodes.append(NetworkNode(name=name, role="forward"))
        return name

    def link(self, a: str, b: str, bytes_per_s: float) -> None:
        self.links.append(NetworkLink(source=a, target=b, bandwidth_bytes_per_s=bytes_per_s))

    def cluster(self) -> Cluster:
        return Cluster(gpus=self.gpus, network=Network(nodes=self.nodes, links=self.links))


def _nvswitch_server(b: _Builder, server: str, count: int, memory_bytes: float) -> list[str]:
    """``count`` GPUs, each with one 150e9 bytes/s port into the server's NVSwitch."""
    fabric = b.switch(f"{server}-nvswitch")
    gpus = [b.gpu(f"{server}g{i}", memory_bytes, server) for i in range(count)]
    for gpu in gpus:
        b.link(gpu, fabric, 6 * NVLINK2_BYTES_PER_S)
    return gpus


def nvswitch_8() -> Cluster:
    """8 GPUs of 32e9 bytes, one 150e9 bytes/s port each into a non-blocking NVSwitch."""
    b = _Builder()
    _nvswitch_server(b, "s0", 8, 32e9)
    return b.cluster()


def dgx1_8() -> Cluster:
    """DGX-1 (V100): NVLink hybrid cube mesh, PCIe switches per GPU pair, two CPU sockets on QPI."""
    b = _Builder()
    gpus = [b.gpu(f"gpu{i}", 16e9, "dgx1") for i in range(8)]
    cpus = [b.switch("cpu0"), b.switch("cpu1")]
    b.link(cpus[0], cpus[1], QPI_BYTES_PER_S)
    for p in range(4):
        pcie = b.switch(f"pcie{p}")
        b.link(pcie, cpus[p // 2], PCIE3_X16_BYTES_PER_S)
        for g in (2 * p, 2 * p + 1):
            b.link(gpus[g], pcie, PCIE3_X16_BYTES_PER_S)
    for i in range(8):
        for j in range(i + 1, 8):
            if i // 4 == j // 4 or j - i == 4:
                b.link(gpus[i], gpus[j], NVLINK2_BYTES_PER_S)
    return b.cluster()


def _pcie_nic_servers(
    b: _Builder,
    memory_of_server: list[float],
    speed_of_server: list[float],
    gpu_port_bytes_per_s: float,
    nic_bytes_per_s: float,
    nvlink_bytes_per_s: float | None,
) -> None:
    """Servers of 4 GPUs behind one PCIe switch and ONE NIC each, NICs on one top-of-rack switch."""
    tor = b.switch("tor")
    for s, (memory, speed) in enumerate(zip(memory_of_server, speed_of_server, strict=True)):
        server = f"s{s}"
        pcie, nic = b.switch(f"{server}-pcie"), b.switch(f"{server}-nic")
        gpus = [b.gpu(f"{server}g{g}", memory, server, speed) for g in range(4)]
        for gpu in gpus:
            b.link(gpu, pcie, gpu_port_bytes_per_s)
        b.link(pcie, nic, gpu_port_bytes_per_s)
        b.link(nic, tor, nic_bytes_per_s)
        if nvlink_bytes_per_s is not None:
            for i in range(4):
                for j in range(i + 1, 4):
                    b.link(gpus[i], gpus[j], nvlink_bytes_per_s)


def two_by_four_10gbe() -> Cluster:
    """Two servers of 4 GPUs (32e9 bytes): NVLink all-to-all inside, one 10 GbE NIC per server."""
    b = _Builder()
    _pcie_nic_servers(
        b,
        [32e9, 32e9],
        [1.0, 1.0],
        PCIE3_X16_BYTES_PER_S,
        TEN_GBE_BYTES_PER_S,
        2 * NVLINK2_BYTES_PER_S,
    )
    return b.cluster()


def mixed_4x4() -> Cluster:
    """Four servers of 4 GPUs (two fast 32e9-byte, two half-speed 16e9-byte), one 25 GbE NIC each."""
    b = _Builder()
    _pcie_nic_servers(
        b, [32e9, 32e9, 16e9, 16e9], [1.0, 1.0, 0.5, 0.5], 12e9, TWENTY_FIVE_GBE_BYTES_PER_S, None
    )
    return b.cluster()


def ib_rail_2x8() -> Cluster:
    """Two 8-GPU NVSwitch servers, one 100 Gb/s NIC per GPU pair, NIC ``k`` on rail switch ``k``."""
    b = _Builder()
    rails = [b.switch(f"rail{k}") for k in range(4)]
    for s in range(2):
        server = f"s{s}"
        gpus = _nvswitch_server(b, server, 8, 32e9)
        cpu = b.switch(f"{server}-cpu")
        for k in range(4):
            pcie, nic = b.switch(f"{server}-pcie{k}"), b.switch(f"{server}-nic{k}")
            b.link(pcie, cpu, PCIE3_X16_BYTES_PER_S)
            b.link(pcie, nic, PCIE3_X16_BYTES_PER_S)
            b.link(nic, rails[k], IB_EDR_BYTES_PER_S)
            for g in (2 * k, 2 * k + 1):
                b.link(gpus[g], pcie, PCIE3_X16_BYTES_PER_S)
    return b.cluster()


#: Preset name -> builder.
PRESETS: dict[str, Callable[[], Cluster]] = {
    "nvswitch-8": nvswitch_8,
    "dgx1-8": dgx1_8,
    "2x4-10gbe": two_by_four_10gbe,
    "4x4-mixed": mixed_4x4,
    "2x8-ib-rail": ib_rail_2x8,
}
