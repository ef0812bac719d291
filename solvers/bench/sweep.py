"""The sweep: instances x solvers x seeds through an executor, rows appended as they finish."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...models.errors import BadInput
from ..registry import get_solver, problem_kind
from .child import _import_plugin, kill_running, run_isolated
from .executors import dask_executor, local_executor, oversubscription_warning
from .figures import draw_figures
from .progress import PlainProgress, Progress
from .report import summary_markdown, write_csv
from .rows import RowStore
from .tasks import BenchTask, expand_instances, plan_tasks, select_solvers

logger = logging.getLogger(__name__)

__all__ = ["SweepConfig", "SweepOutcome", "run_sweep", "write_outputs"]

#: Most seeds per (instance, solver).
MAX_SEEDS = 1000


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep and how.

    Attributes
    ----------
    instances:
        Instance files or glob patterns; kinds may be mixed.
    out:
        Output directory (``results.jsonl``, ``results.csv``, ``summary.md``, PNGs).
    solvers:
        ``"all"`` or comma-separated solver names.
    seeds:
        Seeds ``0 .. seeds-1`` per (instance, solver).
    time_limit_s:
        Seconds per run.
    grace_s:
        Seconds past the time limit before the run's process is killed.
    threads:
        Solver threads per run.
    jobs:
        Runs in parallel on this machine (ignored with ``scheduler``).
    scheduler:
        A Dask scheduler address, ``LocalCluster`` or ``Client``; None runs locally.
    options:
        Solver-specific options passed to every run.
    plugins:
        Python files or modules imported (here and in every run) before solving,
        e.g. to register extra solvers.
    """

    instances: Sequence[str]
    out: Path
    solvers: str = "all"
    seeds: int = 1
    time_limit_s: float = 60.0
    grace_s: float = 10.0
    threads: int = 1
    jobs: int = 1
    scheduler: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()

    def check(self) -> None:
        """Reject out-of-range settings, naming the option.

        Raises
        ------
        BadInput
            With ``--option: reason``.
        """
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise BadInput("--seeds", f"must be between 1 and {MAX_SEEDS}, got {self.seeds}")
        if not (self.time_limit_s > 0) or math.isnan(self.time_limit_s):
            raise BadInput("--time-limit", f"must be positive seconds, got {self.time_limit_s}")
        if not (math.isfinite(self.grace_s) and self.grace_s >= 0):
            raise BadInput("--grace", f"must be finite non-negative seconds, got {self.grace_s}")
        if self.threads < 1:
            raise BadInput("--threads", f"must be at least 1, got {self.threads}")
        if self.jobs < 1:
            raise BadInput("--jobs", f"must be at least 1, got {self.jobs}")
        if self.out.exists() and not self.out.is_dir():
            raise BadInput("--out", f"{self.out} exists and is not a directory")


@dataclass
class SweepOutcome:
    """What a sweep did: runs planned, skipped (already recorded) and executed, notes and files."""

    planned: int
    skipped: int
    executed: int
    notes: list[str]
    files: list[Path]
    wall_s: float


def _tasks(config: SweepConfig) -> tuple[list[BenchTask], list[str]]:
    for plugin in config.plugins:
        _import_plugin(plugin)
    instances = expand_instances(config.instances)
    chosen, notes = select_solvers(config.solvers, (i.kind for i in instances))
    tasks, skipped = plan_tasks(
        instances,
        chosen,
        config.seeds,
        time_limit_s=config.time_limit_s,
        grace_s=config.grace_s,
        threads=config.threads,
        options=dict(config.options),
        plugins=config.plugins,
    )
    return tasks, notes + skipped


def run_sweep(
    config: SweepConfig,
    progress: Progress | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> SweepOutcome:
    """Run every task not yet recorded in ``out/results.jsonl``, then write the outputs.

    Parameters
    ----------
    config:
        The sweep.
    progress:
        Progress reporter (plain lines on stderr by default).
    on_row:
        Called with every new row after it is written.

    Returns
    -------
    SweepOutcome
        Counts, notes and the files written.

    Raises
    ------
    BadInput
        Bad settings, instances or solver names (the message names the option).
    KeyboardInterrupt
        Re-raised after running children are killed; the rows recorded so far
        stay in ``results.jsonl`` and a rerun resumes from them.
    """
    config.check()
    started = time.monotonic()
    tasks, notes = _tasks(config)
    for note in notes:
        logger.warning("%s", note)
    if config.scheduler is None:
        warning = oversubscription_warning(config.jobs, config.threads)
        if warning:
            logger.warning("%s", warning)
            notes.append(warning)
    store = RowStore(config.out / "results.jsonl")
    done = store.done_keys()
    todo = [task for task in tasks if task.key not in done]
    progress = progress if progress is not None else PlainProgress()
    progress.start(len(todo), len(tasks) - len(todo))
    try:
        executed = _execute(config, todo, store, progress, on_row)
    finally:
        progress.stop()
    keys = {task.key for task in tasks}
    rows = [row for row in store.read() if row["key"] in keys]
    files = write_outputs(rows, config.out)
    return SweepOutcome(
        len(tasks), len(tasks) - len(todo), executed, notes, files, time.monotonic() - started
    )


def _execute(
    config: SweepConfig,
    todo: list[BenchTask],
    store: RowStore,
    progress: Progress,
    on_row: Callable[[dict[str, Any]], None] | None,
) -> int:
    """Submit ``todo`` and record each row as its run finishes; return the runs recorded."""
    if not todo:
        return 0
    client = None
    executor: Executor
    if config.scheduler is not None:
        executor, client = dask_executor(config.scheduler)
    else:
        executor = local_executor(config.jobs)
    futures: dict[Future[dict[str, Any]], BenchTask] = {}
    executed = 0
    try:
        futures = {executor.submit(run_isolated, task): task for task in todo}
        for future in as_completed(futures):
            row = _row_of(future, futures[future])
            store.append(row)
            executed += 1
            progress.advance(row)
            if on_row is not None:
                on_row(row)
    except BaseException:
        _abandon(executor, futures, local=client is None and config.scheduler is None)
        raise
    finally:
        executor.shutdown(wait=True)
        if client is not None:
            client.close()
    return executed


def _row_of(future: Future[dict[str, Any]], task: BenchTask) -> dict[str, Any]:
    """The run's row, with role and sense from the registry when the child could not say.

    A worker that failed outside the child (a lost Dask worker) gives an error row.
    """
    try:
        row = future.result()
    except Exception as exc:
        row = task.identity_row()
        row.update(
            status="error",
            verdict="no_plan",
            objective=None,
            note=f"the executor lost the run: {type(exc).__name__}: {exc}",
        )
    row.setdefault("role", get_solver(task.solver, task.instance.kind).role.value)
    row.setdefault("sense", problem_kind(task.instance.kind).sense)
    return row


def _abandon(
    executor: Executor, futures: dict[Future[dict[str, Any]], BenchTask], local: bool
) -> None:
    """Cancel queued runs; locally, kill running children until every run has stopped."""
    for future in futures:
        future.cancel()
    executor.shutdown(wait=False, cancel_futures=True)
    pending = [f for f in futures if not f.done()] if local else []
    while pending:
        kill_running()
        _, still = wait(pending, timeout=0.2)
        pending = list(still)


def write_outputs(rows: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Write ``results.csv``, ``summary.md`` and (with matplotlib) the PNG figures into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, summary_path = out / "results.csv", out / "summary.md"
    write_csv(rows, csv_path)
    text = summary_markdown(rows)
    files = [out / "results.jsonl", csv_path, summary_path]
    try:
        files += draw_figures(rows, out) if rows else []
    except ImportError as exc:
        text += f"\n(no figures: {exc})\n"
    summary_path.write_text(text, encoding="utf-8")
    return files
