"""Tiny instances for the platform's conformance test: a chain, a diamond and a concat."""

from __future__ import annotations

from ...models.edgeflow import EdgeDevice, EdgeflowProblem, Layer
from ...models.network import Network, NetworkLink, NetworkNode

__all__ = ["chain_layers", "example_problems", "tiny_problem"]


def tiny_problem(
    name: str,
    layers: list[Layer],
    speeds: list[float],
    *,
    bytes_per_s: float = 1e6,
    latency_s: float = 0.0,
    shared: bool = True,
    overhead_s: float = 0.0,
) -> EdgeflowProblem:
    """Devices ``d0, d1, ...`` of the given FLOP/s around one hub (a shared medium if ``shared``).

    ``d0`` holds the input and receives the output.
    """
    devices = [
        EdgeDevice(name=f"d{k}", flops_per_s=s, overhead_s=overhead_s) for k, s in enumerate(speeds)
    ]
    nodes = [
        NetworkNode(name=d.name, role="compute", capacity_bytes_per_s=None, forwards=None)
        for d in devices
    ]
    nodes.append(
        NetworkNode(
            name="hub",
            role="forward",
            capacity_bytes_per_s=bytes_per_s if shared else None,
            forwards=None,
        )
    )
    links = [
        NetworkLink(
            source=d.name,
            target="hub",
            bandwidth_bytes_per_s=bytes_per_s,
            latency_s=latency_s,
            duplex=True,
        )
        for d in devices
    ]
    return EdgeflowProblem(
        name=name,
        layers=layers,
        devices=devices,
        network=Network(nodes=nodes, links=links),
        input_device="d0",
        output_device="d0",
    )


def chain_layers() -> list[Layer]:
    """input (4 rows) -> 3x3 SAME conv (4e6 FLOPs, splittable) -> fully connected (1e6 FLOPs)."""
    return [
        Layer(name="input", out_rows=4, out_bytes=4000),
        Layer(
            name="conv",
            inputs=["input"],
            work_flops=4e6,
            out_rows=4,
            out_bytes=4000,
            splittable=True,
            kernel_rows=3,
            pad_top_rows=1,
        ),
        Layer(name="fc", inputs=["conv"], work_flops=1e6, out_rows=1, out_bytes=40),
    ]


def _diamond() -> list[Layer]:
    return [
        Layer(name="input", out_rows=1, out_bytes=1000),
        Layer(name="left", inputs=["input"], work_flops=3e6, out_rows=1, out_bytes=1000),
        Layer(name="right", inputs=["input"], work_flops=3e6, out_rows=1, out_bytes=1000),
        Layer(name="join", inputs=["left", "right"], work_flops=1e6, out_rows=1, out_bytes=100),
    ]


def _concat() -> list[Layer]:
    return [
        Layer(name="input", out_rows=6, out_bytes=6000),
        Layer(
            name="a",
            inputs=["input"],
            work_flops=6e6,
            out_rows=6,
            out_bytes=6000,
            splittable=True,
            kernel_rows=3,
            pad_top_rows=1,
        ),
        Layer(
            name="b",
            inputs=["input"],
            work_flops=3e6,
            out_rows=6,
            out_bytes=6000,
            splittable=True,
            kernel_rows=5,
            pad_top_rows=2,
        ),
        Layer(
            name="concat",
            inputs=["a", "b"],
            work_flops=0.0,
            out_rows=6,
            out_bytes=12000,
            splittable=True,
        ),
        Layer(name="head", inputs=["concat"], work_flops=1e6, out_rows=1, out_bytes=40),
    ]


def example_problems() -> list[tuple[EdgeflowProblem, float | None]]:
    """``(problem, optimum latency in seconds or None)`` pairs.

    * chain on one device: its work over the speed, 5e6 FLOPs at 1e7 FLOP/s = 0.5 s.
    * diamond on two equal devices (all layers whole): the branches (0.3 s each)
      must run on different devices, so one of them waits for the input
      (1000 B at 1e7 B/s = 1e-4 s) and ends at 0.3001 s at the earliest; the join
      (0.1 s) then needs the other branch's output, which is ready (and, sent at
      0.3 s, arrives) by 0.3001 s only if the join runs on that late device;
      its 100-byte result returns in 1e-5 s: 0.40011 s. Joining on the input
      device instead waits for the late branch's output until 0.3002 s.
    * the others: not known in closed form.
    """
    return [
        (tiny_problem("chain-1dev", chain_layers(), [1e7]), 0.5),
        (tiny_problem("chain-2dev", chain_layers(), [1e7, 2e7]), None),
        (tiny_problem("diamond-2dev", _diamond(), [1e7, 1e7], bytes_per_s=1e7), 0.40011),
        (
            tiny_problem(
                "concat-3dev", _concat(), [1e7, 1e7, 2e7], bytes_per_s=1e7, latency_s=1e-4
            ),
            None,
        ),
    ]
