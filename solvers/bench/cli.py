"""The ``bench`` and ``plot`` commands; ``cli.py`` mounts them with :func:`register_commands`.

Bad arguments print one line ``error: ...`` naming the option or file and exit
with code 2, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

__all__ = ["register_commands"]

T = TypeVar("T")


def _one_line(error: Exception) -> str:
    """One readable line for a bad-input error (the first pydantic error, with its location)."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        return f"{error.title}: {location}: {first['msg']}{more}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _bad_input_guard(function: Callable[[], T]) -> T:
    """Run ``function``; bad input (ValueError, missing optional package) -> one line, exit 2."""
    try:
        return function()
    except (ValueError, ImportError, OSError) as exc:
        typer.echo(f"error: {_one_line(exc)}", err=True)
        raise typer.Exit(code=2) from None


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as solver options; VALUE is read as JSON when it parses, else kept as text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option: expected KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def bench(
    instances: Annotated[
        list[str], typer.Argument(help="instance files or globs (quote globs); kinds may be mixed")
    ],
    out: Annotated[
        Path, typer.Option(help="output directory: results.jsonl, results.csv, summary.md, PNGs")
    ],
    solvers: Annotated[str, typer.Option(help="'all' or comma-separated solver names")] = "all",
    seeds: Annotated[int, typer.Option(help="seeds 0..N-1 per instance and solver")] = 1,
    time_limit: Annotated[float, typer.Option(help="seconds per run")] = 60.0,
    grace: Annotated[
        float, typer.Option(help="seconds past the time limit before a run is killed")
    ] = 10.0,
    threads: Annotated[int, typer.Option(help="solver threads per run")] = 1,
    jobs: Annotated[int, typer.Option(help="runs in parallel on this machine")] = 1,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (needs distplan[dask])")
    ] = None,
    plugin: Annotated[
        list[str] | None, typer.Option(help="Python file or module registering extra solvers")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option(help="solver option KEY=VALUE for every run")
    ] = None,
) -> None:
    """Sweep instances x solvers x seeds, each run in its own process; rerunning resumes."""
    from .sweep import SweepConfig, run_sweep

    config = _bad_input_guard(
        lambda: SweepConfig(
            instances=instances,
            out=out,
            solvers=solvers,
            seeds=seeds,
            time_limit_s=time_limit,
            grace_s=grace,
            threads=threads,
            jobs=jobs,
            scheduler=scheduler,
            options=_parse_options(option or []),
            plugins=tuple(plugin or ()),
        )
    )
    outcome = _bad_input_guard(lambda: run_sweep(config))
    for note in outcome.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"{outcome.executed} run(s) done, {outcome.skipped} already recorded, in {outcome.wall_s:.1f} s; "
        f"summary: {out / 'summary.md'}"
    )


def plot(
    instance: Annotated[Path, typer.Argument(help="instance JSON file")],
    result: Annotated[Path, typer.Argument(help="result JSON from `solve --out`")],
    out: Annotated[
        Path | None, typer.Option(help="PNG file to write (default: RESULT with .png)")
    ] = None,
) -> None:
    """Draw a result's plan as a PNG, from the kind's evaluator's replay."""
    target = out if out is not None else result.with_suffix(".png")
    path = _bad_input_guard(lambda: _plot(instance, result, target))
    typer.echo(f"wrote {path}")


def _plot(instance: Path, result_file: Path, target: Path) -> Path:
    from ...models import load_instance
    from ...models.result import SolveResult
    from ..plotting import plot_result

    problem = _load(instance, load_instance)
    result = _load(
        result_file, lambda path: SolveResult.model_validate_json(path.read_text(encoding="utf-8"))
    )
    return plot_result(problem, result, target)


def _load(path: Path, loader: Callable[[Path], T]) -> T:
    """``loader(path)``, with unreadable or invalid files reported as one line naming the file."""
    try:
        return loader(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {_one_line(exc)}") from exc


def register_commands(app: typer.Typer) -> None:
    """Mount ``bench`` and ``plot`` on the CLI ``app``."""
    app.command("bench")(bench)
    app.command("plot")(plot)
