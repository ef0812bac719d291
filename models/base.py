"""Base class shared by every typed record in distplan."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Immutable pydantic record that rejects unknown fields.

    Every problem, plan and result derives from it, so a misspelt field in an
    instance file is an error that names the field instead of being ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
