"""Problem and plan types looked up by their ``kind`` (a plugin registry).

A problem kind registers its types once, from its ``planners/<kind>/kind.py``
(through :func:`distplan.solvers.registry.register_kind`). Loading an instance or
a result looks the ``kind`` up here, so adding a kind edits no union.

Kinds are discovered as pytest and setuptools find plugins: every subpackage of
``distplan.planners`` that has a ``kind`` module, then every module named by an
entry point in the group ``distplan.kinds`` (for kinds shipped by other packages).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import threading

from .base import PlanBase, ProblemBase
from .errors import BadInput

__all__ = ["PLUGIN_GROUP", "discover", "known_kinds", "plan_type", "problem_type", "register_types"]

#: Entry-point group naming modules that register further kinds.
PLUGIN_GROUP = "distplan.kinds"

_PROBLEM_TYPES: dict[str, type[ProblemBase]] = {}
_PLAN_TYPES: dict[str, type[PlanBase]] = {}
_discovered = False
_lock = threading.RLock()


def register_types(kind: str, problem: type[ProblemBase], plan: type[PlanBase]) -> None:
    """Record the problem and plan types of ``kind``."""
    _PROBLEM_TYPES[kind] = problem
    _PLAN_TYPES[kind] = plan


def unregister_types(kind: str) -> None:
    """Forget ``kind`` (tests that register a kind remove it again)."""
    _PROBLEM_TYPES.pop(kind, None)
    _PLAN_TYPES.pop(kind, None)


def discover() -> None:
    """Import every kind module once: ``distplan.planners.*.kind``, then the entry points."""
    global _discovered
    if _discovered:
        return
    with _lock:
        if _discovered:
            return
        _discovered = True
        package = importlib.import_module(f"{__package__.rpartition('.')[0]}.planners")
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda item: item.name):
            name = f"{package.__name__}.{info.name}.kind"
            if info.ispkg and importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        for entry in sorted(
            importlib.metadata.entry_points(group=PLUGIN_GROUP), key=lambda e: e.name
        ):
            importlib.import_module(entry.value)


def known_kinds() -> list[str]:
    """Names of every registered kind, sorted."""
    discover()
    return sorted(_PROBLEM_TYPES)


def _unknown(kind: object) -> BadInput:
    known = ", ".join(known_kinds()) or "none"
    return BadInput("kind", f"unknown problem kind {kind!r}; known kinds: {known}")


def problem_type(kind: object) -> type[ProblemBase]:
    """The problem model of ``kind``.

    Raises
    ------
    BadInput
        When no such kind is registered; the message lists the known kinds.
    """
    discover()
    if not isinstance(kind, str) or kind not in _PROBLEM_TYPES:
        raise _unknown(kind)
    return _PROBLEM_TYPES[kind]


def plan_type(kind: object) -> type[PlanBase]:
    """The plan model of ``kind`` (raises :class:`BadInput` for an unknown kind)."""
    discover()
    if not isinstance(kind, str) or kind not in _PLAN_TYPES:
        raise _unknown(kind)
    return _PLAN_TYPES[kind]
