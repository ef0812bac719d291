"""Registers the ``microservice`` problem kind: models, evaluator, bound, importer, examples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...models.errors import BadInput
from ...models.microservice import MicroservicePlan, MicroserviceProblem
from ...solvers.registry import Command, Example, ProblemKind, register_kind
from . import baselines, cp_model, greedy, ilp_solver, lp_rounding  # noqa: F401  (register solvers)
from .bounds import throughput_upper_bound
from .evaluator import evaluate_plan
from .examples import small_examples
from .plot import plot_microservice

#: Most edge servers an importer builds (the formulations grow with servers squared).
MAX_SERVERS = 500


def import_dockerhub_command(
    images: Annotated[Path, typer.Argument(help="Docker Hub image metadata JSON")],
    servers: Annotated[int, typer.Option(help="edge servers")],
    services: Annotated[int, typer.Option(help="microservices")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    name: Annotated[str | None, typer.Option(help="instance name")] = None,
) -> MicroserviceProblem:
    """Build a microservice placement instance from Docker Hub layer metadata."""
    from .dockerhub import build_instance

    if not 1 <= servers <= MAX_SERVERS:
        raise BadInput("--servers", f"must be from 1 to {MAX_SERVERS}, got {servers}")
    if services < 1:
        raise BadInput("--services", f"must be at least 1, got {services}")
    if not 0 <= seed < 2**32:
        raise BadInput("--seed", f"must be from 0 to {2**32 - 1}, got {seed}")
    if not images.is_file():
        raise BadInput(str(images), "cannot read: no such file")
    return build_instance(images, servers=servers, services=services, seed=seed, name=name)


def _describe(problem: MicroserviceProblem, plan: MicroservicePlan) -> list[str]:
    return plan.describe(problem)


def _examples() -> list[Example]:
    return [Example(problem) for problem in small_examples()]


MICROSERVICE = register_kind(
    ProblemKind(
        name="microservice",
        problem_type=MicroserviceProblem,
        plan_type=MicroservicePlan,
        sense="max",
        evaluate=evaluate_plan,
        bound=throughput_upper_bound,
        objective_label="served throughput (requests/s)",
        importers=(
            Command(
                "dockerhub",
                import_dockerhub_command,
                "Build a microservice instance from Docker Hub layers.",
            ),
        ),
        examples=_examples,
        describe=_describe,
        plot=plot_microservice,
    )
)
