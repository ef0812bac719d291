"""Tests of the sweep's numbers: ratios, Dolan-More profiles, per-solver statistics, progress choice."""

from __future__ import annotations

import io
import math

import pytest

from distplan.solvers.bench.analysis import (
    instance_stats,
    profile_ratios,
    ratio_to_best,
    solver_stats,
)
from distplan.solvers.bench.executors import oversubscription_warning
from distplan.solvers.bench.figures import profile_curve
from distplan.solvers.bench.progress import PlainProgress, RichProgress, make_progress


def row(solver: str, seed: int, objective: float | None, sense: str = "min", **extra) -> dict:
    return {
        "kind": "k",
        "instance_sha256": "h",
        "instance_name": "i",
        "solver": solver,
        "seed": seed,
        "sense": sense,
        "role": "heuristic",
        "objective": objective,
        "verdict": "accepted" if objective is not None else "no_plan",
        "status": "feasible" if objective is not None else "no_solution",
        "bound": extra.pop("bound", None),
        "runtime_s": 1.0,
        **extra,
    }


def test_ratio_to_best_is_at_least_one_in_both_senses() -> None:
    """Minimisation divides by the best, maximisation divides the best; no plan is inf."""
    assert ratio_to_best(3.0, 2.0, "min") == 1.5
    assert ratio_to_best(2.0, 3.0, "max") == 1.5
    assert ratio_to_best(2.0, 2.0, "max") == 1.0
    assert ratio_to_best(None, 2.0, "min") == math.inf
    assert ratio_to_best(0.0, 5.0, "max") == math.inf


def test_profile_ratios_are_per_instance_and_seed() -> None:
    """Each (instance, seed) is one problem; a solver without a plan on it gets inf."""
    rows = [row("a", 0, 2.0), row("b", 0, 4.0), row("a", 1, 3.0), row("b", 1, None)]
    assert profile_ratios(rows, "k") == {"a": [1.0, 1.0], "b": [2.0, math.inf]}


def test_profile_curve_steps_to_the_fraction_solved() -> None:
    """The profile reaches the fraction of problems with ratio <= tau; inf never counts."""
    taus, fractions = profile_curve([1.0, 2.0, math.inf, 1.5])
    assert taus == [1.0, 1.0, 1.5, 2.0]
    assert fractions == [0.25, 0.25, 0.5, 0.75]


def test_solver_stats_count_wins_geomean_and_timeouts() -> None:
    """Wins count instances where a seed reached the best; geo-mean uses median-objective ratios."""
    rows = [row("a", 0, 2.0, bound=1.0), row("a", 1, 4.0), row("b", 0, 4.0), row("b", 1, None)]
    stats = {s.solver: s for s in solver_stats(rows)}
    assert (stats["a"].wins, stats["b"].wins) == (1, 0)
    assert stats["a"].geomean_ratio == pytest.approx(1.5)  # median 3.0 over best 2.0
    assert stats["b"].geomean_ratio == pytest.approx(2.0)
    assert (stats["b"].timeouts, stats["b"].no_plan, stats["b"].solved) == (0, 1, 1)
    killed = solver_stats([row("c", 0, None, note="killed 5 s after it started solving")])
    assert (killed[0].timeouts, killed[0].no_plan) == (1, 0)
    (instance,) = instance_stats(rows)
    assert (instance.best_objective, instance.best_bound) == (2.0, 1.0)


def test_progress_is_rich_on_a_terminal_and_plain_otherwise() -> None:
    """A TTY gets the rich bar; a pipe gets one line per finished run."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_progress(Terminal()), RichProgress)
    stream = io.StringIO()
    progress = make_progress(stream)
    assert isinstance(progress, PlainProgress)
    progress.start(1, 0)
    progress.advance({**row("a", 0, 2.0), "wall_s": 1.5})
    progress.stop()
    assert "[1/1] k/a on i seed 0: feasible objective 2 in 1.50 s" in stream.getvalue()


def test_oversubscription_warns_only_past_the_cores() -> None:
    """jobs x threads above the cores gives a warning naming both options; at the cores it does not."""
    assert oversubscription_warning(2, 1, cores=2) is None
    warning = oversubscription_warning(2, 2, cores=2)
    assert (
        warning is not None and "--jobs 2 x --threads 2 = 4 solver threads on 2 core(s)" in warning
    )
