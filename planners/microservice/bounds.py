"""Cheap, provably valid upper bounds on the served requests/s.

Notation: ``C_m`` is the compute capacity of server ``m`` (millicores), ``c_i``
the ``compute_per_instance`` and ``mu_i`` the ``service_rate_rps`` of service
``i``, ``w_i = c_i / mu_i`` the millicores one request/s of ``i`` costs, and
``d_ir`` the demand of ``i`` in region ``r``. Server ``m`` *can host* ``i``
(:func:`can_host`) when ``C_m >= c_i`` and the image of ``i`` fits in what ``m``
can hold or borrow (:meth:`MicroserviceProblem.max_holdable_bytes`); a server
running ``i`` must satisfy both. ``H(i, r)`` are the servers in the reach of
``r`` (``r`` and its neighbours) that can host ``i``.

Every feasible plan's served flow ``f_irm`` (service ``i``, region ``r``, server
``m``) satisfies the linear relaxation

    sum_m f_irm <= d_ir,            f_irm = 0 unless m in H(i, r),
    sum_{i,r} w_i f_irm <= C_m,     f_irm <= floor(C_m / c_i) mu_i,

because the instances of ``i`` on ``m`` serve at most ``mu_i`` each and use ``c_i``
each. It ignores storage shared between services, registry and link budgets
and integrality. :func:`throughput_upper_bound` returns the smaller of two
closed-form bounds on that relaxation (no LP solver needed):

* :func:`flow_relaxation_bound`, a maximum flow source -> (i, r) [d_ir] ->
  (i, m) for m in H(i, r) [floor(C_m / c_i) mu_i] -> m -> sink, where the edge
  m -> sink carries the fractional-knapsack optimum of server ``m`` alone
  (services by decreasing ``mu_i / c_i``, each offering the demand that can
  reach ``m``, until ``C_m`` runs out). It captures locality.
* :func:`compute_dual_bound`, the value of a feasible dual of the relaxation
  with one price ``lam`` per millicore on every server:
  ``lam * sum_m C_m + sum_{(i,r) : H(i,r) nonempty} d_ir * max(0, 1 - lam w_i)``,
  minimised exactly over ``lam`` (the minimum of this convex piecewise-linear
  function is at ``lam = 0`` or at a breakpoint ``1 / w_i``). Weak duality makes
  every ``lam >= 0`` valid. It captures that compute cannot serve all demand.

Both are never above the total demand.
"""

from __future__ import annotations

import math

import networkx as nx

from ...models.microservice import MicroserviceProblem

__all__ = ["can_host", "compute_dual_bound", "flow_relaxation_bound", "throughput_upper_bound"]


def can_host(problem: MicroserviceProblem, service: int, server: int) -> bool:
    """Whether ``server`` has the compute for one instance of ``service`` and room for its image.

    A necessary condition for running ``service`` on ``server``: compute
    capacity >= ``compute_per_instance`` and image bytes <= the most the server
    can hold or borrow.
    """
    spec = problem.services[service]
    return problem.servers[
        server
    ].compute_capacity >= spec.compute_per_instance and problem.image_bytes(
        service
    ) <= problem.max_holdable_bytes(server)


def _hosts_in_reach(problem: MicroserviceProblem) -> list[list[int]]:
    """``H(i, r)`` of every demand with a positive rate (empty list otherwise), in demand order."""
    holdable = [problem.max_holdable_bytes(m) for m in range(len(problem.servers))]
    out: list[list[int]] = []
    for demand in problem.demands:
        spec = problem.services[demand.service]
        need = problem.image_bytes(demand.service)
        hosts = [
            m
            for m in problem.reach(demand.region)
            if problem.servers[m].compute_capacity >= spec.compute_per_instance
            and need <= holdable[m]
        ]
        out.append(hosts if demand.rate_rps > 0 else [])
    return out


def _most_instances(capacity: float, per_instance: float) -> int:
    """``floor(capacity / per_instance)``, never rounded down by float noise."""
    return math.floor(capacity / per_instance + 1e-9)


def flow_relaxation_bound(problem: MicroserviceProblem) -> float:
    """Maximum-flow bound of the relaxation (locality and per-server compute), requests/s.

    Parameters
    ----------
    problem:
        The microservice problem.

    Returns
    -------
    float
        The maximum flow described in the module docstring (0.0 without demand).
    """
    services, servers = problem.services, problem.servers
    hosts = _hosts_in_reach(problem)
    reachable: list[dict[int, float]] = [{} for _ in servers]  # server -> service -> demand rps
    graph = nx.DiGraph()
    source, sink = ("source",), ("sink",)
    for demand, targets in zip(problem.demands, hosts, strict=True):
        if not targets:
            continue
        i, region = demand.service, demand.region
        spec = services[i]
        graph.add_edge(source, ("demand", i, region), capacity=demand.rate_rps)
        for m in targets:
            reachable[m][i] = reachable[m].get(i, 0.0) + demand.rate_rps
            graph.add_edge(("demand", i, region), ("serve", i, m))
            offer = (
                _most_instances(servers[m].compute_capacity, spec.compute_per_instance)
                * spec.service_rate_rps
            )
            graph.add_edge(("serve", i, m), ("server", m), capacity=offer)
    for m in range(len(servers)):
        if reachable[m]:
            graph.add_edge(("server", m), sink, capacity=_knapsack_rps(problem, m, reachable[m]))
    if not graph.has_node(source) or not graph.has_node(sink):
        return 0.0
    value, _ = nx.maximum_flow(graph, source, sink)
    return float(value)


def _knapsack_rps(problem: MicroserviceProblem, server: int, reachable: dict[int, float]) -> float:
    """Fractional-knapsack optimum of one server: most requests/s its compute could serve.

    Service ``i`` offers ``min(reachable[i], floor(C / c_i) mu_i)`` requests/s at
    ``w_i`` millicores each; taking services by increasing ``w_i`` (ties by index)
    until the compute runs out is optimal for the fractional knapsack.
    """
    services = problem.services
    capacity = problem.servers[server].compute_capacity
    remaining = capacity
    served = 0.0
    order = sorted(
        reachable,
        key=lambda i: (services[i].compute_per_instance / services[i].service_rate_rps, i),
    )
    for i in order:
        spec = services[i]
        per_rps = spec.compute_per_instance / spec.service_rate_rps
        offer = min(
            reachable[i],
            _most_instances(capacity, spec.compute_per_instance) * spec.service_rate_rps,
        )
        take = min(offer, remaining / per_rps)
        served += take
        remaining -= take * per_rps
        if remaining <= 0:
            break
    return served


def compute_dual_bound(problem: MicroserviceProblem) -> float:
    """Dual bound of the relaxation with one compute price on every server, requests/s.

    Parameters
    ----------
    problem:
        The microservice problem.

    Returns
    -------
    float
        ``min over lam >= 0`` of ``lam * sum_m C_m + sum d_ir max(0, 1 - lam w_i)``
        over the demands with a possible host in reach; ``sum_m`` runs over the
        servers that can host some such demand (0.0 without demand).
    """
    services, servers = problem.services, problem.servers
    hosts = _hosts_in_reach(problem)
    items: list[tuple[float, float]] = []  # (w_i millicores per rps, demand rps)
    used: set[int] = set()
    for demand, targets in zip(problem.demands, hosts, strict=True):
        if targets:
            spec = services[demand.service]
            items.append((spec.compute_per_instance / spec.service_rate_rps, demand.rate_rps))
            used.update(targets)
    if not items:
        return 0.0
    total_compute = sum(servers[m].compute_capacity for m in used)
    items.sort()
    best = sum(rate for _, rate in items)  # lam = 0
    # At lam = 1 / w_k only the items with w_j < w_k contribute d_j (1 - w_j / w_k).
    below_rate = below_cost = 0.0
    k = 0
    while k < len(items):
        w_k = items[k][0]
        best = min(best, total_compute / w_k + below_rate - below_cost / w_k)
        while k < len(items) and items[k][0] == w_k:
            below_rate += items[k][1]
            below_cost += items[k][0] * items[k][1]
            k += 1
    return best


def throughput_upper_bound(problem: MicroserviceProblem) -> float:
    """Upper bound on the requests/s any feasible plan serves.

    Parameters
    ----------
    problem:
        The microservice problem.

    Returns
    -------
    float
        The smaller of :func:`flow_relaxation_bound` and
        :func:`compute_dual_bound`, requests/s.

    Examples
    --------
    >>> from distplan.models import load_instance
    >>> problem = load_instance("instances/microservice/small-4x10.json")  # doctest: +SKIP
    >>> throughput_upper_bound(problem) <= problem.total_demand_rps  # doctest: +SKIP
    True
    """
    return min(flow_relaxation_bound(problem), compute_dual_bound(problem))
