"""Helpers for writing edgeflow plans by hand."""

from __future__ import annotations

from distplan.models.edgeflow import (
    DeviceProgram,
    EdgeflowPlan,
    ExecutionUnit,
    ForwardEntry,
    InputRequirement,
)


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
