"""Grow the set of deployable (service, server) pairs by LP throughput gain per new byte.

The deployment-level greedy used by LP rounding's fill-up pass. A pair becomes
*deployable* when its server has every layer of the service's image, stored or
borrowed; no instances are placed here. The value of a set of deployable pairs
is the optimum ``Phi`` of the throughput LP (:class:`~.allocation.ThroughputLP`:
compute split fractionally, demand routed one hop), so the gain of a pair
accounts for the compute it would take from other services. Each step makes
deployable the pair with the largest ``Phi`` gain per newly stored byte (layers
already at hand, or borrowable from a neighbour within the link budget, are
free), until no pair gains or fits.
"""

from __future__ import annotations

import heapq
import math
import time

from .allocation import ThroughputLP
from .placement import LayerPlan, Placement

__all__ = ["GROW_SCORES", "grow_deployments"]

GROW_SCORES = ("per_byte", "per_share")
#: Gains below this many requests/s count as none.
_GAIN_EPS = 1e-7


def grow_deployments(
    placement: Placement,
    lp: ThroughputLP,
    *,
    score: str = "per_byte",
    deadline: float = math.inf,
    max_evaluations: int | None = None,
) -> int:
    """Make (service, server) pairs deployable greedily by LP throughput gain per new byte.

    Lazy greedy: every candidate pair keeps the last gain of the throughput LP
    measured for it (initially ``cap`` times the first-order value of an
    instance from the LP duals, :meth:`ThroughputLP.rates`); the candidate with
    the best gain / newly stored bytes is re-measured when its value is stale and
    accepted when it is still best with a fresh value. Accepting stores or
    borrows its missing layers (no instances yet) and enables it in ``lp``. A
    pair whose layers are all present already is enabled at no cost.

    Parameters
    ----------
    placement:
        The layer state, extended in place (instances are left untouched).
    lp:
        The throughput LP over the same problem, extended in place.
    score:
        ``"per_byte"``: gain / new bytes; ``"per_share"``: gain / (new bytes as a
        share of the server's storage budget).
    deadline:
        ``time.monotonic()`` value after which to stop early.
    max_evaluations:
        Most LP re-solves to measure gains (None: no limit); a deterministic
        work limit.

    Returns
    -------
    int
        The number of pairs made deployable.
    """
    if score not in GROW_SCORES:
        raise ValueError(f"score: unknown score {score!r}; valid: {', '.join(GROW_SCORES)}")
    problem = placement.problem
    by_server: dict[int, list[tuple[int, int]]] = {}
    for i, n in lp.pairs:
        by_server.setdefault(n, []).append((i, n))
    rates = lp.rates()
    estimate = {pair: lp.cap[pair] * max(rates.get(pair, 0.0), 0.0) for pair in lp.pairs}
    measured_at = dict.fromkeys(lp.pairs, -1)
    stamp = dict.fromkeys(lp.pairs, 0)
    plans: dict[tuple[int, int], LayerPlan | None] = {}
    heap: list[tuple[float, tuple[int, int], int]] = []
    version = 0
    made = 0
    evaluations = 0

    def cost(pair: tuple[int, int], plan: LayerPlan) -> float:
        if score == "per_share":
            return max(plan.new_bytes, 1) / max(placement.storage_limit[pair[1]], 1.0)
        return float(max(plan.new_bytes, 1))

    def refresh(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Recompute the layer plans of ``pairs``; return those that became free."""
        free = []
        for pair in pairs:
            if pair in lp.enabled:
                continue
            plan = placement.layer_plan(*pair, 0)
            plans[pair] = plan
            stamp[pair] += 1
            if plan is None:
                continue
            if not plan.stores and not plan.borrows:  # costs nothing and cannot lower Phi
                free.append(pair)
                continue
            if estimate[pair] <= _GAIN_EPS:
                continue
            heapq.heappush(heap, (-estimate[pair] / cost(pair, plan), pair, stamp[pair]))
        return free

    def enable(pairs: list[tuple[int, int]]) -> None:
        nonlocal version
        while pairs:
            lp.enable(pairs)
            version += 1
            dirty: set[int] = set()
            for pair in pairs:
                plan = plans[pair]
                assert plan is not None
                placement.apply(pair[0], pair[1], 0, plan)
                touched = {pair[1], *plan.stores, *(lender for _, lender in plan.borrows)}
                for m in plan.stores:
                    touched.update(problem.neighbours[m])
                dirty |= touched
            pairs = refresh([q for m in sorted(dirty) for q in by_server.get(m, ())])

    enable(refresh(list(lp.pairs)))
    while heap and time.monotonic() < deadline:
        key, pair, pair_stamp = heapq.heappop(heap)
        if pair_stamp != stamp[pair] or pair in lp.enabled:
            continue
        plan = plans[pair]
        assert plan is not None
        if measured_at[pair] != version:
            if max_evaluations is not None and evaluations >= max_evaluations:
                break
            evaluations += 1
            estimate[pair] = lp.gain(pair)
            measured_at[pair] = version
            if estimate[pair] > _GAIN_EPS:
                heapq.heappush(heap, (-estimate[pair] / cost(pair, plan), pair, pair_stamp))
            continue
        enable([pair])
        made += 1
    return made
