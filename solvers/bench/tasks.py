"""What a sweep runs: one :class:`BenchTask` per (instance, solver, seed), and its key.

A task's key is the SHA-256 of the instance's content hash, the solver, the run
options and the seed, so renaming or moving an instance file keeps its finished
rows, and editing its content (or changing the time limit) runs it again.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ...models.errors import BadInput
from ...models.instance import content_hash, parse_instance, read_json
from ..registry import SolverSpec, solvers

__all__ = ["BenchTask", "InstanceFile", "expand_instances", "plan_tasks", "select_solvers"]

#: Most runs one sweep may plan; a larger sweep is almost certainly a mistyped glob.
MAX_TASKS = 100_000


@dataclass(frozen=True)
class InstanceFile:
    """An instance file of a sweep: its path, kind, name, content hash and content.

    ``sha256`` is the platform's ``content_hash`` of the validated problem (the
    ``instance_hash`` of its results), so reformatting the file keeps its rows.
    The content travels with the task, so Dask workers need not see the file.
    """

    path: Path
    kind: str
    name: str
    sha256: str
    text: str = field(repr=False, compare=False)


@dataclass(frozen=True)
class BenchTask:
    """One run of a sweep, self-contained so that it can be shipped to a worker.

    Attributes
    ----------
    instance:
        The instance file (read again by the child process).
    solver:
        Registered solver name for the instance's kind.
    seed:
        Random seed of the run.
    time_limit_s:
        Seconds the solver may use; the child is killed after ``time_limit_s + grace_s``.
    grace_s:
        Seconds past the time limit before the hard kill.
    threads:
        Worker threads the solver may use.
    options:
        Solver-specific options (as for ``solve(options=...)``).
    plugins:
        Python files or modules the child imports before solving (they may
        register extra solvers).
    """

    instance: InstanceFile
    solver: str
    seed: int
    time_limit_s: float
    grace_s: float = 10.0
    threads: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Hex SHA-256 of (instance content, kind, solver, options, seed): the row's identity."""
        identity = {
            "instance_sha256": self.instance.sha256,
            "kind": self.instance.kind,
            "solver": self.solver,
            "options": {
                "time_limit_s": self.time_limit_s,
                "threads": self.threads,
                "extra": self.options,
            },
            "seed": self.seed,
        }
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def identity_row(self) -> dict[str, Any]:
        """A row saying which run this is, with its outcome fields still empty (None)."""
        return {
            "key": self.key,
            "instance": str(self.instance.path),
            "instance_name": self.instance.name,
            "instance_sha256": self.instance.sha256,
            "kind": self.instance.kind,
            "solver": self.solver,
            "seed": self.seed,
            "time_limit_s": self.time_limit_s,
            "threads": self.threads,
            "options": self.options,
            "objective": None,
            "bound": None,
            "gap": None,
            "runtime_s": None,
            "note": "",
        }


def first_error(source: Path, error: ValidationError) -> BadInput:
    """The first error of a pydantic validation as one :class:`BadInput` naming the file and field."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return BadInput(f"{source}: {location}", f"{first['msg']}{more}")


def _read_instance(path: Path) -> InstanceFile:
    """Load and validate an instance file; its key part is the platform's ``content_hash``.

    Raises
    ------
    BadInput
        When the file cannot be read, is not JSON, or is not a valid instance
        (the first invalid field is named).
    """
    data = read_json(path)
    try:
        problem = parse_instance(data)
    except BadInput as exc:
        raise BadInput(f"{path}: {exc.field}", exc.reason) from exc
    except ValidationError as exc:
        raise first_error(path, exc) from exc
    return InstanceFile(
        path=path,
        kind=problem.kind,
        name=problem.name,
        sha256=content_hash(problem),
        text=path.read_text(encoding="utf-8"),
    )


def expand_instances(patterns: Sequence[str]) -> list[InstanceFile]:
    """Instance files named by ``patterns`` (paths or globs), each once, in sorted order.

    Raises
    ------
    BadInput
        When a pattern matches no file, or a file is unreadable or has no kind.
    """
    paths: dict[Path, None] = {}
    for pattern in patterns:
        matches = (
            sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        )
        files = [Path(m) for m in matches if Path(m).is_file()]
        if not files:
            raise BadInput("INSTANCES", f"{pattern!r} matches no file")
        for path in files:
            paths.setdefault(path, None)
    return [_read_instance(path) for path in sorted(paths)]


def select_solvers(
    names: str, kinds: Iterable[str]
) -> tuple[dict[str, list[SolverSpec]], list[str]]:
    """The solvers to run on each kind (``"all"`` or a comma-separated list of names), and notes.

    A named solver runs on every kind that registers it and is skipped, with a
    note, on the kinds that do not; a name no kind of the sweep registers is an
    error. Unavailable solvers (missing backend) are skipped with a note.

    Raises
    ------
    BadInput
        On an empty list or a name that no kind in the sweep registers.
    """
    kinds = sorted(set(kinds))
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise BadInput("--solvers", "give 'all' or a comma-separated list of solver names")
    chosen: dict[str, list[SolverSpec]] = {}
    notes: list[str] = []
    known: set[str] = set()
    for kind in kinds:
        specs = solvers(kind)
        names_of_kind = {s.name for s in specs}
        known.update(names_of_kind)
        if wanted != ["all"]:
            specs = [s for s in specs if s.name in wanted]
            notes += [
                f"solver {n!r} does not handle kind {kind!r}; skipped there"
                for n in wanted
                if n not in names_of_kind
            ]
        notes += [
            f"solver {s.name!r} ({kind}) needs {', '.join(s.needs)}; skipped"
            for s in specs
            if not s.available
        ]
        chosen[kind] = [s for s in specs if s.available]
    unknown = [n for n in wanted if n != "all" and n not in known]
    if unknown:
        raise BadInput(
            "--solvers",
            f"unknown solver(s) {', '.join(unknown)} for the sweep's kinds "
            f"({', '.join(kinds)}); known: {', '.join(sorted(known))}",
        )
    return chosen, notes


def plan_tasks(
    instances: Sequence[InstanceFile],
    solvers_of_kind: dict[str, list[SolverSpec]],
    seeds: int,
    **run: Any,
) -> tuple[list[BenchTask], list[str]]:
    """Every (instance, solver, seed) task, and notes on instances no chosen solver handles.

    ``run`` holds the :class:`BenchTask` run fields (``time_limit_s``,
    ``grace_s``, ``threads``, ``options``, ``plugins``); seeds are ``0 .. seeds-1``.

    Raises
    ------
    BadInput
        When the sweep would exceed ``MAX_TASKS`` runs.
    """
    tasks: list[BenchTask] = []
    notes: list[str] = []
    for instance in instances:
        specs = solvers_of_kind.get(instance.kind, [])
        if not specs:
            notes.append(
                f"{instance.path}: no chosen solver handles kind {instance.kind!r}; skipped"
            )
            continue
        for spec in specs:
            for seed in range(seeds):
                tasks.append(BenchTask(instance=instance, solver=spec.name, seed=seed, **run))
        if len(tasks) > MAX_TASKS:
            raise BadInput(
                "--seeds",
                f"the sweep has more than {MAX_TASKS} runs; narrow INSTANCES, --solvers or --seeds",
            )
    return tasks, notes
