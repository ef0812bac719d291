"""Command-line interface: thin shims over the Python API.

Run as ``distplan ...`` (console script) or ``python cli.py ...`` from the
repository root. Bad input prints one line per problem and exits with code 2.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer


def _bootstrap_package() -> None:
    """Make ``import distplan`` work when run as ``python cli.py`` from an uninstalled checkout."""
    if importlib.util.find_spec("distplan") is not None:
        return
    root = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location("distplan", root / "__init__.py", submodule_search_locations=[str(root)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["distplan"] = module
    spec.loader.exec_module(module)


_bootstrap_package()

from pydantic import ValidationError  # noqa: E402

from distplan.models import load_instance, problem_schema  # noqa: E402
from distplan.models.instance import PROBLEM_TYPES  # noqa: E402
from distplan.models.result import SolveResult  # noqa: E402
from distplan.solvers import solve as solve_problem  # noqa: E402
from distplan.solvers.registry import problem_kind  # noqa: E402
from distplan.solvers.registry import solvers as registered_solvers  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, help="distplan: plans for distributed ML and edge systems.")
import_app = typer.Typer(no_args_is_help=True, help="Build instances from public data.")
app.add_typer(import_app, name="import")
from distplan.solvers.bench.cli import register_commands as register_bench_commands  # noqa: E402

register_bench_commands(app)


class BadInput(Exception):
    """Input the user must fix; carries one line per problem."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def _fail(lines: list[str]) -> NoReturn:
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code=2)


def _validation_lines(source: str, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{source}: {location}: {item['msg']}")
    return lines


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput([f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from exc


def _load_problem(path: Path) -> Any:
    try:
        return load_instance(path)
    except OSError as exc:
        raise BadInput([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except json.JSONDecodeError as exc:
        raise BadInput([f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from exc
    except ValidationError as exc:
        raise BadInput(_validation_lines(str(path), exc)) from exc


def _write_json(data: str, out: Path | None) -> None:
    if out is None:
        typer.echo(data)
        return
    try:
        out.write_text(data + "\n", encoding="utf-8")
    except OSError as exc:
        raise BadInput([f"{out}: cannot write: {exc.strerror or exc}"]) from exc


def _guard(function: Any) -> Any:
    """Turn BadInput and ValueError into exit code 2 with messages, never a traceback."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except BadInput as exc:
            _fail(exc.lines)
        except ValidationError as exc:
            _fail(_validation_lines("input", exc))
        except ValueError as exc:
            _fail([str(exc)])

    run.__name__ = function.__name__
    run.__doc__ = function.__doc__
    run.__wrapped__ = function  # type: ignore[attr-defined]
    return run


@app.command()
def solve(
    instance: Annotated[Path, typer.Argument(help="instance JSON file")],
    solver: Annotated[str, typer.Option(help="solver name (see `distplan solvers`) or auto")] = "auto",
    time_limit: Annotated[float, typer.Option(help="seconds")] = 60.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    threads: Annotated[int, typer.Option(help="worker threads")] = 1,
    out: Annotated[Path | None, typer.Option(help="write the result JSON here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result JSON instead of a summary")] = False,
) -> None:
    """Solve an instance and print the plan and its objective."""
    _guard(_solve)(instance, solver, time_limit, seed, threads, out, as_json)


def _solve(instance: Path, solver: str, time_limit: float, seed: int, threads: int, out: Path | None, as_json: bool) -> None:
    problem = _load_problem(instance)
    result = solve_problem(problem, solver, time_limit=time_limit, seed=seed, threads=threads)
    payload = result.model_dump_json(indent=1)
    if out is not None:
        _write_json(payload, out)
    if as_json:
        typer.echo(payload)
        return
    typer.echo(result.summary())
    if result.objective is not None:
        typer.echo(f"  {problem_kind(problem.kind).objective_label}: {result.objective:.6g}")
    describe = getattr(result.plan, "describe", None)
    if describe is not None:
        for line in describe(problem):
            typer.echo(f"  {line}")
    if "reason" in result.metrics:
        typer.echo(f"  reason: {result.metrics['reason']}")
    if "violations" in result.metrics:
        for violation in result.metrics["violations"]:
            typer.echo(f"  violation: {violation}")
    if result.status.value == "error":
        raise typer.Exit(code=1)


@app.command()
def evaluate(
    instance: Annotated[Path, typer.Argument(help="instance JSON file")],
    result_file: Annotated[Path, typer.Argument(metavar="RESULT", help="result JSON from `solve --out`")],
) -> None:
    """Re-check a result's plan with the problem's independent evaluator (exit 0 feasible, 1 not)."""
    feasible = _guard(_evaluate)(instance, result_file)
    raise typer.Exit(code=0 if feasible else 1)


def _evaluate(instance: Path, result_file: Path) -> bool:
    problem = _load_problem(instance)
    raw = _read_json(result_file)
    try:
        result = SolveResult.model_validate(raw)
    except ValidationError as exc:
        raise BadInput(_validation_lines(str(result_file), exc)) from exc
    if result.kind != problem.kind:
        raise BadInput([f"{result_file}: kind: result is for {result.kind!r}, the instance is {problem.kind!r}"])
    if result.plan is None:
        raise BadInput([f"{result_file}: plan: the result has no plan (status {result.status})"])
    evaluation = problem_kind(problem.kind).evaluate(problem, result.plan)
    typer.echo(json.dumps({"feasible": evaluation.feasible, "objective": evaluation.objective, "violations": evaluation.violations}))
    return evaluation.feasible


@app.command("solvers")
def list_solvers(
    kind: Annotated[str | None, typer.Option(help="only solvers of this problem kind")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the registered solvers: name, kind, role, available."""
    _guard(_list_solvers)(kind, as_json)


def _list_solvers(kind: str | None, as_json: bool) -> None:
    if kind is not None:
        problem_kind(kind)  # raises ValueError listing known kinds
    rows = [
        {"name": s.name, "kind": s.kind, "role": s.role.value, "available": s.available, "description": s.description}
        for s in registered_solvers(kind)
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "kind", "role", "available", "description")
    for row in rows:
        table.add_row(row["name"], row["kind"], row["role"], "yes" if row["available"] else "no", row["description"])
    Console().print(table)


@app.command()
def schema(kind: Annotated[str, typer.Argument(help=f"problem kind: {', '.join(PROBLEM_TYPES)}")]) -> None:
    """Print the JSON Schema of one problem kind's instances."""
    if kind not in PROBLEM_TYPES:
        _fail([f"kind: unknown problem kind {kind!r}; known kinds: {', '.join(PROBLEM_TYPES)}"])
    typer.echo(json.dumps(problem_schema(kind), indent=1))


@import_app.command("pipedream")
def import_pipedream(
    graph: Annotated[Path, typer.Argument(help="PipeDream graph.txt profile")],
    cluster: Annotated[str, typer.Option(help="cluster preset name or cluster JSON file")],
    microbatches: Annotated[int, typer.Option(help="micro-batches K the profiled minibatch is split into")],
    name: Annotated[str | None, typer.Option(help="instance name")] = None,
    out: Annotated[Path | None, typer.Option(help="write the instance JSON here")] = None,
) -> None:
    """Build a pipeline instance from a PipeDream profile."""
    _guard(_import_pipedream)(graph, cluster, microbatches, name, out)


def _import_pipedream(graph: Path, cluster: str, microbatches: int, name: str | None, out: Path | None) -> None:
    from distplan.planners.pipeline.clusters import load_cluster
    from distplan.planners.pipeline.pipedream_import import import_pipedream as build

    if microbatches < 1:
        raise BadInput([f"--microbatches: must be at least 1, got {microbatches}"])
    if not graph.is_file():
        raise BadInput([f"{graph}: cannot read: no such file"])
    problem = build(graph, load_cluster(cluster), microbatches, name=name)
    _write_json(problem.model_dump_json(), out)


@import_app.command("dockerhub")
def import_dockerhub(
    images: Annotated[Path, typer.Argument(help="Docker Hub image metadata JSON")],
    servers: Annotated[int, typer.Option(help="edge servers")],
    services: Annotated[int, typer.Option(help="microservices")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    name: Annotated[str | None, typer.Option(help="instance name")] = None,
    out: Annotated[Path | None, typer.Option(help="write the instance JSON here")] = None,
) -> None:
    """Build a microservice placement instance from Docker Hub layer metadata."""
    _guard(_import_dockerhub)(images, servers, services, seed, name, out)


def _import_dockerhub(images: Path, servers: int, services: int, seed: int, name: str | None, out: Path | None) -> None:
    from distplan.planners.microservice.dockerhub import build_instance

    if servers < 1 or services < 1:
        raise BadInput(["--servers and --services: must be at least 1"])
    if not images.is_file():
        raise BadInput([f"{images}: cannot read: no such file"])
    problem = build_instance(images, servers=servers, services=services, seed=seed, name=name)
    _write_json(problem.model_dump_json(), out)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
