"""Options every solver receives, and what a solver hands back to ``solve()``."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
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
