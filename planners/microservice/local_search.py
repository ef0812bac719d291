"""Local search on the instance mix of each server (layers fixed).

Greedy and rounded plans fill a server's compute in the order they meet the
services, and an early, compute-hungry service may crowd out a more efficient
one whose layers are also at hand. The swap move fixes that: on server ``n``,
remove ``q`` instances of a deployed service ``j`` (the fewest that make room)
and add ``k`` instances of a service ``i`` whose layers ``n`` already has,
``k`` as many as fit and are useful. The move is exact: the served throughput
decomposes by service, so its change is the gain of ``i``'s maximum flow minus
the loss of ``j``'s, both computed on copies of the per-service flows. The best
improving move of each server is applied; passes repeat until none improves.
"""

from __future__ import annotations

import math
import time

from .placement import Placement

__all__ = ["improve_instances"]

#: Smallest improvement accepted, requests/s.
_MIN_GAIN = 1e-6


def improve_instances(
    placement: Placement, *, deadline: float = math.inf, max_passes: int = 50
) -> int:
    """Apply improving swap moves (module docstring) until none is left.

    Parameters
    ----------
    placement:
        The state to improve in place; layers are not changed.
    deadline:
        ``time.monotonic()`` value after which to stop.
    max_passes:
        Most passes over all servers.

    Returns
    -------
    int
        The number of moves applied.
    """
    problem = placement.problem
    services = problem.services
    flows = placement.flows
    hosts: dict[int, list[int]] = {}  # server -> demanded services it can serve
    for i, flow in flows.items():
        for n in range(len(problem.servers)):
            if flow.reaches(n):
                hosts.setdefault(n, []).append(i)
    moves = 0
    for _ in range(max_passes):
        improved = False
        for n in sorted(hosts):
            if time.monotonic() >= deadline:
                return moves
            ready = [i for i in hosts[n] if placement.deployable(i, n)]
            running = [j for j in ready if placement.instances[j][n] > 0]
            if not running or len(ready) < 2:
                continue
            augmentable = {i: flows[i].augmentable(n) for i in ready}
            left = problem.servers[n].compute_capacity - placement.compute_used[n]
            best: tuple[float, int, int, int, int] | None = None
            for j in running:
                out = services[j]
                for i in ready:
                    if i == j or augmentable[i] <= _MIN_GAIN:
                        continue
                    spec = services[i]
                    short = spec.compute_per_instance - left
                    q = 0 if short <= 0 else math.ceil(short / out.compute_per_instance - 1e-9)
                    if q == 0 or q > placement.instances[j][n]:
                        continue
                    room = math.floor(
                        (left + q * out.compute_per_instance) / spec.compute_per_instance + 1e-9
                    )
                    k = min(room, math.ceil(augmentable[i] / spec.service_rate_rps - 1e-9))
                    gain = min(k * spec.service_rate_rps, augmentable[i])
                    if best is not None and gain <= best[0]:
                        continue  # the net gain is at most the gain: cannot beat the best
                    loss = flows[j].copy().remove_capacity(n, q * out.service_rate_rps)
                    net = gain - loss
                    if net > _MIN_GAIN and (best is None or net > best[0]):
                        best = (net, j, q, i, k)
            if best is not None:
                _, j, q, i, k = best
                before = placement.served_rps
                placement.remove(j, n, q)
                added = placement.admit(i, n, k)
                if placement.served_rps > before + _MIN_GAIN:
                    moves += 1
                    improved = True
                else:  # the addition did not fit (e.g. a storage charge): undo
                    placement.remove(i, n, added)
                    placement.admit(j, n, q)
        if not improved:
            break
    return moves
