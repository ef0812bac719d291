"""The one result record every solver returns, and the evaluator's verdict."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from .base import StrictModel
from .microservice import MicroservicePlan
from .pipeline import PipelinePlan

SCHEMA_VERSION = 1


class SolveStatus(StrEnum):
    """Outcome of one solve, mapped from every backend's native status."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    TIME_LIMIT = "time_limit"  # stopped by the time limit, with a plan
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"  # time limit or error, without a plan
    ERROR = "error"


#: Statuses that come with a plan; test membership, not one value.
HAS_PLAN = frozenset({SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.TIME_LIMIT})


class Role(StrEnum):
    """What kind of algorithm a solver is."""

    EXACT = "exact"
    APPROXIMATION = "approximation"
    HEURISTIC = "heuristic"
    BASELINE = "baseline"


Sense = Literal["min", "max"]

Plan = Annotated[PipelinePlan | MicroservicePlan, Field(discriminator="kind")]


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """Return ``|objective - bound| / |objective|``, or None when undefined."""
    if objective is None or bound is None:
        return None
    if not (math.isfinite(objective) and math.isfinite(bound)):
        return None
    if objective == 0:
        return 0.0 if bound == 0 else None
    return abs(objective - bound) / abs(objective)


class SolveResult(StrictModel):
    """A solve's outcome, serialised as JSON (``schema_version`` 1).

    ``objective`` is in the problem's unit (seconds for a pipeline iteration,
    requests/s for microservice throughput). ``bound`` is a proven bound (a lower
    bound when ``sense`` is ``"min"``, an upper bound when ``"max"``) or None.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: str
    instance_name: str
    solver: str
    role: Role
    sense: Sense
    status: SolveStatus
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    runtime_s: float = 0.0
    seed: int = 0
    plan: Plan | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)

    @property
    def has_plan(self) -> bool:
        """Whether the result carries a plan."""
        return self.status in HAS_PLAN and self.plan is not None

    def summary(self) -> str:
        """A short human-readable description."""
        parts = [f"{self.kind} '{self.instance_name}' by {self.solver} ({self.role}): {self.status}"]
        if self.objective is not None:
            parts.append(f"objective {self.objective:.6g}")
        if self.bound is not None:
            parts.append(f"bound {self.bound:.6g}")
        if self.gap is not None:
            parts.append(f"gap {100 * self.gap:.2f}%")
        parts.append(f"in {self.runtime_s:.2f} s")
        return ", ".join(parts)


class Evaluation(StrictModel):
    """An independent evaluator's verdict on one plan.

    ``objective`` is recomputed from the plan alone (None when the plan cannot
    be replayed); ``violations`` names every broken constraint.
    """

    feasible: bool
    objective: float | None
    violations: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
