"""Errors of distplan (stand-in written by the edgeflow branch until the platform's lands on main)."""

from __future__ import annotations


class DistplanError(Exception):
    """Base of every distplan error."""


class BadInput(DistplanError, ValueError):
    """Input the user must fix: ``str()`` is ``"<field>: <reason>"``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class SolverFailure(DistplanError, RuntimeError):
    """A solver failed for a reason other than the instance."""


class BackendMissing(DistplanError, ImportError):
    """An optional backend is not installed."""
