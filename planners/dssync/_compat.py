"""Temporary bridge to the platform API of issue 7 until it lands on main (removed at merge)."""

from __future__ import annotations

try:
    from ...models.errors import BadInput
except ImportError:  # pragma: no cover - before the platform merge

    class BadInput(ValueError):  # type: ignore[no-redef]
        """Stand-in for ``models.errors.BadInput``: ``str()`` is ``"field: reason"``."""

        def __init__(self, *, field: str, reason: str) -> None:
            super().__init__(f"{field}: {reason}")
            self.field = field
            self.reason = reason


__all__ = ["BadInput"]
