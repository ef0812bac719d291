"""The toy kind's one registration."""

from __future__ import annotations

from typing import Annotated

import typer

from distplan.models.errors import BadInput
from distplan.models.result import Role
from distplan.solvers.registry import Command, Example, ProblemKind, register_kind, register_solver

from .evaluator import evaluate
from .models import ToyPlan, ToyProblem
from .solver import brute_force


def generate(
    items: Annotated[int, typer.Option(help="number of items")] = 4,
    capacity: Annotated[float, typer.Option(help="knapsack capacity")] = 5.0,
) -> ToyProblem:
    """Items i = 1..n with value i and weight i."""
    if not 1 <= items <= 12:
        raise BadInput("--items", f"must be from 1 to 12, got {items}")
    return ToyProblem(
        name=f"toy-{items}",
        values=[float(i) for i in range(1, items + 1)],
        weights=[float(i) for i in range(1, items + 1)],
        capacity=capacity,
    )


def register() -> None:
    """Register the kind and its solver (call inside ``scoped_registry()``)."""
    register_kind(
        ProblemKind(
            name="toyknap",
            problem_type=ToyProblem,
            plan_type=ToyPlan,
            sense="max",
            evaluate=evaluate,
            bound=lambda problem: sum(problem.values),
            objective_label="value",
            generators=(Command("toyknap", generate, "Generate a toy knapsack."),),
            examples=lambda: [Example(generate(items=4, capacity=5.0), optimum=5.0)],
        )
    )
    register_solver("brute", kind="toyknap", role=Role.EXACT, auto_rank=0)(brute_force)
