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
    """Readable lines: the period and the group sizes of every partition."""
    lines = [f"period {len(plan.partitions)} partitions over {len(problem.workers)} workers"]
    for p, partition in enumerate(plan.partitions[:8]):
        sizes = sorted((len(g.members) for g in partition.groups), reverse=True)
        racks = [len({problem.workers[problem.worker_index[m]].rack for m in g.members}) for g in partition.groups]
        lines.append(
            f"  partition {p}: {len(sizes)} groups of sizes {sizes}, "
            f"{sum(1 for r in racks if r > 1)} cross-rack"
        )
    if len(plan.partitions) > 8:
        lines.append(f"  ... {len(plan.partitions) - 8} more partitions")
    return lines


DSSYNC = register_kind(
    ProblemKind(
        name="dssync",
        problem_type=DssyncProblem,
        plan_type=DssyncPlan,
        sense="min",
        evaluate=evaluate_plan,
        objective_label="simulated seconds to the target loss",
        generators=(Command("dssync", generate_dssync, "Racks of workers behind ToR switches and a spine."),),
        examples=_examples,
        describe=_describe,
    )
)
