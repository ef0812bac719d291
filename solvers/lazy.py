"""Backends imported on first use, so a kind registers (and its other solvers run) without them."""

from __future__ import annotations

import importlib
from typing import Any

from ..models.errors import BackendMissing

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands for a module; the first attribute read imports it (or raises the install hint)."""

    def __init__(self, name: str, package: str):
        self._name = name
        self._package = package

    def __getattr__(self, attribute: str) -> Any:
        try:
            module = importlib.import_module(self._name)
        except ImportError as exc:
            raise BackendMissing(
                f"{self._name} is not installed: pip install {self._package}"
            ) from exc
        return getattr(module, attribute)


def lazy_module(name: str, package: str) -> Any:
    """A stand-in for module ``name`` (from the distribution ``package``) imported when first used."""
    return _LazyModule(name, package)
