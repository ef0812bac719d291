"""Numbers of a sweep: ratios to the best objective, per-instance and per-solver statistics.

Objectives of different kinds are not comparable, so everything is computed per
kind. The ratio of a run to the best is at least 1 and says how many times worse
it is: ``objective / best`` for minimisation, ``best / objective`` for
maximisation (``inf`` when the run has no accepted plan). Only rows whose plan
the kind's evaluator accepted count as having an objective.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ...models.result import relative_gap

__all__ = [
    "InstanceStats",
    "SolverStats",
    "instance_stats",
    "profile_ratios",
    "ratio_to_best",
    "solver_stats",
]

#: Relative tolerance under which two objectives tie.
TIE_TOLERANCE = 1e-9
#: Row statuses of runs that ended without a plan (killed runs are time-outs instead).
NO_PLAN_STATUSES = frozenset({"no_solution", "infeasible"})


def _killed(row: dict[str, Any]) -> bool:
    """Whether the run was killed at time limit + grace."""
    return bool(row.get("killed")) or str(row.get("note", "")).startswith("killed ")


def _timed_out(row: dict[str, Any]) -> bool:
    """Stopped by the time limit: with a plan (status ``time_limit``) or killed at the deadline."""
    return row["status"] == "time_limit" or _killed(row)


def ratio_to_best(objective: float | None, best: float | None, sense: str) -> float:
    """How many times worse ``objective`` is than ``best`` (>= 1; ``inf`` without objective)."""
    if objective is None or best is None:
        return math.inf
    if math.isclose(objective, best, rel_tol=TIE_TOLERANCE, abs_tol=1e-12):
        return 1.0
    numerator, denominator = (objective, best) if sense == "min" else (best, objective)
    if denominator <= 0:
        return math.inf
    return max(1.0, numerator / denominator)


def _best(values: Iterable[float], sense: str) -> float | None:
    values = list(values)
    if not values:
        return None
    return min(values) if sense == "min" else max(values)


def _sense_of(rows: Sequence[dict[str, Any]]) -> str:
    senses = {row["sense"] for row in rows if row.get("sense")}
    return senses.pop() if len(senses) == 1 else "min"


def _accepted(row: dict[str, Any]) -> bool:
    return row.get("verdict") == "accepted" and row.get("objective") is not None


@dataclass(frozen=True)
class SolverOnInstance:
    """One solver's runs on one instance (all seeds)."""

    solver: str
    runs: int
    plans: int
    median_objective: float | None
    best_objective: float | None
    ratio: float
    gap_to_best_bound: float | None
    median_runtime_s: float


@dataclass(frozen=True)
class InstanceStats:
    """One instance of a sweep: the best objective and bound found, and every solver's showing."""

    kind: str
    instance_name: str
    sense: str
    best_objective: float | None
    best_bound: float | None
    solvers: tuple[SolverOnInstance, ...]


def _runtime_s(row: dict[str, Any]) -> float:
    runtime = row.get("runtime_s")
    return float(runtime if runtime is not None else row.get("wall_s", 0.0))


def instance_stats(rows: Sequence[dict[str, Any]]) -> list[InstanceStats]:
    """Per (kind, instance content): best objective, best proven bound, and each solver's median objective.

    The best bound is the tightest proven bound of any run (the largest lower
    bound for minimisation, the smallest upper bound for maximisation).
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["kind"], row["instance_sha256"])].append(row)
    out: list[InstanceStats] = []
    for (kind, _), group in sorted(
        groups.items(), key=lambda item: (item[0][0], item[1][0]["instance_name"])
    ):
        sense = _sense_of(group)
        best = _best((r["objective"] for r in group if _accepted(r)), sense)
        bounds = [
            r["bound"] for r in group if r.get("bound") is not None and math.isfinite(r["bound"])
        ]
        best_bound = _best(bounds, "max" if sense == "min" else "min")
        by_solver: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in group:
            by_solver[row["solver"]].append(row)
        entries = []
        for solver, runs in by_solver.items():
            objectives = [r["objective"] for r in runs if _accepted(r)]
            median = statistics.median(objectives) if objectives else None
            entries.append(
                SolverOnInstance(
                    solver=solver,
                    runs=len(runs),
                    plans=len(objectives),
                    median_objective=median,
                    best_objective=_best(objectives, sense),
                    ratio=ratio_to_best(median, best, sense),
                    gap_to_best_bound=relative_gap(median, best_bound),
                    median_runtime_s=statistics.median(_runtime_s(r) for r in runs),
                )
            )
        out.append(
            InstanceStats(kind, group[0]["instance_name"], sense, best, best_bound, tuple(entries))
        )
    return out


@dataclass(frozen=True)
class SolverStats:
    """One solver over a sweep's instances of its kind.

    ``wins`` counts instances where some seed of the solver reached the best
    objective (ties count for every solver reaching it); ``geomean_ratio`` is the
    geometric mean of the median-objective ratios over the instances where it
    had a plan (``solved`` of ``instances``). ``timeouts`` counts runs stopped
    by the time limit (with their best plan) or killed at time limit + grace;
    ``no_plan`` runs that ended without a plan otherwise (no solution found,
    infeasible); ``errors`` crashes, exceptions and rejected plans.
    """

    kind: str
    solver: str
    role: str
    runs: int
    instances: int
    solved: int
    wins: int
    geomean_ratio: float | None
    timeouts: int
    no_plan: int
    errors: int
    rejected: int


def solver_stats(rows: Sequence[dict[str, Any]]) -> list[SolverStats]:
    """Wins, geometric-mean ratio, time-outs and errors of every (kind, solver)."""
    per_instance = instance_stats(rows)
    out: list[SolverStats] = []
    keys = sorted({(row["kind"], row["solver"]) for row in rows})
    for kind, solver in keys:
        mine = [r for r in rows if r["kind"] == kind and r["solver"] == solver]
        showings = [
            (stats, entry)
            for stats in per_instance
            if stats.kind == kind
            for entry in stats.solvers
            if entry.solver == solver
        ]
        ratios = [entry.ratio for _, entry in showings if math.isfinite(entry.ratio)]
        wins = sum(
            1
            for stats, entry in showings
            if entry.best_objective is not None
            and ratio_to_best(entry.best_objective, stats.best_objective, stats.sense) == 1.0
        )
        out.append(
            SolverStats(
                kind=kind,
                solver=solver,
                role=next((r["role"] for r in mine if r.get("role")), "?"),
                runs=len(mine),
                instances=len(showings),
                solved=len(ratios),
                wins=wins,
                geomean_ratio=math.exp(statistics.fmean(math.log(r) for r in ratios))
                if ratios
                else None,
                timeouts=sum(1 for r in mine if _timed_out(r)),
                no_plan=sum(1 for r in mine if r["status"] in NO_PLAN_STATUSES and not _killed(r)),
                errors=sum(1 for r in mine if r["status"] == "error"),
                rejected=sum(1 for r in mine if r.get("verdict") == "rejected"),
            )
        )
    return out


def profile_ratios(rows: Sequence[dict[str, Any]], kind: str) -> dict[str, list[float]]:
    """Dolan-More ratios per solver of ``kind``: one per problem (instance, seed), ``inf`` when unsolved.

    Dolan and More, "Benchmarking optimization software with performance
    profiles", Math. Programming 91 (2002), Sec. 2: with ``t[p, s]`` the measure
    of solver ``s`` on problem ``p``, ``r[p, s] = t[p, s] / min_s t[p, s]``.
    Here the measure is the objective (its reciprocal for maximisation), and a
    problem is one instance with one seed.
    """
    mine = [r for r in rows if r["kind"] == kind]
    sense = _sense_of(mine)
    problems: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in mine:
        problems[(row["instance_sha256"], row["seed"])].append(row)
    solvers = sorted({r["solver"] for r in mine})
    ratios: dict[str, list[float]] = {s: [] for s in solvers}
    for group in problems.values():
        best = _best((r["objective"] for r in group if _accepted(r)), sense)
        seen = {r["solver"]: r for r in group}
        for solver in solvers:
            run = seen.get(solver)
            objective = run["objective"] if run is not None and _accepted(run) else None
            ratios[solver].append(ratio_to_best(objective, best, sense))
    return ratios
