"""The heuristic plan the exact solvers start from, computed in a share of the time limit.

Both exact solvers (:mod:`.ilp`, :mod:`.cp_model`) first compute a heuristic
plan and hand it to their backend as a start: a MIP start for HiGHS, a hint
for CP-SAT. The heuristics get at most ``hint_share`` (default 0.5) of the
time left: first the greedy (fast, and the fallback when time is short), then,
with what is left of the share, LP rounding (option ``hint="lp_round"``, the
default); the better plan is the start. The exact solvers return the better of
the backend's incumbent and this plan, so they never serve less than it --
and at a time limit too short for the exact model to be built, they return it.
"""

from __future__ import annotations

import importlib.util
import math

from ...models.microservice import MicroserviceProblem
from ...models.result import SolveStatus
from ...solvers.options import Option, SolveOptions, SolverOutput

__all__ = ["HINT_OPTIONS", "backend_options", "heuristic_start"]

#: The solver options the start reads (name -> meaning).
HINT_OPTIONS = {
    "hint": Option(
        "plan to start from: 'lp_round' (default), 'greedy' or 'none' (also true / false)",
        types=("str", "bool", "none"),
        choices=("lp_round", "greedy", "none"),
    ),
    "hint_share": Option(
        "most share of the time left the start plan may use (default 0.5)",
        types=("float",),
        minimum=1e-9,
        maximum=1.0,
    ),
}


def backend_options(options: SolveOptions) -> SolveOptions:
    """``options`` for the exact backend: the time left minus a reserve for reading the plan.

    The reserve, ``min(1.5 s, 10 %)`` of the time left (0.5 s let the ILP overrun
    60 s by 1.3 s on the held-out 14 x 60 instance), pays for reading the
    solution, routing the plan by maximum flow and trimming it after the
    backend stops, so that the solver returns within its limit.
    """
    remaining = options.remaining()
    if math.isinf(remaining):
        return options
    return options.within(max(0.0, remaining - min(1.5, 0.1 * remaining)))


def heuristic_start(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput | None:
    """The start plan chosen by option ``hint`` (module docstring), or None for ``'none'``.

    Returns
    -------
    SolverOutput or None
        The heuristic's output re-labelled for use as an exact solver's fallback:
        status ``time_limit``, no bound, ``metrics["plan_from"]`` naming the
        heuristic (the exact solver overwrites it when it keeps the plan).

    ``hint`` and ``hint_share`` arrive checked against :data:`HINT_OPTIONS`
    (``solve()`` checks every option against its declaration).
    """
    hint = options.option("hint", "lp_round")
    if hint in (False, None, "none"):
        return None
    share = float(options.option("hint_share", 0.5))
    remaining = options.remaining()
    budget = options if math.isinf(remaining) else options.within(remaining * share)
    from .greedy import solve_greedy

    start = solve_greedy(problem, budget)
    if (
        hint != "greedy"
        and not budget.expired()
        and all(importlib.util.find_spec(m) for m in ("pulp", "highspy"))
    ):
        from .lp_rounding import solve_lp_round

        rounded = solve_lp_round(problem, budget)
        if rounded.plan is not None and (rounded.objective or 0.0) > (start.objective or 0.0):
            start = rounded
    return SolverOutput(
        SolveStatus.TIME_LIMIT,
        plan=start.plan,
        objective=start.objective,
        metrics={**start.metrics, "plan_from": f"the start plan ({hint})"},
    )
