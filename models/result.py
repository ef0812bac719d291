"""The one result record every solver returns, and the evaluator's verdict."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal

from pydantic import ConfigDict, Field, SerializeAsAny, model_validator

from .base import PlanBase, StrictModel
from .kinds import plan_type

#: Version 2 (current): ``reason``, ``violations``, ``evaluator_objective`` and
#: ``instance_hash`` are typed fields (version 1 kept the first three in
#: ``metrics``); version-1 files are read and upgraded.
SCHEMA_VERSION: Final = 2


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
    """A solve's outcome, serialised as JSON (``schema_version`` 2).

    Fields
    ------
    objective:
        The independent evaluator's objective of ``plan``, in the problem's unit
        (seconds for a pipeline iteration, requests/s for microservice
        throughput); a solver whose own figure differs is flagged in
        ``metrics["solver_objective"]`` and ``metrics["objective_mismatch"]``.
    bound:
        A proven bound (lower when ``sense`` is ``"min"``, upper when ``"max"``)
        or None. A bound that contradicts a feasible plan is dropped and
        reported in ``metrics["dropped_bound"]``.
    evaluator_objective:
        What the evaluator found for the plan (also for a rejected plan, when it
        could replay it).
    violations:
        Every constraint the plan breaks (non-empty only with status ``error``).
    reason:
        Why there is no plan (``infeasible``, ``no_solution``, ``error``).
    instance_hash:
        :func:`~distplan.models.instance.content_hash` of the instance solved.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=True
    )
    check_numbers: ClassVar[bool] = False

    schema_version: Literal[2] = SCHEMA_VERSION
    kind: str
    instance_name: str
    instance_hash: str | None = None
    solver: str
    role: Role
    sense: Sense
    status: SolveStatus
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    runtime_s: float = 0.0
    seed: int = 0
    plan: SerializeAsAny[PlanBase] | None = None
    evaluator_objective: float | None = None
    violations: list[str] = Field(default_factory=list)
    reason: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _dispatch_plan(cls, data: Any) -> Any:
        """Upgrade version-1 records and validate ``plan`` with the model of the result's kind."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("schema_version") == 1:
            metrics = dict(data.get("metrics") or {})
            for key in ("reason", "violations", "evaluator_objective"):
                if key in metrics:
                    data.setdefault(key, metrics.pop(key))
            data["metrics"] = metrics
            data["schema_version"] = SCHEMA_VERSION
        plan = data.get("plan")
        if isinstance(plan, dict):
            data["plan"] = plan_type(data.get("kind")).model_validate(plan)
        return data

    @property
    def has_plan(self) -> bool:
        """Whether the result carries a plan."""
        return self.status in HAS_PLAN and self.plan is not None

    def summary(self) -> str:
        """A short human-readable description."""
        parts = [
            f"{self.kind} '{self.instance_name}' by {self.solver} ({self.role}): {self.status}"
        ]
        if self.objective is not None:
            parts.append(f"objective {self.objective:.6g}")
        if self.bound is not None:
            parts.append(f"bound {self.bound:.6g}")
        if self.gap is not None:
            parts.append(f"gap {100 * self.gap:.2f}%")
        parts.append(f"in {self.runtime_s:.2f} s")
        return ", ".join(parts)

    def to_json(self, indent: int | None = 1) -> str:
        """The result as JSON text."""
        return self.model_dump_json(indent=indent)


class Evaluation(StrictModel):
    """An independent evaluator's verdict on one plan.

    ``objective`` is recomputed from the plan alone (None when the plan cannot
    be replayed); ``violations`` names every broken constraint.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=True
    )
    check_numbers: ClassVar[bool] = False

    feasible: bool
    objective: float | None
    violations: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
