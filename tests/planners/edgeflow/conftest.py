"""Helpers for writing edgeflow plans by hand, and a small fusable instance."""

from __future__ import annotations

from distplan.models.edgeflow import (
    DeviceProgram,
    EdgeflowPlan,
    EdgeflowProblem,
    ExecutionUnit,
    ForwardEntry,
    InputRequirement,
    Layer,
)
from distplan.planners.edgeflow.examples import tiny_problem


def unit(layer: str, start: int, stop: int, needs=(), sends=()) -> ExecutionUnit:
    """A unit; ``needs`` holds ``(layer, start, stop, source)``, ``sends`` ``(start, stop, target)``."""
    return ExecutionUnit(
        layer=layer,
        row_start=start,
        row_stop=stop,
        inputs=[
            InputRequirement(layer=n, row_start=a, row_stop=b, source=s) for n, a, b, s in needs
        ],
        forward=[ForwardEntry(row_start=a, row_stop=b, target=t) for a, b, t in sends],
    )


def plan(**programs: list[ExecutionUnit]) -> EdgeflowPlan:
    """A plan from ``device=[units]`` keyword arguments."""
    return EdgeflowPlan(programs=[DeviceProgram(device=d, units=u) for d, u in programs.items()])


def conv_stack(bytes_per_s: float = 1e6) -> EdgeflowProblem:
    """input (8 rows) -> 3x3 conv -> 3x3 conv -> 2x2/2 pool (4 rows) -> fc on two 1e7 FLOP/s devices
    around one shared medium of ``bytes_per_s``; d0 holds the input."""
    conv = {"splittable": True, "kernel_rows": 3, "pad_top_rows": 1}
    layers = [
        Layer(name="input", out_rows=8, out_bytes=800),
        Layer(name="c1", inputs=["input"], work_flops=8e6, out_rows=8, out_bytes=8000, **conv),
        Layer(name="c2", inputs=["c1"], work_flops=8e6, out_rows=8, out_bytes=8000, **conv),
        Layer(
            name="pool",
            inputs=["c2"],
            work_flops=1e5,
            out_rows=4,
            out_bytes=4000,
            splittable=True,
            kernel_rows=2,
            stride_rows=2,
        ),
        Layer(name="fc", inputs=["pool"], work_flops=1e6, out_bytes=40),
    ]
    return tiny_problem("stack", layers, [1e7, 1e7], bytes_per_s=bytes_per_s)
