"""The error contract: bad input, solver failure, missing backend.

* :class:`BadInput` — the user must fix an instance, a result file, an argument
  or an option. It names the field and the reason; the CLI prints it as one line
  and exits with code 2.
* :class:`SolverFailure` — a solver broke (a bug, a backend crash). ``solve()``
  turns it, like any unexpected exception inside a solver, into an ``error``
  result that carries the reason; the CLI exits with code 1.
* :class:`BackendMissing` — a solver needs a package that is not installed; the
  message says what to install (exit 2: the user's environment must change).
"""

from __future__ import annotations


class DistplanError(Exception):
    """Base of every error distplan raises on purpose."""


class BadInput(DistplanError, ValueError):
    """Input the user must fix: ``field`` names it, ``reason`` says what is wrong."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class SolverFailure(DistplanError, RuntimeError):
    """A solver failed for a reason that is not the user's input."""


class BackendMissing(DistplanError, ImportError):
    """A solver needs a package that is not installed; the message is the install hint."""
