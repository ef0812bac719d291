"""Registers the ``dssync`` kind: models, evaluator (simulated seconds to target), generator, examples."""

from __future__ import annotations

from ...models.dssync import DssyncPlan, DssyncProblem
from ...solvers.registry import Command, Example, ProblemKind, register_kind
from . import baselines, ds_sync  # noqa: F401  (register the solvers)
from .evaluator import evaluate_plan
from .examples import tiny_problems
from .generator import generate_dssync


def _examples() -> list[Example]:
    return [Example(problem) for problem in tiny_problems()]


def _describe(problem: DssyncProblem, plan: DssyncPlan) -> list[str]:
    """Readable lines: the period, and how many partitions mix across racks."""
    rack = {w.name: w.rack for w in problem.workers}
    mixing = [
        p
        for p, partition in enumerate(plan.partitions)
        if any(len({rack[m] for m in g.members}) > 1 for g in partition.groups)
    ]
    largest = max(len(g.members) for part in plan.partitions for g in part.groups)
    algorithms = sorted({g.algorithm for part in plan.partitions for g in part.groups})
    lines = [
        f"period {len(plan.partitions)} partitions over {len(problem.workers)} workers "
        f"({', '.join(algorithms)}; largest group {largest})",
        f"{len(mixing)} partitions mix across racks, {len(plan.partitions) - len(mixing)} stay "
        "inside racks",
    ]
    if mixing:
        first = plan.partitions[mixing[0]]
        sizes = sorted((len(g.members) for g in first.groups), reverse=True)
        lines.append(f"partition {mixing[0]} (first mixing one): group sizes {sizes}")
    return lines


DSSYNC = register_kind(
    ProblemKind(
        name="dssync",
        problem_type=DssyncProblem,
        plan_type=DssyncPlan,
        sense="min",
        evaluate=evaluate_plan,
        objective_label="simulated seconds to the target loss",
        generators=(
            Command("dssync", generate_dssync, "Racks of workers behind ToR switches and a spine."),
        ),
        examples=_examples,
        describe=_describe,
    )
)
