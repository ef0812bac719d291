"""Independent checker of microservice plans.

Replays a :class:`~distplan.models.MicroservicePlan` against the semantics in
:mod:`distplan.models.microservice` and recomputes the served throughput itself.
It imports nothing from the solvers or formulations, so a solver cannot pass by
sharing a bug with it.

Checks, each reported as one violation naming servers and services by index and
name (sizes in MB = 1e6 bytes):

* shape: ``instances`` is services x servers, ``stored_layers`` and
  ``borrowed_layers`` have one list per server; a wrong shape stops the replay
  (objective None);
* references: unknown layer digests, borrows from an unknown server, from a
  server that is not a direct neighbour (or the borrower itself), or of a layer
  the lender does not store; route indices out of range;
* coverage: every layer of every deployed instance is stored on its server or
  validly borrowed (a layer both stored and borrowed is redundant, not wrong);
* storage: the distinct stored layers fit in ``storage_bytes``;
* registry budget: stored bytes <= ``registry_bandwidth_bytes_per_s * T``;
* link budget: bytes borrowed over a link, both directions together,
  <= ``bandwidth_bytes_per_s * T``;
* compute: ``sum_i instances[i][n] * compute_per_instance[i] <= compute_capacity[n]``;
* routes: a route's server is its region or a neighbour of it; per (service,
  region) the routed rate <= the demand; per (service, server) the routed rate
  <= instances * ``service_rate_rps``.

Accounting conventions: a digest listed twice on one server is stored once; a
borrow entry listed twice (same layer, same lender) is one transfer, while
borrowing one layer from two lenders counts its bytes on both links.

The objective is the maximum flow source -> (service, region) [demand] ->
(service, server) for the region's server and its neighbours -> sink
[instances * service_rate_rps], computed with networkx from the instances alone;
``routes`` are checked but do not change it. The objective is reported for
infeasible plans too (``feasible`` tells them apart).
"""

from __future__ import annotations

from collections import defaultdict

import networkx as nx

from ...models.microservice import MicroservicePlan, MicroserviceProblem
from ...models.result import Evaluation

__all__ = ["evaluate_plan", "served_throughput"]

#: Relative slack on float comparisons (rates, compute, byte budgets).
_REL_TOL = 1e-9
#: Absolute slack on float comparisons.
_ABS_TOL = 1e-6


def _exceeds(used: float, capacity: float) -> bool:
    """Whether ``used`` is above ``capacity`` beyond floating-point noise."""
    return used > capacity + max(_ABS_TOL, _REL_TOL * abs(capacity))


def _mb(size_bytes: float) -> str:
    """A byte count as MB (1e6 bytes) with one decimal."""
    return f"{size_bytes / 1e6:.1f} MB"


def served_throughput(problem: MicroserviceProblem, instances: list[list[int]]) -> float:
    """Maximum requests/s the given instance counts can serve under one-hop routing.

    Parameters
    ----------
    problem:
        The problem (demands, neighbours, service rates).
    instances:
        ``instances[i][n]``: instances of service ``i`` on server ``n``;
        must be services x servers.

    Returns
    -------
    float
        The value of the maximum flow source -> (service, region) with capacity
        the demand -> (service, server) for every server in the region's reach
        -> sink with capacity ``instances * service_rate_rps``, requests/s.
    """
    graph = nx.DiGraph()
    source, sink = ("source",), ("sink",)
    graph.add_node(source)
    graph.add_node(sink)
    for demand in problem.demands:
        if demand.rate_rps <= 0:
            continue
        i, region = demand.service, demand.region
        graph.add_edge(source, ("demand", i, region), capacity=demand.rate_rps)
        for server in [region, *problem.neighbours[region]]:
            count = instances[i][server]
            if count <= 0:
                continue
            # No capacity attribute: networkx treats the edge as unbounded.
            graph.add_edge(("demand", i, region), ("serve", i, server))
            graph.add_edge(
                ("serve", i, server), sink, capacity=count * problem.services[i].service_rate_rps
            )
    if graph.number_of_edges() == 0:
        return 0.0
    value, _ = nx.maximum_flow(graph, source, sink)
    return float(value)


def _shape_violations(problem: MicroserviceProblem, plan: MicroservicePlan) -> list[str]:
    """Dimension errors that prevent replaying the plan."""
    n_services, n_servers = len(problem.services), len(problem.servers)
    out: list[str] = []
    if len(plan.instances) != n_services:
        out.append(
            f"instances has {len(plan.instances)} rows, expected one per service ({n_services})"
        )
    for i, row in enumerate(plan.instances):
        if len(row) != n_servers:
            out.append(
                f"instances[{i}] has {len(row)} entries, expected one per server ({n_servers})"
            )
    if len(plan.stored_layers) != n_servers:
        out.append(
            f"stored_layers has {len(plan.stored_layers)} lists, expected one per server ({n_servers})"
        )
    if len(plan.borrowed_layers) != n_servers:
        out.append(
            f"borrowed_layers has {len(plan.borrowed_layers)} lists, expected one per server ({n_servers})"
        )
    return out


def evaluate_plan(problem: MicroserviceProblem, plan: MicroservicePlan) -> Evaluation:
    """Check a microservice plan and recompute its served throughput.

    Parameters
    ----------
    problem:
        The problem the plan claims to solve.
    plan:
        The placement, stored and borrowed layers, and routes.

    Returns
    -------
    Evaluation
        ``feasible`` when no violation was found; ``objective`` the served
        requests/s by max-flow (None when the plan's shape does not match the
        problem); ``metrics`` with ``served_rps``, ``instances_deployed``,
        ``storage_used_bytes``, ``sum_image_bytes_deployed``,
        ``bytes_pulled_registry``, ``bytes_borrowed``, ``routed_rps`` and
        ``total_demand_rps``.
    """
    shape = _shape_violations(problem, plan)
    if shape:
        return Evaluation(feasible=False, objective=None, violations=shape)

    servers, services = problem.servers, problem.services
    n_servers = len(servers)
    sizes = problem.layer_size
    window_s = problem.deployment_window_s
    neighbours = [set(ns) for ns in problem.neighbours]
    violations: list[str] = []

    def server_label(n: int) -> str:
        return f"server {n} ({servers[n].name})"

    def service_label(i: int) -> str:
        return f"service {i} ({services[i].name})"

    # Stored layers: distinct known digests per server.
    stored: list[set[str]] = []
    for n, digests in enumerate(plan.stored_layers):
        known: set[str] = set()
        for digest in digests:
            if digest in sizes:
                known.add(digest)
            else:
                violations.append(f"{server_label(n)} stores unknown layer {digest!r}")
        stored.append(known)
    stored_bytes = [sum(sizes[d] for d in layers) for layers in stored]

    # Borrowed layers: keep the valid ones; account their bytes on the link.
    available: list[set[str]] = [set(layers) for layers in stored]
    link_bytes: dict[frozenset[int], int] = defaultdict(int)
    bytes_borrowed = 0
    for n, borrows in enumerate(plan.borrowed_layers):
        seen: set[tuple[str, int]] = set()
        for borrow in borrows:
            digest, lender = borrow.layer, borrow.from_server
            if (digest, lender) in seen:
                continue
            seen.add((digest, lender))
            if digest not in sizes:
                violations.append(f"{server_label(n)} borrows unknown layer {digest!r}")
                continue
            if lender >= n_servers:
                violations.append(
                    f"{server_label(n)} borrows layer {digest!r} from unknown server {lender} "
                    f"(there are {n_servers} servers)"
                )
                continue
            if lender not in neighbours[n]:
                violations.append(
                    f"{server_label(n)} borrows layer {digest!r} from {server_label(lender)}, "
                    "which is not a direct neighbour"
                )
                continue
            if digest not in stored[lender]:
                violations.append(
                    f"{server_label(n)} borrows layer {digest!r} from {server_label(lender)}, "
                    "which does not store it"
                )
                continue
            available[n].add(digest)
            link_bytes[frozenset((n, lender))] += sizes[digest]
            bytes_borrowed += sizes[digest]

    # Coverage, compute and image bytes per server.
    instances = plan.instances
    sum_image_bytes_deployed = 0
    for n, server in enumerate(servers):
        compute_used = 0.0
        for i, service in enumerate(services):
            count = instances[i][n]
            if count <= 0:
                continue
            compute_used += count * service.compute_per_instance
            sum_image_bytes_deployed += problem.image_bytes(i)
            missing = [d for d in service.layers if d not in available[n]]
            if missing:
                shown = ", ".join(repr(d) for d in missing[:3])
                more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
                violations.append(
                    f"{server_label(n)} runs {service_label(i)} but layer(s) {shown}{more} "
                    f"({_mb(sum(sizes[d] for d in missing))}) are neither stored nor borrowed"
                )
        if _exceeds(compute_used, server.compute_capacity):
            violations.append(
                f"{server_label(n)} uses {compute_used:.1f} millicores, "
                f"capacity {server.compute_capacity:.1f} millicores"
            )
        if stored_bytes[n] > server.storage_bytes:
            violations.append(
                f"{server_label(n)} stores {_mb(stored_bytes[n])}, capacity {_mb(server.storage_bytes)}"
            )
        if server.registry_bandwidth_bytes_per_s is not None:
            budget = server.registry_bandwidth_bytes_per_s * window_s
            if _exceeds(stored_bytes[n], budget):
                violations.append(
                    f"{server_label(n)} pulls {_mb(stored_bytes[n])} from the registry, budget "
                    f"{_mb(budget)} ({server.registry_bandwidth_bytes_per_s / 1e6:.3g} MB/s x {window_s:g} s)"
                )

    # Link budgets (both directions together).
    for pair, moved in sorted(link_bytes.items(), key=lambda item: sorted(item[0])):
        a, b = sorted(pair)
        bandwidth = problem.link_bandwidth[(a, b)]
        budget = bandwidth * window_s
        if _exceeds(moved, budget):
            violations.append(
                f"link {server_label(a)} - {server_label(b)} carries {_mb(moved)} of borrowed layers, "
                f"budget {_mb(budget)} ({bandwidth / 1e6:.3g} MB/s x {window_s:g} s)"
            )

    # Routes.
    demand_of = {(d.service, d.region): d.rate_rps for d in problem.demands}
    routed_from: dict[tuple[int, int], float] = defaultdict(float)
    routed_to: dict[tuple[int, int], float] = defaultdict(float)
    routed_rps = 0.0
    for k, route in enumerate(plan.routes):
        i, region, target = route.service, route.region, route.server
        if i >= len(services) or region >= n_servers or target >= n_servers:
            violations.append(
                f"routes[{k}]: index out of range (service {i}, region {region}, server {target}; "
                f"there are {len(services)} services and {n_servers} servers)"
            )
            continue
        routed_rps += route.rate_rps
        if target != region and target not in neighbours[region]:
            violations.append(
                f"routes[{k}]: {service_label(i)} from region {region} ({servers[region].name}) "
                f"is routed to {server_label(target)}, which is neither the region's server nor a neighbour"
            )
        routed_from[(i, region)] += route.rate_rps
        routed_to[(i, target)] += route.rate_rps
    for (i, region), rate in sorted(routed_from.items()):
        demand = demand_of.get((i, region), 0.0)
        if _exceeds(rate, demand):
            violations.append(
                f"{service_label(i)} routes {rate:.6g} requests/s from region {region} "
                f"({servers[region].name}), demand {demand:.6g} requests/s"
            )
    for (i, target), rate in sorted(routed_to.items()):
        capacity = instances[i][target] * services[i].service_rate_rps
        if _exceeds(rate, capacity):
            violations.append(
                f"{server_label(target)} is routed {rate:.6g} requests/s of {service_label(i)}, "
                f"its {instances[i][target]} instance(s) serve {capacity:.6g} requests/s"
            )

    served = served_throughput(problem, instances)
    metrics = {
        "served_rps": served,
        "instances_deployed": sum(sum(row) for row in instances),
        "storage_used_bytes": sum(stored_bytes),
        "sum_image_bytes_deployed": sum_image_bytes_deployed,
        "bytes_pulled_registry": sum(stored_bytes),
        "bytes_borrowed": bytes_borrowed,
        "routed_rps": routed_rps,
        "total_demand_rps": problem.total_demand_rps,
    }
    return Evaluation(
        feasible=not violations, objective=served, violations=violations, metrics=metrics
    )
