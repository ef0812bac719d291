"""The ``bench`` and ``plot`` commands; ``cli.py`` mounts them behind its error guard.

The commands raise :class:`~distplan.models.errors.BadInput` for anything the
user must fix; the CLI's guard prints it as one line ``error: FIELD: REASON``
and exits with code 2, never a traceback.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from ..options import parse_option_pairs

__all__ = ["bench", "plot"]


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
    from .progress import make_progress
    from .sweep import SweepConfig, run_sweep

    config = SweepConfig(
        instances=instances,
        out=out,
        solvers=solvers,
        seeds=seeds,
        time_limit_s=time_limit,
        grace_s=grace,
        threads=threads,
        jobs=jobs,
        scheduler=scheduler,
        options=parse_option_pairs(option or []),
        plugins=tuple(plugin or ()),
    )
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: kill the runs, keep the rows
    outcome = run_sweep(config, progress=make_progress())
    for note in outcome.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"{outcome.executed} run(s) done, {outcome.skipped} already recorded, in {outcome.wall_s:.1f} s; "
        f"summary: {out / 'summary.md'}"
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def plot(
    instance: Annotated[Path, typer.Argument(help="instance JSON file")],
    result: Annotated[Path, typer.Argument(help="result JSON from `solve --out`")],
    out: Annotated[
        Path | None, typer.Option(help="PNG file to write (default: RESULT with .png)")
    ] = None,
) -> None:
    """Draw a result's plan as a PNG, from the kind's evaluator's replay."""
    from pydantic import ValidationError

    from ...models import load_instance
    from ...models.instance import read_json
    from ...models.result import SolveResult
    from ..plotting import plot_result
    from .tasks import first_error

    problem = load_instance(instance)
    try:
        solved = SolveResult.model_validate(read_json(result))
    except ValidationError as exc:
        raise first_error(result, exc) from exc
    path = plot_result(problem, solved, out if out is not None else result.with_suffix(".png"))
    typer.echo(f"wrote {path}")
