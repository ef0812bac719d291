"""The hand-checked ``line`` instance shared by the evaluator and solver tests.

edge-0 - edge-1 - edge-2 (window 100 s; link budgets 200 MB and 100 MB; edge-2's
registry budget 60 MB) with web = base + app-a (150 MB, 500 millicores, 10 rps
per instance) and db = base + app-b (180 MB, 1000 millicores, 30 rps); demand:
web 25 rps in region 0 and 15 in region 2, db 40 rps in region 1.
"""

from __future__ import annotations

import pytest

from distplan.planners.microservice.examples import line_problem


@pytest.fixture(scope="session")
def make_line_problem():
    """Builder of the line instance: ``make_line_problem(name=..., demands=...)``."""
    return line_problem
