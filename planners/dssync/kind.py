"""Registers the ``dssync`` problem kind: evaluator (simulated seconds to target loss), solvers."""

from __future__ import annotations

from ...solvers.registry import ProblemKind, register_kind
from . import baselines, ds_sync  # noqa: F401  (register the solvers)
from .evaluator import evaluate_plan

DSSYNC = register_kind(
    ProblemKind(
        name="dssync",
        sense="min",
        evaluate=evaluate_plan,
        objective_label="simulated seconds to the target loss",
    )
)
