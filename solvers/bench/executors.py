"""Where a sweep's runs execute: any ``concurrent.futures.Executor``.

Locally, :func:`local_executor` gives a pool of ``jobs`` workers. Each worker
supervises one child process at a time (see :mod:`.child`), so the pool runs
``jobs`` solver processes in parallel; the workers are threads because the
isolation already comes from the child, and a thread can kill its child when
the sweep is interrupted. On a cluster, :func:`dask_executor` wraps a Dask
``distributed`` client (optional extra ``distplan[dask]``).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from ...models.errors import BackendMissing, BadInput

logger = logging.getLogger(__name__)

__all__ = ["available_cores", "dask_executor", "local_executor", "oversubscription_warning"]


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def oversubscription_warning(jobs: int, threads: int, cores: int | None = None) -> str | None:
    """A warning when ``jobs`` parallel runs of ``threads`` threads each exceed the cores, else None."""
    cores = available_cores() if cores is None else cores
    if jobs * threads <= cores:
        return None
    return (
        f"--jobs {jobs} x --threads {threads} = {jobs * threads} solver threads on {cores} core(s): "
        "runs will compete for CPU and their times and time-limited results will suffer"
    )


def local_executor(jobs: int) -> Executor:
    """A pool running ``jobs`` child processes at a time on this machine.

    Raises
    ------
    BadInput
        When ``jobs`` is below 1.
    """
    if jobs < 1:
        raise BadInput("--jobs", f"must be at least 1, got {jobs}")
    return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="distplan-bench")


def dask_executor(scheduler: Any) -> tuple[Executor, Any]:
    """An executor on a Dask cluster and the client behind it (close it when done).

    Parameters
    ----------
    scheduler:
        A scheduler address (``"tcp://host:8786"``), a ``LocalCluster``, or a
        ``distributed.Client``. Each worker starts one child process per run,
        so every worker must have distplan (and any ``--plugin``) installed.

    Raises
    ------
    BackendMissing
        When ``distributed`` is not installed; the message says how to install it.
    BadInput
        When the scheduler cannot be reached.
    """
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendMissing(
            "--scheduler needs Dask distributed: pip install 'distplan[dask]'"
        ) from exc
    if isinstance(scheduler, Client):
        return scheduler.get_executor(pure=False), None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise BadInput("--scheduler", f"cannot reach {scheduler}: {exc}") from exc
    return client.get_executor(pure=False), client
