"""Registry of problem kinds and solvers.

A problem kind is declared once, in ``planners/<kind>/kind.py``, by
:func:`register_kind`: its problem and plan models, independent evaluator,
closed-form bound, pre-check, importers and generators (mounted as CLI
subcommands), small example instances and optional picture hook. A solver is a
function ``(problem, SolveOptions) -> SolverOutput`` registered by name with the
kind it solves, its role, the modules it needs and its capabilities. Lists of
available, exact or deterministic solvers are derived from these attributes,
never kept by hand.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models import kinds as model_kinds
from ..models.errors import BackendMissing, BadInput
from ..models.result import Evaluation, Role, Sense
from .options import Option, SolveOptions, SolverOutput, as_option

SolverFunction = Callable[[Any, SolveOptions], SolverOutput]

__all__ = [
    "Command",
    "Example",
    "ProblemKind",
    "SolverSpec",
    "get_solver",
    "kinds",
    "problem_kind",
    "register_kind",
    "register_solver",
    "scoped_registry",
    "solvers",
    "unregister_kind",
]


@dataclass(frozen=True)
class Command:
    """A CLI subcommand a kind contributes: ``distplan import NAME`` or ``distplan generate NAME``.

    ``function`` takes typer-annotated parameters and returns the problem it
    builds; the CLI adds ``--out`` and writes the instance JSON. Several kinds
    may register an importer of the same name; the CLI then dispatches on
    ``--kind``, defaulting to the registration marked ``default``.
    """

    name: str
    function: Callable[..., Any]
    help: str = ""
    default: bool = False


@dataclass(frozen=True)
class Example:
    """A small instance every solver of its kind must handle; ``optimum`` when known."""

    problem: Any
    optimum: float | None = None


@dataclass(frozen=True)
class ProblemKind:
    """Everything distplan needs to know about one problem kind.

    Attributes
    ----------
    name:
        The ``kind`` literal of the problem and plan models.
    problem_type, plan_type:
        The pydantic models (subclasses of ``ProblemBase`` and ``PlanBase``).
    sense:
        ``"min"`` or ``"max"``.
    evaluate:
        The independent evaluator: ``(problem, plan) -> Evaluation``.
    bound:
        Optional closed-form bound every result reports: a lower bound for
        ``"min"``, an upper bound for ``"max"``.
    precheck:
        Optional ``problem -> reason or None``: why no plan can exist.
    objective_label:
        What the objective measures, with its unit (for summaries).
    importers, generators:
        CLI subcommands that build instances (``distplan import``, ``distplan generate``).
    examples:
        Optional ``() -> list[Example]``: small instances for the conformance tests.
    plot:
        Optional ``(problem, result, path) -> None`` drawing a result as a PNG.
    describe:
        Optional ``(problem, plan) -> list[str]``: readable lines about a plan.
    """

    name: str
    problem_type: type
    plan_type: type
    sense: Sense
    evaluate: Callable[[Any, Any], Evaluation]
    bound: Callable[[Any], float | None] | None = None
    precheck: Callable[[Any], str | None] | None = None
    objective_label: str = "objective"
    importers: tuple[Command, ...] = ()
    generators: tuple[Command, ...] = ()
    examples: Callable[[], list[Example]] | None = None
    plot: Callable[[Any, Any, Path], None] | None = None
    describe: Callable[[Any, Any], list[str]] | None = None


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver and its capabilities.

    ``deterministic``: the same instance, seed and options give the same plan,
    also when the time limit cuts the search (budgets in work units).
    ``honours_time_limit``: returns within the time limit plus a small margin.
    """

    name: str
    kind: str
    role: Role
    function: SolverFunction
    needs: tuple[str, ...] = ()
    auto_rank: int | None = None
    description: str = ""
    extra_options: dict[str, Option] = field(default_factory=dict)
    deterministic: bool = True
    honours_time_limit: bool = True

    @property
    def missing(self) -> list[str]:
        """Modules the solver needs that cannot be imported."""
        return [module for module in self.needs if importlib.util.find_spec(module) is None]

    @property
    def available(self) -> bool:
        """Whether every module the solver needs can be imported."""
        return not self.missing

    @property
    def exact(self) -> bool:
        """Whether the solver proves optimality when it finishes."""
        return self.role is Role.EXACT


_KINDS: dict[str, ProblemKind] = {}
#: Solvers keyed by (kind, name): two kinds may each have a solver called "cpsat".
_SOLVERS: dict[tuple[str, str], SolverSpec] = {}


def register_kind(kind: ProblemKind) -> ProblemKind:
    """Register a problem kind (once per kind); its models become loadable by ``kind``.

    Raises
    ------
    ValueError
        When the kind is registered already, or its models do not carry ``kind``.
    """
    if kind.name in _KINDS:
        raise ValueError(f"problem kind {kind.name!r} is already registered")
    for model in (kind.problem_type, kind.plan_type):
        declared = getattr(model, "model_fields", {}).get("kind")
        if declared is None or declared.default != kind.name:
            raise ValueError(f"{model.__name__}.kind must default to {kind.name!r}")
    _KINDS[kind.name] = kind
    model_kinds.register_types(kind.name, kind.problem_type, kind.plan_type)
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind and its solvers (for tests and plugins that unload)."""
    _KINDS.pop(name, None)
    for key in [key for key in _SOLVERS if key[0] == name]:
        del _SOLVERS[key]
    model_kinds.unregister_types(name)


@contextmanager
def scoped_registry() -> Iterator[None]:
    """Registrations made inside the block are undone when it ends (tests use it)."""
    _load_planners()
    kinds_before, solvers_before = dict(_KINDS), dict(_SOLVERS)
    try:
        yield
    finally:
        for name in set(_KINDS) - set(kinds_before):
            model_kinds.unregister_types(name)
        _KINDS.clear()
        _KINDS.update(kinds_before)
        _SOLVERS.clear()
        _SOLVERS.update(solvers_before)


def register_solver(
    name: str,
    *,
    kind: str,
    role: Role,
    needs: tuple[str, ...] = (),
    auto_rank: int | None = None,
    description: str = "",
    extra_options: Mapping[str, str | Option] | None = None,
    deterministic: bool = True,
    honours_time_limit: bool = True,
) -> Callable[[SolverFunction], SolverFunction]:
    """Decorator registering a solver function under ``name``.

    ``auto_rank`` orders the candidates of ``solver="auto"`` (lowest first);
    None keeps the solver out of ``auto``. ``extra_options`` declares the
    solver-specific ``options`` it reads (name -> :class:`~.options.Option`, or
    a bare meaning that accepts any value); ``solve()`` rejects any other key
    and checks every value against its declaration.
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
            extra_options={
                key: as_option(declaration) for key, declaration in (extra_options or {}).items()
            },
            deterministic=deterministic,
            honours_time_limit=honours_time_limit,
        )
        return function

    return decorate


def _load_planners() -> None:
    """Discover every kind module (which registers its kind and solvers)."""
    model_kinds.discover()


def problem_kind(name: str) -> ProblemKind:
    """The registered kind ``name``.

    Raises
    ------
    BadInput
        When no such kind is registered; the message lists the known kinds.
    """
    _load_planners()
    if name not in _KINDS:
        raise BadInput(
            "kind", f"unknown problem kind {name!r}; known kinds: {', '.join(sorted(_KINDS))}"
        )
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
    BadInput
        When the name is unknown or solves another kind; the message lists the valid names.
    BackendMissing
        When the solver needs a module that is not installed; the message is the install hint.
    """
    candidates = solvers(kind)
    if name == "auto":
        ranked = sorted(
            (s for s in candidates if s.auto_rank is not None and s.available),
            key=lambda s: s.auto_rank if s.auto_rank is not None else 0,
        )
        if not ranked:
            raise BackendMissing(f"no available solver for problem kind {kind!r}")
        return ranked[0]
    valid = ", ".join(["auto", *(s.name for s in candidates)])
    spec = _SOLVERS.get((kind, name))
    if spec is None:
        raise BadInput(
            "solver", f"unknown solver {name!r} for {kind} problems; valid solvers: {valid}"
        )
    if not spec.available:
        missing = spec.missing
        raise BackendMissing(
            f"solver {name!r} needs {', '.join(missing)}: pip install {' '.join(missing)}"
        )
    return spec
