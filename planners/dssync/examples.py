"""Tiny ``dssync`` instances for the platform's conformance test (solved in well under a second)."""

from __future__ import annotations

from .generator import generate_dssync

__all__ = ["tiny_problems"]


def tiny_problems() -> list:
    """A non-blocking 2x2 cluster and a 2x3 one with one slow rack uplink."""
    return [
        generate_dssync(racks=2, workers_per_rack=2, calibration_iterations=20, name="tiny-2x2"),
        generate_dssync(
            racks=2,
            workers_per_rack=3,
            slow_uplink="1:8",
            calibration_iterations=20,
            name="tiny-2x3-slow",
        ),
    ]
