"""Registry of problem kinds and solvers.

A solver is a function ``(problem, SolveOptions) -> SolverOutput`` registered by
name with the kind it solves, its role and the modules it needs. Lists of
available or exact solvers are derived from these attributes, never kept by hand.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..models.result import Evaluation, Role, Sense
from .options import SolveOptions, SolverOutput

SolverFunction = Callable[[Any, SolveOptions], SolverOutput]


@dataclass(frozen=True)
class ProblemKind:
    """What ``solve()`` needs to know about one problem kind.

    Attributes
    ----------
    name:
        The ``kind`` literal of the problem model.
    sense:
        ``"min"`` or ``"max"``.
    evaluate:
        The independent evaluator: ``(problem, plan) -> Evaluation``.
    bound:
        Optional closed-form bound every result reports: a lower bound for
        ``"min"``, an upper bound for ``"max"``.
    precheck:
        Optional ``problem -> reason or None``: a reason why no plan can exist.
    objective_label:
        What the objective measures, with its unit (for summaries).
    """

    name: str
    sense: Sense
    evaluate: Callable[[Any, Any], Evaluation]
    bound: Callable[[Any], float | None] | None = None
    precheck: Callable[[Any], str | None] | None = None
    objective_label: str = "objective"


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver and its capabilities."""

    name: str
    kind: str
    role: Role
    function: SolverFunction
    needs: tuple[str, ...] = ()
    auto_rank: int | None = None
    description: str = ""
    extra_options: dict[str, str] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        """Whether every module the solver needs can be imported."""
        return all(importlib.util.find_spec(module) is not None for module in self.needs)

    @property
    def exact(self) -> bool:
        """Whether the solver proves optimality when it finishes."""
        return self.role is Role.EXACT


_KINDS: dict[str, ProblemKind] = {}
#: Solvers keyed by (kind, name): two kinds may each have a solver called "cpsat".
_SOLVERS: dict[tuple[str, str], SolverSpec] = {}


def register_kind(kind: ProblemKind) -> ProblemKind:
    """Register a problem kind (once per kind)."""
    if kind.name in _KINDS:
        raise ValueError(f"problem kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def register_solver(
    name: str,
    *,
    kind: str,
    role: Role,
    needs: tuple[str, ...] = (),
    auto_rank: int | None = None,
    description: str = "",
    extra_options: dict[str, str] | None = None,
) -> Callable[[SolverFunction], SolverFunction]:
    """Decorator registering a solver function under ``name``.

    ``auto_rank`` orders the candidates of ``solver="auto"`` (lowest first);
    None keeps the solver out of ``auto``. ``extra_options`` documents the
    solver-specific ``options`` it reads (name -> meaning).
    """

    def decorate(function: SolverFunction) -> SolverFunction:
        if (kind, name) in _SOLVERS:
            raise ValueError(f"solver {name!r} is already registered for {kind} problems")
        doc = description or ((function.__doc__ or "").strip().splitlines() or [""])[0]
        _SOLVERS[(kind, name)] = SolverSpec(
            name=name,
            kind=kind,
            role=role,
            function=function,
            needs=needs,
            auto_rank=auto_rank,
            description=doc,
            extra_options=dict(extra_options or {}),
        )
        return function

    return decorate


def _load_planners() -> None:
    """Import the planners package, whose modules register kinds and solvers."""
    from .. import planners  # noqa: F401


def problem_kind(name: str) -> ProblemKind:
    """The registered kind ``name``.

    Raises
    ------
    ValueError
        When no such kind is registered; the message lists the known kinds.
    """
    _load_planners()
    if name not in _KINDS:
        raise ValueError(f"unknown problem kind {name!r}; known kinds: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]


def kinds() -> list[str]:
    """Names of the registered problem kinds."""
    _load_planners()
    return sorted(_KINDS)


def solvers(kind: str | None = None) -> list[SolverSpec]:
    """Registered solvers, optionally of one kind, in registration order."""
    _load_planners()
    return [spec for spec in _SOLVERS.values() if kind is None or spec.kind == kind]


def get_solver(name: str, kind: str) -> SolverSpec:
    """The solver ``name`` for problems of ``kind`` (``"auto"`` picks the preferred one).

    Raises
    ------
    ValueError
        When the name is unknown, solves another kind, or needs a missing
        module; the message lists the valid names or the install hint.
    """
    candidates = solvers(kind)
    if name == "auto":
        ranked = sorted((s for s in candidates if s.auto_rank is not None and s.available), key=lambda s: s.auto_rank)
        if not ranked:
            raise ValueError(f"no available solver for problem kind {kind!r}")
        return ranked[0]
    valid = ", ".join(["auto", *(s.name for s in candidates)])
    spec = _SOLVERS.get((kind, name))
    if spec is None:
        raise ValueError(f"unknown solver {name!r} for {kind} problems; valid solvers: {valid}")
    if not spec.available:
        missing = [m for m in spec.needs if importlib.util.find_spec(m) is None]
        raise ValueError(f"solver {name!r} needs {', '.join(missing)}: pip install {' '.join(missing)}")
    return spec
