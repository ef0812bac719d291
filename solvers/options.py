"""Options every solver receives, and what a solver hands back to ``solve()``."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..models.errors import BadInput, DistplanError
from ..models.result import SolveStatus


@dataclass(frozen=True)
class SolveOptions:
    """Run-time options of one solve.

    Attributes
    ----------
    time_limit:
        Wall-clock seconds the solver may use (``inf`` = none).
    seed:
        Random seed; the same instance, solver and seed give the same plan.
    threads:
        Worker threads a backend may use.
    extra:
        Solver-specific options (documented by each solver).
    started_at:
        ``time.monotonic()`` when the solve began.
    """

    time_limit: float = math.inf
    seed: int = 0
    threads: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        """Seconds left before the time limit (``inf`` when there is none)."""
        if math.isinf(self.time_limit):
            return math.inf
        return max(0.0, self.time_limit - (time.monotonic() - self.started_at))

    def expired(self) -> bool:
        """Whether the time limit has passed."""
        return self.remaining() <= 0.0

    def option(self, name: str, default: Any) -> Any:
        """A solver-specific option, or ``default``."""
        return self.extra.get(name, default)

    def within(self, seconds: float) -> SolveOptions:
        """These options for a stage that may use ``seconds`` from now, never past this limit."""
        limit = max(0.0, min(seconds, self.remaining()))
        return replace(self, time_limit=limit, started_at=time.monotonic())


@dataclass
class SolverOutput:
    """What a registered solver function returns; ``solve()`` turns it into a result.

    ``objective`` is the solver's own value for ``plan`` (in the problem's unit);
    ``solve()`` re-checks it with the problem's independent evaluator.
    ``bound`` is a proven bound (lower for minimisation, upper for maximisation).
    """

    status: SolveStatus
    plan: Any = None
    objective: float | None = None
    bound: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


#: Python types an option value may take, by the name used in :class:`Option`.
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "none": (type(None),),
    "any": (object,),
}


@dataclass(frozen=True)
class Option:
    """A solver-specific option: what it means and which values it takes.

    ``types`` names the accepted value types (``"int"``, ``"float"``, ``"bool"``,
    ``"str"``, ``"none"``, ``"any"``), tried in order; ``choices`` restricts string values;
    ``minimum`` and ``maximum`` bound numeric ones. ``solve()`` checks every
    value against its declaration (:meth:`checked`) before the solver runs, so
    a bad value is bad input naming the option, not a solver error. A float
    with an integral value is accepted for ``"int"`` (JSON writes ``3.0``).
    """

    meaning: str
    types: tuple[str, ...] = ("str",)
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in _OPTION_TYPES]
        if unknown or not self.types:
            raise ValueError(
                f"Option types must be among {sorted(_OPTION_TYPES)}, got {self.types}"
            )

    def checked(self, name: str, value: Any) -> Any:
        """``value`` converted to its declared type.

        Raises
        ------
        BadInput
            Naming ``options.<name>`` and what the option accepts.
        """
        for type_name in self.types:
            converted = _as_type(type_name, value)
            if converted is _REJECTED:
                continue
            if type_name == "str" and self.choices is not None and converted not in self.choices:
                continue
            if type_name in ("int", "float") and not self._in_range(converted):
                continue
            return converted
        raise BadInput(f"options.{name}", f"{self.accepts()}, got {value!r}")

    def _in_range(self, number: float) -> bool:
        if not math.isfinite(number):
            return False
        if self.minimum is not None and number < self.minimum:
            return False
        return self.maximum is None or number <= self.maximum

    def accepts(self) -> str:
        """What values the option takes, in words ("must be an integer >= 1")."""
        words = []
        for type_name in self.types:
            if type_name == "str" and self.choices is not None:
                words.append(" or ".join(repr(c) for c in self.choices))
            elif type_name in ("int", "float"):
                noun = "an integer" if type_name == "int" else "a number"
                if self.minimum is not None and self.maximum is not None:
                    noun += f" from {self.minimum:g} to {self.maximum:g}"
                elif self.minimum is not None:
                    noun += f" >= {self.minimum:g}"
                elif self.maximum is not None:
                    noun += f" <= {self.maximum:g}"
                words.append(noun)
            else:
                words.append(
                    {
                        "bool": "true or false",
                        "str": "a string",
                        "none": "null",
                        "any": "any value",
                    }[type_name]
                )
        return "must be " + ", or ".join(words)


_REJECTED = object()


def _as_type(type_name: str, value: Any) -> Any:
    """``value`` as ``type_name``, or ``_REJECTED``."""
    if type_name == "any":
        return value
    if type_name == "none":
        return None if value is None else _REJECTED
    if type_name == "bool":
        return value if isinstance(value, bool) else _REJECTED
    if isinstance(value, bool):
        return _REJECTED  # True is not the integer 1 here
    if type_name == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _REJECTED
    if type_name == "float":
        return float(value) if isinstance(value, int | float) else _REJECTED
    return value if isinstance(value, str) else _REJECTED


def as_option(declaration: str | Option) -> Option:
    """A declaration as an :class:`Option`: a bare meaning accepts any value (no check)."""
    if isinstance(declaration, Option):
        return declaration
    return Option(declaration, types=("any",))


class InfeasibleProblem(DistplanError):
    """Raised by a solver or a pre-check when the instance admits no plan; the message says why."""


def parse_option_pairs(pairs: list[str]) -> dict[str, Any]:
    """Solver options from ``KEY=VALUE`` pairs (the CLI's ``--option``).

    A VALUE that parses as JSON is taken as JSON (``rounds=3``, ``backend="cbc"``),
    anything else as a string.

    Raises
    ------
    BadInput
        When a pair has no ``=`` or no key.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise BadInput("--option", f"expected KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options
