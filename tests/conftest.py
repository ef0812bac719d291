"""Shared fixtures: paths to the repository, shipped instances and ../shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "instances"
#: ../shared/data beside the repository (CI lays it there), or $DISTPLAN_SHARED_DATA.
SHARED_DATA = Path(os.environ.get("DISTPLAN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it fail (never skip) when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"../shared/data not found beside the repository ({SHARED_DATA}); CI lays it there"
        )
    return SHARED_DATA
