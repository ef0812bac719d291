"""Route demand to deployed instances by maximum flow.

Two tools, both over the network of the problem's semantics (one-hop
forwarding: requests of service ``i`` from region ``r`` may be served on ``r`` or
on a direct neighbour of ``r``):

* :func:`route_demand` -- the served requests/s and the routes of a finished
  placement, by one networkx maximum flow
  ``source -> (i, r) [demand] -> (i, n) [unbounded] -> sink [instances * rate]``.
  Every solver fills ``plan.routes`` and its objective from it.
* :class:`ServiceFlow` -- the maximum flow of *one* service kept up to date while
  a heuristic adds instances. The network decomposes by service (no edge joins
  two services), so the served total is the sum of the per-service flows, and
  the gain of more instances of ``i`` on ``n`` is found by augmenting one small
  bipartite residual network instead of re-solving the whole flow.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

from ...models.microservice import MicroserviceProblem, Route

__all__ = ["Routing", "ServiceFlow", "route_demand", "service_flows"]

#: Flows below this many requests/s are treated as zero.
FLOW_EPS = 1e-9


@dataclass(frozen=True)
class Routing:
    """Served requests/s of a placement and the routes that achieve it.

    Attributes
    ----------
    served_rps:
        Value of the maximum flow, requests/s.
    routes:
        One route per (service, region, server) carrying flow.
    served_on:
        ``served_on[(i, n)]``: requests/s of service ``i`` served on server ``n``.
    """

    served_rps: float
    routes: list[Route]
    served_on: dict[tuple[int, int], float]


def route_demand(problem: MicroserviceProblem, instances: Sequence[Sequence[int]]) -> Routing:
    """Route as much demand as the instances can serve (networkx maximum flow).

    Parameters
    ----------
    problem:
        The problem (demands, neighbours, service rates).
    instances:
        ``instances[i][n]``: instances of service ``i`` on server ``n``.

    Returns
    -------
    Routing
        The maximum served requests/s and its routes.

    Examples
    --------
    >>> routing = route_demand(problem, plan.instances)  # doctest: +SKIP
    >>> routing.served_rps <= problem.total_demand_rps  # doctest: +SKIP
    True
    """
    # Integer node labels keep networkx's traversal order, hence the routes,
    # independent of string hashing (PYTHONHASHSEED).
    n_servers = len(problem.servers)
    source, sink = -1, -2

    def demand_node(i: int, region: int) -> int:
        return 2 * (i * n_servers + region)

    def serve_node(i: int, n: int) -> int:
        return 2 * (i * n_servers + n) + 1

    graph = nx.DiGraph()
    graph.add_node(source)
    graph.add_node(sink)
    for demand in problem.demands:
        i, region = demand.service, demand.region
        if demand.rate_rps <= 0:
            continue
        targets = [n for n in problem.reach(region) if instances[i][n] > 0]
        if not targets:
            continue
        graph.add_edge(source, demand_node(i, region), capacity=demand.rate_rps)
        for n in targets:
            graph.add_edge(demand_node(i, region), serve_node(i, n))  # no capacity: unbounded
            graph.add_edge(
                serve_node(i, n),
                sink,
                capacity=instances[i][n] * problem.services[i].service_rate_rps,
            )
    if graph.number_of_edges() == 0:
        return Routing(0.0, [], {})
    value, flow = nx.maximum_flow(graph, source, sink)
    routes: list[Route] = []
    served_on: dict[tuple[int, int], float] = {}
    for node, out in flow.items():
        if node < 0 or node % 2:
            continue
        i, region = divmod(node // 2, n_servers)
        for target, rate in sorted(out.items()):
            if rate > FLOW_EPS:
                n = (target // 2) % n_servers
                routes.append(Route(service=i, region=region, server=n, rate_rps=float(rate)))
                served_on[(i, n)] = served_on.get((i, n), 0.0) + float(rate)
    routes.sort(key=lambda route: (route.service, route.region, route.server))
    return Routing(float(value), routes, served_on)


class ServiceFlow:
    """Maximum flow of one service's demand to its instances, updated incrementally.

    Regions with demand feed servers in their reach; server ``n`` absorbs at most
    its capacity (instances x ``service_rate_rps``). The flow is kept maximal:
    :meth:`add_capacity` augments along shortest residual paths
    (Edmonds-Karp on the bipartite network), and :meth:`augmentable` reports how
    much more could reach one server if its capacity were unlimited.

    Parameters
    ----------
    demand_rps:
        Demand of the service by region, requests/s (positive entries only matter).
    reach:
        ``reach[r]``: servers that may serve region ``r``.
    """

    def __init__(self, demand_rps: Mapping[int, float], reach: Mapping[int, Sequence[int]]) -> None:
        self.regions = sorted(r for r, rate in demand_rps.items() if rate > 0)
        self.supply = {r: float(demand_rps[r]) for r in self.regions}  # unrouted demand per region
        self.servers_of = {r: list(reach[r]) for r in self.regions}
        regions_of: dict[int, list[int]] = {}
        for r in self.regions:
            for n in self.servers_of[r]:
                regions_of.setdefault(n, []).append(r)
        self.regions_of = regions_of
        self.slack = {n: 0.0 for n in regions_of}  # unused capacity per server
        self.flow: dict[tuple[int, int], float] = {
            (r, n): 0.0 for r in self.regions for n in self.servers_of[r]
        }
        self.served_rps = 0.0

    def empty_like(self) -> ServiceFlow:
        """A copy of the network (same demand and reach) carrying no flow."""
        twin = object.__new__(ServiceFlow)
        twin.regions, twin.servers_of, twin.regions_of = (
            self.regions,
            self.servers_of,
            self.regions_of,
        )
        twin.supply = {
            r: self.supply[r] + sum(self.flow[(r, n)] for n in self.servers_of[r])
            for r in self.regions
        }
        twin.slack = dict.fromkeys(self.slack, 0.0)
        twin.flow = dict.fromkeys(self.flow, 0.0)
        twin.served_rps = 0.0
        return twin

    def copy(self) -> ServiceFlow:
        """An independent copy (the structure is shared, the flow state is not)."""
        twin = object.__new__(ServiceFlow)
        twin.regions, twin.servers_of, twin.regions_of = (
            self.regions,
            self.servers_of,
            self.regions_of,
        )
        twin.supply, twin.slack, twin.flow = dict(self.supply), dict(self.slack), dict(self.flow)
        twin.served_rps = self.served_rps
        return twin

    def reaches(self, server: int) -> bool:
        """Whether some demanded region of the service can be served on ``server``."""
        return server in self.regions_of

    def add_capacity(self, server: int, rate_rps: float) -> float:
        """Add ``rate_rps`` of capacity on ``server`` and re-maximise; return the served increase."""
        if server not in self.slack:
            return 0.0
        self.slack[server] += rate_rps
        return self._augment()

    def remove_capacity(self, server: int, rate_rps: float) -> float:
        """Remove ``rate_rps`` of capacity from ``server`` and re-maximise; return the served decrease.

        Flow above the new capacity is sent back to its regions, which then try
        to reach other servers along augmenting paths.
        """
        if server not in self.slack:
            return 0.0
        before = self.served_rps
        self.slack[server] -= rate_rps
        for region in self.regions_of[server]:
            if self.slack[server] >= -FLOW_EPS:
                break
            back = min(self.flow[(region, server)], -self.slack[server])
            if back > 0:
                self.flow[(region, server)] -= back
                self.supply[region] += back
                self.slack[server] += back
                self.served_rps -= back
        self.slack[server] = max(self.slack[server], 0.0)
        self._augment()
        return before - self.served_rps

    def augmentable(self, server: int) -> float:
        """Most extra requests/s ``server`` could serve given unlimited capacity there."""
        if server not in self.slack:
            return 0.0
        twin = self.copy()
        # The flow is maximal, so only ``server`` (given unlimited capacity) can take more.
        twin.slack = dict.fromkeys(twin.slack, 0.0)
        twin.slack[server] = math.inf
        return twin._augment()

    def _augment(self) -> float:
        """Augment along shortest residual paths until none is left; return the added flow."""
        added = 0.0
        while True:
            path = self._shortest_path()
            if path is None:
                return added
            start, steps, end = path
            delta = min(self.supply[start], self.slack[end])
            for region, server, sign in steps:
                if sign < 0:
                    delta = min(delta, self.flow[(region, server)])
            if delta <= FLOW_EPS:
                return added
            self.supply[start] -= delta
            self.slack[end] -= delta
            for region, server, sign in steps:
                self.flow[(region, server)] += sign * delta
            self.served_rps += delta
            added += delta

    def _shortest_path(self) -> tuple[int, list[tuple[int, int, int]], int] | None:
        """BFS from regions with unrouted demand to a server with slack.

        Returns the start region, the path's edges as ``(region, server, +1)``
        (forward, raise the flow) or ``(region, server, -1)`` (backward, lower
        it), and the end server; None when no augmenting path exists.
        """
        # server -> region it was reached from; region -> server it was reached
        # from along a backward edge (None: from the source).
        came_to_server: dict[int, int] = {}
        came_to_region: dict[int, int | None] = {}
        queue: deque[int] = deque()
        for r in self.regions:
            if self.supply[r] > FLOW_EPS:
                came_to_region[r] = None
                queue.append(r)
        end = None
        while queue and end is None:
            r = queue.popleft()
            for n in self.servers_of[r]:
                if n in came_to_server:
                    continue
                came_to_server[n] = r
                if self.slack[n] > FLOW_EPS:
                    end = n
                    break
                for back in self.regions_of[n]:
                    if back not in came_to_region and self.flow[(back, n)] > FLOW_EPS:
                        came_to_region[back] = n
                        queue.append(back)
        if end is None:
            return None
        steps: list[tuple[int, int, int]] = []
        n = end
        while True:
            r = came_to_server[n]
            steps.append((r, n, +1))
            previous = came_to_region[r]
            if previous is None:
                return r, steps, end
            steps.append((r, previous, -1))
            n = previous


def service_flows(problem: MicroserviceProblem) -> dict[int, ServiceFlow]:
    """An empty :class:`ServiceFlow` for every service with positive demand."""
    demand: dict[int, dict[int, float]] = {}
    for d in problem.demands:
        if d.rate_rps > 0:
            demand.setdefault(d.service, {})[d.region] = d.rate_rps
    reach = {r: problem.reach(r) for r in range(len(problem.servers))}
    return {i: ServiceFlow(by_region, reach) for i, by_region in sorted(demand.items())}
