"""One sweep run in its own process, killed hard at time limit + grace.

:func:`run_isolated` is what the executors run: it starts
``python -m distplan.solvers.bench TASK.json ROW.json``, waits at most
``time_limit_s + grace_s`` seconds, kills the child if it is still running and
turns whatever happened into one row. Starting a fresh interpreter (instead of
forking) works the same from a process pool, a thread, or a daemonic Dask
worker, and a crash (segfault, ``os._exit``, out of memory) cannot take the
sweep down with it.

The child loads the instance, solves it with :func:`distplan.solve`, re-checks
the plan with the kind's evaluator and writes the row; the objective it records
is the evaluator's.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import platform
import select
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from .tasks import BenchTask

__all__ = ["kill_running", "run_isolated"]

#: Seconds a child may take to import distplan and read its instance.
STARTUP_TIMEOUT_S = 120.0
#: Characters of a crashed child's stderr kept in its row.
STDERR_TAIL_CHARS = 2000

#: Children running in this process (they lead their own sessions, so Ctrl-C does not reach them).
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()


def _task_payload(task: BenchTask) -> dict[str, Any]:
    return {
        "instance": str(task.instance.path),
        "instance_text": task.instance.text,
        "solver": task.solver,
        "seed": task.seed,
        "time_limit_s": task.time_limit_s,
        "threads": task.threads,
        "options": task.options,
        "plugins": list(task.plugins),
    }


def run_isolated(task: BenchTask) -> dict[str, Any]:
    """Run ``task`` in a child process and return its row (never raises for the run's outcome).

    The child signals when it has imported distplan and read the instance; the
    hard kill comes ``time_limit_s + grace_s`` seconds after that signal, so a
    slow interpreter start on a loaded machine does not eat into the solver's
    time. A child that does not start within ``STARTUP_TIMEOUT_S`` is killed too.

    Returns
    -------
    dict
        The row: the task's identity, ``status`` (a ``SolveStatus`` value),
        ``objective`` (the evaluator's), ``bound``, ``gap``, ``runtime_s``
        (the solver's), ``wall_s`` (child start to end, seconds),
        ``verdict`` (``accepted``, ``rejected`` or ``no_plan``) and ``note``.
        A child killed at the deadline gives ``no_solution``; one that dies
        or raises gives ``error`` with the end of its stderr in ``note``.
    """
    limit_s = task.time_limit_s + task.grace_s if math.isfinite(task.time_limit_s) else None
    row = task.identity_row()
    row["host"] = platform.node()
    with tempfile.TemporaryDirectory(prefix="distplan-bench-") as scratch:
        task_file, row_file = Path(scratch) / "task.json", Path(scratch) / "row.json"
        stderr_file = Path(scratch) / "stderr.txt"
        task_file.write_text(json.dumps(_task_payload(task)), encoding="utf-8")
        command = [sys.executable, "-m", "distplan.solvers.bench", str(task_file), str(row_file)]
        started = time.monotonic()
        with (
            stderr_file.open("wb") as stderr_sink,
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr_sink, start_new_session=True
            ) as child,
        ):
            with _RUNNING_LOCK:
                _RUNNING.add(child)
            try:
                killed = _wait(child, limit_s)
            finally:
                with _RUNNING_LOCK:
                    _RUNNING.discard(child)
        row["wall_s"] = time.monotonic() - started
        stderr = stderr_file.read_bytes()
        if killed:
            row.update(
                status="no_solution", verdict="no_plan", killed=True, note=f"killed {killed}"
            )
            return row
        if child.returncode != 0 or not row_file.is_file():
            tail = stderr.decode("utf-8", "replace")[-STDERR_TAIL_CHARS:].strip()
            row.update(
                status="error",
                verdict="no_plan",
                note=f"child exited with code {child.returncode}: {tail}",
            )
            return row
        row.update(json.loads(row_file.read_text(encoding="utf-8")))
    return row


def _wait(child: subprocess.Popen[bytes], limit_s: float | None) -> str:
    """Wait for the child's start signal, then for its end; kill it past either deadline.

    Returns why it was killed ("" when it ended by itself).
    """
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], STARTUP_TIMEOUT_S)
    if not ready:
        _kill_group(child)
        return f"after not starting within {STARTUP_TIMEOUT_S:g} s"
    child.stdout.readline()  # the start signal, or EOF when the child died first
    try:
        child.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        return f"{limit_s:g} s after it started solving (time limit + grace)"
    return ""


def kill_running() -> None:
    """Kill every child this process is running (an interrupted sweep leaves none behind)."""
    with _RUNNING_LOCK:
        children = list(_RUNNING)
    for child in children:
        _kill_group(child)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """Kill the child and any process it started (it leads its own session)."""
    try:
        os.killpg(child.pid, 9)
    except (ProcessLookupError, PermissionError):
        child.kill()


def _import_plugin(plugin: str) -> None:
    """Import a plugin given as a ``.py`` file path or a module name."""
    if plugin.endswith(".py"):
        path = Path(plugin)
        if f"distplan_bench_plugin_{path.stem}" in sys.modules:
            return  # imported already: registering its solvers twice would fail
        spec = importlib.util.spec_from_file_location(f"distplan_bench_plugin_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import plugin {plugin}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(plugin)


def _signal_start() -> None:
    """Tell the parent the solve starts now, then send stdout to /dev/null (solver logs)."""
    os.write(1, b"start\n")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _solve_row(payload: dict[str, Any]) -> dict[str, Any]:
    """Solve the task in this process and re-check the plan; the child's half of a row."""
    from distplan.models import parse_instance
    from distplan.solvers import solve
    from distplan.solvers.registry import get_solver, problem_kind

    for plugin in payload["plugins"]:
        _import_plugin(plugin)
    problem = parse_instance(json.loads(payload["instance_text"]))
    get_solver(payload["solver"], problem.kind)  # imports the planners before the clock starts
    _signal_start()
    result = solve(
        problem,
        payload["solver"],
        time_limit=payload["time_limit_s"],
        seed=payload["seed"],
        threads=payload["threads"],
        options=payload["options"],
    )
    row: dict[str, Any] = {
        "status": result.status.value,
        "role": result.role.value,
        "sense": result.sense,
        "bound": result.bound,
        "gap": result.gap,
        "runtime_s": result.runtime_s,
        "objective": None,
        "verdict": "no_plan",
        "note": result.reason or "",
    }
    if result.plan is not None:
        evaluation = problem_kind(problem.kind).evaluate(problem, result.plan)
        if evaluation.feasible:
            row.update(objective=evaluation.objective, verdict="accepted")
        else:
            row.update(
                status="error",
                verdict="rejected",
                note=f"the evaluator rejects the plan: {'; '.join(evaluation.violations[:3])}",
            )
    return row


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """Exit when the sweep's process dies: the child leads its own session, so no signal reaches it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, name="distplan-bench-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """Child entry point: ``child TASK.json ROW.json``; exit 0 after writing the row."""
    _exit_with_parent()
    task_file, row_file = Path(argv[0]), Path(argv[1])
    payload = json.loads(task_file.read_text(encoding="utf-8"))
    try:
        row = _solve_row(payload)
    except Exception as exc:  # a raising solver is recorded as an error row, not a crash
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        row = {"status": "error", "verdict": "no_plan", "objective": None, "note": f"raised {last}"}
    row_file.write_text(json.dumps(row), encoding="utf-8")
    return 0
