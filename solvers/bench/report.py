"""A sweep's tables: ``results.csv`` (one line per run) and ``summary.md``."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .analysis import instance_stats, solver_stats

__all__ = ["CSV_COLUMNS", "summary_markdown", "write_csv"]

#: Columns of ``results.csv``, in order; ``options`` is written as JSON.
CSV_COLUMNS = (
    "key",
    "kind",
    "instance",
    "instance_name",
    "solver",
    "role",
    "seed",
    "status",
    "verdict",
    "objective",
    "bound",
    "gap",
    "runtime_s",
    "wall_s",
    "time_limit_s",
    "threads",
    "options",
    "host",
    "note",
)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write one CSV line per run (columns :data:`CSV_COLUMNS`)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "options": json.dumps(row.get("options", {}), sort_keys=True)})


def _num(value: float | None, spec: str = ".6g") -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def summary_markdown(rows: Sequence[dict[str, Any]], title: str = "distplan bench") -> str:
    """The sweep's summary: per instance, then per solver, for every kind.

    Per instance: the best objective any run found and the best proven bound;
    per solver its median objective over seeds (runs with a plan / runs), the
    ratio of that median to the best (>= 1, 1 = best), its gap to the best
    bound, and its median runtime (seconds). Per solver: wins, geometric-mean
    ratio, time-outs (time-limit stops and kills), runs without a plan, errors and
    plans the evaluator rejected.
    """
    lines = [f"# {title}", ""]
    lines.append(
        f"{len(rows)} run(s). Objectives are the kind's evaluator's values; a plan it rejects counts as an "
        "error. Ratio = how many times worse than the best objective found (1 = best), from the median over "
        "seeds. Gap = |objective - best bound| / |objective|."
    )
    per_instance = instance_stats(rows)
    per_solver = solver_stats(rows)
    for kind in sorted({row["kind"] for row in rows}):
        sense = next(s.sense for s in per_instance if s.kind == kind)
        lines += [
            "",
            f"## {kind} ({'minimise' if sense == 'min' else 'maximise'})",
            "",
            "### Per instance",
            "",
        ]
        table = []
        for stats in (s for s in per_instance if s.kind == kind):
            for entry in sorted(stats.solvers, key=lambda e: (e.ratio, e.solver)):
                table.append(
                    [
                        stats.instance_name,
                        _num(stats.best_objective),
                        _num(stats.best_bound),
                        entry.solver,
                        f"{_num(entry.median_objective)} ({entry.plans}/{entry.runs})",
                        _num(entry.ratio, ".4f"),
                        _pct(entry.gap_to_best_bound),
                        _num(entry.median_runtime_s, ".3f"),
                    ]
                )
        lines += _table(
            [
                "instance",
                "best objective",
                "best bound",
                "solver",
                "objective (plans/runs)",
                "ratio",
                "gap to best bound",
                "runtime s",
            ],
            table,
        )
        lines += ["", "### Per solver", ""]
        lines += _table(
            [
                "solver",
                "role",
                "runs",
                "instances solved",
                "wins",
                "geo-mean ratio",
                "timeouts",
                "no plan",
                "errors",
                "rejected plans",
            ],
            [
                [
                    s.solver,
                    s.role,
                    str(s.runs),
                    f"{s.solved}/{s.instances}",
                    str(s.wins),
                    _num(s.geomean_ratio, ".4f"),
                    str(s.timeouts),
                    str(s.no_plan),
                    str(s.errors),
                    str(s.rejected),
                ]
                for s in per_solver
                if s.kind == kind
            ],
        )
    return "\n".join(lines) + "\n"
