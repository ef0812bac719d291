"""Repeated solves for the per-kind benchmark tables: the result and the median planning time."""

from __future__ import annotations

import statistics
import time
from typing import Any

from ...models.result import SolveResult
from ..api import solve

__all__ = ["timed_solve"]


def timed_solve(
    problem: Any, solver: str, repeats: int, time_limit: float, threads: int = 1
) -> tuple[SolveResult, float]:
    """Solve ``repeats`` (>= 1) times with seed 0: the last result and the median wall seconds of a solve."""
    times: list[float] = []
    result: SolveResult | None = None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = solve(problem, solver, time_limit=time_limit, seed=0, threads=threads)
        times.append(time.perf_counter() - start)
    assert result is not None
    return result, statistics.median(times)
