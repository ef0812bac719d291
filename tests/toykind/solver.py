"""Exact toy solver: enumerate every subset (instances are tiny)."""

from __future__ import annotations

from itertools import combinations

from distplan.models.result import SolveStatus
from distplan.solvers.options import SolveOptions, SolverOutput

from .models import ToyPlan, ToyProblem


def brute_force(problem: ToyProblem, options: SolveOptions) -> SolverOutput:
    """Best subset by enumeration; proves its optimum."""
    items = range(len(problem.values))
    best: tuple[float, tuple[int, ...]] = (0.0, ())
    for size in range(len(problem.values) + 1):
        for subset in combinations(items, size):
            if sum(problem.weights[i] for i in subset) <= problem.capacity:
                best = max(best, (sum(problem.values[i] for i in subset), subset))
    return SolverOutput(SolveStatus.OPTIMAL, ToyPlan(chosen=list(best[1])), best[0], best[0])
