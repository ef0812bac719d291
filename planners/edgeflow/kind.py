"""Registers the ``edgeflow`` kind: DAG partitioning of one inference across edge devices."""

from __future__ import annotations

from ...models.edgeflow import EdgeflowPlan, EdgeflowProblem
from ...solvers.registry import Command, Example, ProblemKind, register_kind
from . import baselines, exact_cpsat, exact_milp, progressive  # noqa: F401  (register the solvers)
from .bounds import latency_lower_bound, memory_infeasibility
from .evaluator import evaluate_plan
from .examples import example_problems
from .importers import import_paleo, import_pipedream
from .plot import plot_edgeflow


def _examples() -> list[Example]:
    return [Example(problem, optimum) for problem, optimum in example_problems()]


def _describe(problem: EdgeflowProblem, plan: EdgeflowPlan) -> list[str]:
    return plan.describe(problem)


EDGEFLOW = register_kind(
    ProblemKind(
        name="edgeflow",
        problem_type=EdgeflowProblem,
        plan_type=EdgeflowPlan,
        sense="min",
        evaluate=evaluate_plan,
        bound=latency_lower_bound,
        precheck=memory_infeasibility,
        objective_label="inference latency (s)",
        importers=(
            Command(
                "paleo",
                import_paleo,
                help="Paleo architecture spec (Inception-v3, VGG-16) -> edgeflow instance",
            ),
            Command(
                "pipedream",
                import_pipedream,
                help="PipeDream profile graph.txt -> edgeflow instance (whole layers)",
            ),
        ),
        examples=_examples,
        describe=_describe,
        plot=plot_edgeflow,
    )
)
