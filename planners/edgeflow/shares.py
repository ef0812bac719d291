"""Row shares: the per-layer share LP (solved by water-filling) and largest-remainder rounding."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...models.edgeflow import EdgeflowProblem

__all__ = ["largest_remainder", "split_widths", "unit_seconds", "water_fill"]

#: Up to this many devices every split width is tried; above, a few spread widths.
EVERY_WIDTH_UP_TO = 4
#: Smallest seconds per row water-filling works with (free rows would divide by zero).
MIN_SECONDS_PER_ROW = 1e-12


def split_widths(widest: int) -> list[int]:
    """Device counts ``k >= 2`` a split over at most ``widest`` devices tries: every one up to
    :data:`EVERY_WIDTH_UP_TO`, else 2, about half and ``widest`` (keeps roll-outs affordable)."""
    if widest <= EVERY_WIDTH_UP_TO:
        return list(range(2, widest + 1))
    return sorted({2, (widest + 2) // 2, widest})


def unit_seconds(
    problem: EdgeflowProblem, layer: str, device: str, rows: int | None = None
) -> float:
    """Seconds ``device`` needs for ``rows`` rows of ``layer`` (default all): overhead plus FLOPs / speed."""
    spec = problem.layer_by_name[layer]
    speed = problem.device_by_name[device]
    count = spec.out_rows if rows is None else rows
    return speed.overhead_s + spec.flops_per_row * count / speed.flops_per_s


def water_fill(
    ready_s: Sequence[float], seconds_per_row: Sequence[float], rows: int
) -> list[float]:
    """Fractional rows per device minimising the layer's finish time.

    Solves the LP ``min T`` s.t. ``T >= ready_d + seconds_per_row_d * x_d``,
    ``sum x_d = rows``, ``x >= 0`` (EdgeFlow's per-layer share LP, Hu & Li 2022,
    progressive partitioning; reconstruction). Its optimum is closed form: devices
    whose ``ready_d < T`` share the rows so that they all finish at ``T``, found by
    adding devices in order of readiness.

    Parameters
    ----------
    ready_s
        When each device could start (seconds).
    seconds_per_row
        Seconds each device needs per row (>= 0; a zero, a layer with neither work
        nor overhead, is taken as :data:`MIN_SECONDS_PER_ROW`).
    rows
        Rows to share.
    """
    seconds_per_row = [max(s, MIN_SECONDS_PER_ROW) for s in seconds_per_row]
    order = sorted(range(len(ready_s)), key=lambda d: (ready_s[d], d))
    shares = [0.0] * len(ready_s)
    finish = math.inf
    inverse_sum = 0.0
    weighted = 0.0
    used: list[int] = []
    for d in order:
        if ready_s[d] >= finish:
            break
        used.append(d)
        inverse_sum += 1.0 / seconds_per_row[d]
        weighted += ready_s[d] / seconds_per_row[d]
        finish = (rows + weighted) / inverse_sum
    for d in used:
        shares[d] = max(0.0, (finish - ready_s[d]) / seconds_per_row[d])
    return shares


def largest_remainder(shares: Sequence[float], rows: int) -> list[int]:
    """Integer rows summing to ``rows``, by the largest-remainder method (ties: lower index)."""
    total = sum(shares)
    if total <= 0:
        raise ValueError("shares: at least one must be positive")
    exact = [rows * s / total for s in shares]
    counts = [math.floor(x) for x in exact]
    missing = rows - sum(counts)
    by_remainder = sorted(range(len(shares)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[:missing]:
        counts[k] += 1
    return counts
