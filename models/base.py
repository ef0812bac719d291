"""Base classes shared by every typed record in distplan.

:class:`StrictModel` is the record every problem, plan and result derives from.
:class:`ProblemBase` and :class:`PlanBase` carry a ``kind``: instance files and
results are dispatched on it through the kind registry (:mod:`.kinds`), so a new
problem kind never edits a closed union.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Largest magnitude any number in a problem may have. Anything larger is a typo
#: or an attack (``1e308`` overflows to ``inf`` as soon as two are multiplied).
MAX_MAGNITUDE = 1e24


def _check_numbers(value: Any) -> None:
    """Raise ValueError for a non-finite or absurdly large number (in lists, tuples and dicts too)."""
    if isinstance(value, bool):
        return
    if isinstance(value, float | int):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if abs(value) > MAX_MAGNITUDE:
            raise ValueError(f"{value:.3g} is out of range (magnitude at most {MAX_MAGNITUDE:.0e})")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_numbers(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_numbers(item)


class StrictModel(BaseModel):
    """Immutable pydantic record that rejects unknown fields and non-finite or absurd numbers.

    Every problem, plan and result derives from it, so a misspelt field in an
    instance file is an error that names the field instead of being ignored.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )

    #: Whether every number must be finite and at most :data:`MAX_MAGNITUDE` (off for results).
    check_numbers: ClassVar[bool] = True

    @field_validator("*", mode="after")
    @classmethod
    def _finite_numbers(cls, value: Any) -> Any:
        if cls.check_numbers:
            _check_numbers(value)
        return value


class ProblemBase(StrictModel):
    """A problem instance of some kind; subclasses fix ``kind`` to a literal."""

    kind: str = Field(description="the problem kind, e.g. 'pipeline'")
    name: str = Field(min_length=1, max_length=200, description="instance name")


class PlanBase(StrictModel):
    """A plan for a problem of some kind; subclasses fix ``kind`` to a literal."""

    kind: str = Field(description="the problem kind this plan solves")
