"""Registers the ``microservice`` problem kind: sense, evaluator, closed-form bound."""

from __future__ import annotations

from ...solvers.registry import ProblemKind, register_kind
from .bounds import throughput_upper_bound
from .evaluator import evaluate_plan

MICROSERVICE = register_kind(
    ProblemKind(
        name="microservice",
        sense="max",
        evaluate=evaluate_plan,
        bound=throughput_upper_bound,
        objective_label="served throughput (requests/s)",
    )
)
