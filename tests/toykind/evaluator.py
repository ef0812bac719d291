"""Independent check of a toy plan: indices valid and distinct, weight within capacity."""

from __future__ import annotations

from distplan.models.result import Evaluation

from .models import ToyPlan, ToyProblem


def evaluate(problem: ToyProblem, plan: ToyPlan) -> Evaluation:
    """Total value of the chosen items, or the violations."""
    violations = [
        f"chosen: item {i} does not exist" for i in plan.chosen if not 0 <= i < len(problem.values)
    ]
    if len(set(plan.chosen)) != len(plan.chosen):
        violations.append("chosen: an item is chosen twice")
    if violations:
        return Evaluation(feasible=False, objective=None, violations=violations)
    weight = sum(problem.weights[i] for i in plan.chosen)
    if weight > problem.capacity + 1e-9:
        violations.append(f"weight {weight} exceeds capacity {problem.capacity}")
    return Evaluation(
        feasible=not violations,
        objective=sum(problem.values[i] for i in plan.chosen),
        violations=violations,
    )
