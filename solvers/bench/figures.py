"""A sweep's figures (matplotlib, optional extra ``distplan[plot]``).

* ``performance-profile.png``: Dolan-More performance profiles of the objective,
  one panel per kind: for each solver, the fraction of problems (instance, seed)
  whose ratio to the best objective is at most tau.
* ``runtime-cactus.png``: for each solver, its runs with an accepted plan sorted
  by runtime; the curve reaches (n, t) when n runs finished within t seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...models.errors import BackendMissing
from .analysis import profile_ratios

__all__ = ["cactus_series", "draw_figures", "profile_curve"]


def profile_curve(ratios: Sequence[float]) -> tuple[list[float], list[float]]:
    """Step points (tau, fraction of problems with ratio <= tau) of one solver's profile."""
    finite = sorted(r for r in ratios if math.isfinite(r))
    total = len(ratios)
    taus = [1.0] + finite
    fractions = [sum(1 for r in finite if r <= tau) / total if total else 0.0 for tau in taus]
    return taus, fractions


def cactus_series(rows: Sequence[dict[str, Any]], kind: str) -> dict[str, list[float]]:
    """Sorted runtimes (seconds) of every solver's accepted runs on ``kind``."""
    series: dict[str, list[float]] = {}
    for row in rows:
        if row["kind"] != kind:
            continue
        times = series.setdefault(row["solver"], [])
        if row.get("verdict") == "accepted" and row.get("runtime_s") is not None:
            times.append(float(row["runtime_s"]))
    return {solver: sorted(times) for solver, times in sorted(series.items())}


def draw_figures(rows: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Write the performance profile and the runtime cactus PNGs into ``out``.

    Raises
    ------
    BackendMissing
        When matplotlib is missing; the message says how to install it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BackendMissing("bench figures need matplotlib: pip install 'distplan[plot]'") from exc
    kinds = sorted({row["kind"] for row in rows})
    written = []
    for name, draw in (
        ("performance-profile.png", _draw_profile),
        ("runtime-cactus.png", _draw_cactus),
    ):
        figure, axes = plt.subplots(
            1, max(1, len(kinds)), figsize=(6 * max(1, len(kinds)), 4.5), squeeze=False
        )
        for ax, kind in zip(axes[0], kinds, strict=False):
            draw(ax, rows, kind)
        figure.tight_layout()
        path = out / name
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written


def _draw_profile(ax: Any, rows: Sequence[dict[str, Any]], kind: str) -> None:
    ratios = profile_ratios(rows, kind)
    worst = max((r for rs in ratios.values() for r in rs if math.isfinite(r)), default=1.0)
    right = max(1.05, worst * 1.05)
    for solver, solver_ratios in ratios.items():
        taus, fractions = profile_curve(solver_ratios)
        ax.step([*taus, right], [*fractions, fractions[-1]], where="post", label=solver)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1.0, right)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("tau: ratio to the best objective (log scale)")
    ax.set_ylabel("fraction of (instance, seed) problems")
    ax.set_title(f"{kind}: performance profile (Dolan-More)")
    ax.legend(fontsize="small", loc="lower right")


def _draw_cactus(ax: Any, rows: Sequence[dict[str, Any]], kind: str) -> None:
    for solver, times in cactus_series(rows, kind).items():
        ax.plot(range(1, len(times) + 1), times, marker=".", label=solver)
    ax.set_yscale("log")
    ax.set_xlabel("runs with an accepted plan")
    ax.set_ylabel("runtime (s)")
    ax.set_title(f"{kind}: runtime cactus plot")
    ax.legend(fontsize="small", loc="upper left")
