"""Registers the ``pipeline`` problem kind: models, evaluator, bound, pre-check, importer, examples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...models.errors import BadInput
from ...models.pipeline import PipelinePlan, PipelineProblem
from ...solvers.registry import Command, Example, ProblemKind, register_kind
from . import baselines, exact_cpsat, pipedream_dp, topology_planner  # noqa: F401  (register solvers)
from .bounds import iteration_lower_bound, memory_infeasibility
from .examples import small_examples
from .plot import plot_pipeline
from .simulator import evaluate_plan

#: Most micro-batches an importer accepts (a larger K is a typo).
MAX_MICROBATCHES = 4096


def import_pipedream_command(
    graph: Annotated[Path, typer.Argument(help="PipeDream graph.txt profile")],
    cluster: Annotated[str, typer.Option(help="cluster preset name or cluster JSON file")],
    microbatches: Annotated[
        int, typer.Option(help="micro-batches K the profiled minibatch is split into")
    ],
    name: Annotated[str | None, typer.Option(help="instance name")] = None,
    minibatch_samples: Annotated[
        int | None,
        typer.Option(
            help="samples of the profiled minibatch (default: known for the shipped profiles)"
        ),
    ] = None,
    launch_overhead_us: Annotated[
        float | None,
        typer.Option(help="fixed launch overhead per layer and task, microseconds (default 5)"),
    ] = None,
) -> PipelineProblem:
    """Build a pipeline instance from a PipeDream profile (cluster presets: nvswitch-8, dgx1-8, 2x4-10gbe,
    4x4-mixed, 2x8-ib-rail, or a cluster JSON)."""
    from ...models.pipeline import DEFAULT_LAUNCH_OVERHEAD_S
    from .clusters import load_cluster
    from .pipedream_import import import_pipedream

    if not 1 <= microbatches <= MAX_MICROBATCHES:
        raise BadInput(
            "--microbatches", f"must be from 1 to {MAX_MICROBATCHES}, got {microbatches}"
        )
    if not graph.is_file():
        raise BadInput(str(graph), "cannot read: no such file")
    if minibatch_samples is not None and not 1 <= minibatch_samples <= 10**7:
        raise BadInput("--minibatch-samples", f"must be from 1 to 10^7, got {minibatch_samples}")
    launch_overhead_s = DEFAULT_LAUNCH_OVERHEAD_S
    if launch_overhead_us is not None:
        if not 0 <= launch_overhead_us <= 1e6:
            raise BadInput(
                "--launch-overhead-us",
                f"must be from 0 to 1e6 microseconds, got {launch_overhead_us}",
            )
        launch_overhead_s = launch_overhead_us * 1e-6
    return import_pipedream(
        graph,
        load_cluster(cluster),
        microbatches,
        name=name,
        minibatch_samples=minibatch_samples,
        launch_overhead_s=launch_overhead_s,
    )


def _describe(problem: PipelineProblem, plan: PipelinePlan) -> list[str]:
    return plan.describe(problem)


def _examples() -> list[Example]:
    return [Example(problem) for problem in small_examples()]


PIPELINE = register_kind(
    ProblemKind(
        name="pipeline",
        problem_type=PipelineProblem,
        plan_type=PipelinePlan,
        sense="min",
        evaluate=evaluate_plan,
        bound=iteration_lower_bound,
        precheck=memory_infeasibility,
        objective_label="iteration time (s)",
        importers=(
            Command(
                "pipedream",
                import_pipedream_command,
                "Build a pipeline instance from a PipeDream profile.",
                default=True,
            ),
        ),
        examples=_examples,
        describe=_describe,
        plot=plot_pipeline,
    )
)
