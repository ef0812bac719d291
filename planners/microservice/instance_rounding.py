"""Instance-rounding inequalities: served flow carried by an integer number of instances.

Whenever served flow ``F`` (requests/s) is carried by ``X`` instances of ``mu``
requests/s each, ``X`` a non-negative integer, and comes from at most ``D``
requests/s of demand, ``F <= min(mu X, D)``. With ``q = floor(D / mu)`` and
``rest = D - mu q``, the convex hull of ``{(X, F) : X integer >= 0,
0 <= F <= min(mu X, D)}`` is cut out by ``F <= mu X``, ``F <= D`` and the line
through ``(q, mu q)`` and ``(q + 1, D)``:

    F <= mu q + rest (X - q).

Proof sketch: at integer ``X <= q`` the line is ``>= mu X`` (its slope ``rest <
mu`` and it meets ``mu X`` at ``X = q``); at integer ``X >= q + 1`` it is ``>=
D``. So every point of the set satisfies it, and it is tight at the two
integer points ``X = q`` and ``X = q + 1``. It is redundant when ``rest = 0``.
(Our derivation; the paper's relaxation is not available to us.)

The exact models write it for sets of flow that share one demand cap and one
set of instances (:mod:`.ilp` lists which sets), and the integer allocation
(:mod:`.integer_allocation`) reuses the same rows.
"""

from __future__ import annotations

import math

__all__ = ["rounding_line"]


def rounding_line(rate_rps: float, demand_rps: float) -> tuple[float, float] | None:
    """Slope and intercept of the instance-rounding line (module docstring), or None if redundant.

    Parameters
    ----------
    rate_rps:
        ``mu``, requests/s one instance serves (positive).
    demand_rps:
        ``D``, the most requests/s the flow can come from.

    Returns
    -------
    tuple of float or None
        ``(rest, intercept)`` with the inequality ``F <= intercept + rest X``,
        ``rest = D - mu q`` and ``intercept = (mu - rest) q``; None when
        ``rest`` is 0 (the line adds nothing to ``F <= mu X`` and ``F <= D``).

    Examples
    --------
    >>> rounding_line(10.0, 25.0)  # F <= 10 * 2 + 5 (X - 2)
    (5.0, 10.0)
    """
    whole = math.floor(demand_rps / rate_rps + 1e-9)
    rest = demand_rps - rate_rps * whole
    if rest <= 1e-9 * max(1.0, demand_rps):
        return None
    return rest, (rate_rps - rest) * whole
