"""Registers the ``pipeline`` problem kind: sense, evaluator, closed-form bound, pre-check."""

from __future__ import annotations

from ...solvers.registry import ProblemKind, register_kind
from .bounds import iteration_lower_bound, memory_infeasibility
from .simulator import evaluate_plan

PIPELINE = register_kind(
    ProblemKind(
        name="pipeline",
        sense="min",
        evaluate=evaluate_plan,
        bound=iteration_lower_bound,
        precheck=memory_infeasibility,
        objective_label="iteration time (s)",
    )
)
