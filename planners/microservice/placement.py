"""A placement under construction, kept feasible at every step, and the finished plan.

:class:`Placement` is the shared state of the greedy heuristics, the baselines
and the repair step of LP rounding: instances, stored and borrowed layers, and
the storage, registry, link and compute budgets they use. A deployment is only
admitted when every budget still holds, so whatever a heuristic builds is a
valid plan of :mod:`distplan.models.microservice`.

:func:`finish_plan` turns instance counts and layers (from a :class:`Placement`
or from an exact model) into a :class:`~distplan.models.MicroservicePlan`: it
routes demand by maximum flow, drops instances that serve nothing, and drops
stored or borrowed layers no remaining instance needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...models.microservice import Borrow, MicroservicePlan, MicroserviceProblem
from ...models.result import SolveStatus
from ...solvers.options import SolverOutput
from .routing import FLOW_EPS, Routing, ServiceFlow, route_demand, service_flows

__all__ = [
    "LayerPlan",
    "Placement",
    "budget_violations",
    "finish_plan",
    "link_key",
    "max_instances",
    "solver_output",
]

#: Slack when dividing compute capacities (millicores), so 4000 / 250 is 16, not 15.
_COMPUTE_SLACK = 1e-9


def max_instances(capacity_millicores: float, per_instance_millicores: float) -> int:
    """Most instances of ``per_instance_millicores`` that fit in ``capacity_millicores``."""
    if capacity_millicores <= 0:
        return 0
    return max(0, math.floor(capacity_millicores / per_instance_millicores + _COMPUTE_SLACK))


def link_key(a: int, b: int) -> tuple[int, int]:
    """The undirected key of the link between ``a`` and ``b``."""
    return (a, b) if a < b else (b, a)


@dataclass(frozen=True)
class LayerPlan:
    """How one deployment gets the layers it is missing.

    Attributes
    ----------
    stores:
        Layers to newly store, by server (the deploying server, or a neighbour
        that will lend them).
    borrows:
        ``(layer, lender)`` pairs the deploying server will borrow.
    new_bytes:
        Bytes newly stored over all servers.
    local_new_bytes:
        Bytes newly stored on the deploying server.
    borrowed_bytes:
        Bytes newly borrowed over links.
    charge_bytes:
        Bytes charged to the deploying server's storage; equals ``local_new_bytes``
        except under layer-oblivious accounting (whole images).
    """

    stores: dict[int, tuple[str, ...]]
    borrows: tuple[tuple[str, int], ...]
    new_bytes: int
    local_new_bytes: int
    borrowed_bytes: int
    charge_bytes: int


class Placement:
    """Instances and layers placed so far, with the budgets they use.

    Parameters
    ----------
    problem:
        The problem being planned.
    borrowing:
        Whether a server may borrow layers from its neighbours.
    layer_sharing:
        ``True`` (the model's semantics): a layer counts once in a server's
        storage. ``False``: layer-oblivious accounting for baselines -- a
        deployment is charged its whole image size (per instance when
        ``charge_per_instance``) against the server's storage budget, whatever
        is already there; the layers are still stored once.
    charge_per_instance:
        Under layer-oblivious accounting, charge the image once per instance
        rather than once per (service, server).

    Attributes
    ----------
    instances:
        ``instances[i][n]``: instances of service ``i`` on server ``n``.
    stored, borrowed:
        Digests stored on each server; lender of each digest a server borrows.
    storage_used, charged, compute_used, link_used:
        Bytes stored, bytes charged (equal to ``storage_used`` unless
        layer-oblivious), millicores, and borrowed bytes per link.
    flows:
        The maximum flow of every demanded service.
    """

    def __init__(
        self,
        problem: MicroserviceProblem,
        *,
        borrowing: bool = True,
        layer_sharing: bool = True,
        charge_per_instance: bool = False,
    ) -> None:
        self.problem = problem
        self.borrowing = borrowing and layer_sharing
        self.layer_sharing = layer_sharing
        self.charge_per_instance = charge_per_instance
        n_servers = len(problem.servers)
        self.instances: list[list[int]] = [[0] * n_servers for _ in problem.services]
        self.stored: list[set[str]] = [set() for _ in range(n_servers)]
        self.borrowed: list[dict[str, int]] = [{} for _ in range(n_servers)]
        self.storage_used = [0] * n_servers
        self.charged = [0] * n_servers
        self.charged_images: list[set[int]] = [set() for _ in range(n_servers)]
        self.compute_used = [0.0] * n_servers
        self.link_used = {link_key(link.a, link.b): 0 for link in problem.links}
        self.flows: dict[int, ServiceFlow] = service_flows(problem)
        self.storage_limit = [problem.storable_bytes(n) for n in range(n_servers)]
        self.link_limit = {
            link_key(link.a, link.b): link.bandwidth_bytes_per_s * problem.deployment_window_s
            for link in problem.links
        }
        self.sizes = problem.layer_size
        self.image_bytes = [problem.image_bytes(i) for i in range(len(problem.services))]

    # ------------------------------------------------------------------ queries
    @property
    def served_rps(self) -> float:
        """Requests/s served by the instances placed so far (per-service max flows)."""
        return sum(flow.served_rps for flow in self.flows.values())

    def has_layer(self, server: int, digest: str) -> bool:
        """Whether ``server`` stores or borrows ``digest``."""
        return digest in self.stored[server] or digest in self.borrowed[server]

    def compute_room(self, service: int, server: int) -> int:
        """How many more instances of ``service`` fit in ``server``'s compute."""
        spec = self.problem.services[service]
        left = self.problem.servers[server].compute_capacity - self.compute_used[server]
        return max_instances(left, spec.compute_per_instance)

    def storage_left(self, server: int) -> float:
        """Bytes ``server`` may still store (storage and registry budget)."""
        return self.storage_limit[server] - self.storage_used[server]

    def link_left(self, a: int, b: int) -> float:
        """Bytes the link ``a``-``b`` may still carry."""
        key = link_key(a, b)
        return self.link_limit[key] - self.link_used[key]

    def layer_plan(
        self, service: int, server: int, count: int = 1, prefer: Mapping[str, int] | None = None
    ) -> LayerPlan | None:
        """The cheapest way to give ``server`` every layer of ``service``, or None if none fits.

        For each missing layer, in image order: borrow it from a neighbour that
        stores it (the one with the most link budget left), else store it on
        ``server``, else store it on the neighbour with the most free storage and
        borrow it from there. ``prefer`` (from LP rounding) names a preferred source per
        layer: ``server`` itself (store it) or a neighbour (borrow it, storing it
        on the neighbour first if needed); when the preferred source does not
        fit, the default rule applies.
        """
        n = server
        missing = [d for d in self.problem.services[service].layers if not self.has_layer(n, d)]
        if not self.layer_sharing:
            first = service not in self.charged_images[n]
            charge = self.image_bytes[service] * (count if self.charge_per_instance else int(first))
            if self.charged[n] + charge > self.storage_limit[n]:
                return None
            local = sum(self.sizes[d] for d in missing)
            if self.storage_used[n] + local > self.storage_limit[n]:
                return None
            return LayerPlan({n: tuple(missing)} if missing else {}, (), local, local, 0, charge)
        extra_store: dict[int, int] = {}
        extra_link: dict[tuple[int, int], int] = {}
        stores: dict[int, list[str]] = {}
        borrows: list[tuple[str, int]] = []
        neighbours = self.problem.neighbours[n]

        def store_fits(m: int, size: int) -> bool:
            return self.storage_used[m] + extra_store.get(m, 0) + size <= self.storage_limit[m]

        def link_fits(m: int, size: int) -> bool:
            key = link_key(n, m)
            return self.link_used[key] + extra_link.get(key, 0) + size <= self.link_limit[key]

        def existing_lender(digest: str, size: int) -> int | None:
            best, best_left = None, -math.inf
            for m in neighbours:
                if digest in self.stored[m] and link_fits(m, size):
                    left = self.link_left(n, m) - extra_link.get(link_key(n, m), 0)
                    if left > best_left:
                        best, best_left = m, left
            return best

        def spill_target(digest: str, size: int) -> int | None:
            """The neighbour with the most free storage that can store ``digest`` and lend it."""
            best, best_free = None, -math.inf
            for m in neighbours:
                if store_fits(m, size) and link_fits(m, size):
                    free = self.storage_left(m) - extra_store.get(m, 0)
                    if free > best_free:
                        best, best_free = m, free
            return best

        for digest in missing:
            size = self.sizes[digest]
            wanted = None if prefer is None else prefer.get(digest)
            choice: tuple[str, int] | None = None
            if (
                wanted is not None
                and wanted != n
                and self.borrowing
                and wanted in neighbours
                and link_fits(wanted, size)
            ):
                if digest in self.stored[wanted] or digest in stores.get(wanted, ()):
                    choice = ("borrow", wanted)
                elif store_fits(wanted, size):
                    choice = ("lend", wanted)
            if choice is None and wanted == n and store_fits(n, size):
                choice = ("store", n)
            if choice is None and self.borrowing:
                lender = existing_lender(digest, size)
                if lender is not None:
                    choice = ("borrow", lender)
            if choice is None and store_fits(n, size):
                choice = ("store", n)
            if choice is None and self.borrowing:
                spill = spill_target(digest, size)
                if spill is not None:
                    choice = ("lend", spill)
            if choice is None:
                return None
            action, m = choice
            if action in ("store", "lend"):
                stores.setdefault(m, []).append(digest)
                extra_store[m] = extra_store.get(m, 0) + size
            if action in ("borrow", "lend"):
                borrows.append((digest, m))
                key = link_key(n, m)
                extra_link[key] = extra_link.get(key, 0) + size
        local = extra_store.get(n, 0)
        return LayerPlan(
            {m: tuple(ds) for m, ds in stores.items()},
            tuple(borrows),
            sum(extra_store.values()),
            local,
            sum(extra_link.values()),
            local,
        )

    # ------------------------------------------------------------------ updates
    def apply(self, service: int, server: int, count: int, plan: LayerPlan) -> float:
        """Deploy ``count`` instances of ``service`` on ``server`` with ``plan``; return the served gain.

        The caller checks :meth:`compute_room` and obtains ``plan`` from
        :meth:`layer_plan` on the current state.
        """
        for m, digests in plan.stores.items():
            for digest in digests:
                if digest not in self.stored[m]:
                    self.stored[m].add(digest)
                    self.storage_used[m] += self.sizes[digest]
        for digest, lender in plan.borrows:
            self.borrowed[server][digest] = lender
            self.link_used[link_key(server, lender)] += self.sizes[digest]
        self.charged[server] += plan.charge_bytes
        if not self.layer_sharing:
            self.charged_images[server].add(service)
        self.instances[service][server] += count
        self.compute_used[server] += count * self.problem.services[service].compute_per_instance
        flow = self.flows.get(service)
        if flow is None:
            return 0.0
        return flow.add_capacity(server, count * self.problem.services[service].service_rate_rps)

    def deployable(self, service: int, server: int) -> bool:
        """Whether ``server`` has every layer of ``service`` at hand."""
        return all(self.has_layer(server, d) for d in self.problem.services[service].layers)

    def layers_only(self) -> Placement:
        """A copy with the same stored and borrowed layers and no instances."""
        twin = Placement.__new__(Placement)
        twin.__dict__.update(self.__dict__)
        twin.instances = [[0] * len(row) for row in self.instances]
        twin.compute_used = [0.0] * len(self.compute_used)
        twin.flows = {i: flow.empty_like() for i, flow in self.flows.items()}
        twin.stored = [set(layers) for layers in self.stored]
        twin.borrowed = [dict(borrows) for borrows in self.borrowed]
        twin.storage_used = list(self.storage_used)
        twin.charged = list(self.charged)
        twin.charged_images = [set(images) for images in self.charged_images]
        twin.link_used = dict(self.link_used)
        return twin

    def remove(self, service: int, server: int, count: int) -> float:
        """Remove ``count`` instances of ``service`` from ``server`` (layers stay); return the served loss."""
        count = min(count, self.instances[service][server])
        if count <= 0:
            return 0.0
        spec = self.problem.services[service]
        self.instances[service][server] -= count
        if not self.layer_sharing and self.charge_per_instance:
            self.charged[server] -= count * self.image_bytes[service]
        self.compute_used[server] = max(
            0.0, self.compute_used[server] - count * spec.compute_per_instance
        )
        flow = self.flows.get(service)
        return 0.0 if flow is None else flow.remove_capacity(server, count * spec.service_rate_rps)

    def admit(
        self, service: int, server: int, count: int, prefer: Mapping[str, int] | None = None
    ) -> int:
        """Deploy up to ``count`` instances if the layers fit; return how many were deployed."""
        count = min(count, self.compute_room(service, server))
        if count <= 0:
            return 0
        plan = self.layer_plan(service, server, count, prefer)
        if plan is None and prefer is not None:
            plan = self.layer_plan(service, server, count)
        if plan is None:
            return 0
        self.apply(service, server, count, plan)
        return count

    def plan(self) -> tuple[MicroservicePlan, Routing, dict[str, Any]]:
        """The finished plan (see :func:`finish_plan`)."""
        return finish_plan(self.problem, self.instances, self.stored, self.borrowed)


def budget_violations(
    problem: MicroserviceProblem,
    instances: Sequence[Sequence[int]],
    stored: Sequence[set[str]],
    borrowed: Sequence[Mapping[str, int]],
) -> list[str]:
    """Broken budgets of a placement, checked exactly on integer bytes (empty when valid).

    A safety net for plans read back from a solver's floating-point solution;
    the independent evaluator remains the judge.
    """
    out: list[str] = []
    sizes = problem.layer_size
    link_bytes: dict[tuple[int, int], int] = {}
    for n, server in enumerate(problem.servers):
        used = sum(sizes[d] for d in stored[n])
        if used > problem.storable_bytes(n):
            out.append(f"server {n}: stores {used} bytes, budget {problem.storable_bytes(n):.0f}")
        compute = sum(
            instances[i][n] * spec.compute_per_instance for i, spec in enumerate(problem.services)
        )
        if compute > server.compute_capacity * (1 + 1e-12) + 1e-9:
            out.append(f"server {n}: uses {compute} millicores, capacity {server.compute_capacity}")
        for digest, lender in borrowed[n].items():
            if lender not in problem.neighbours[n] or digest not in stored[lender]:
                out.append(f"server {n}: borrows {digest} from {lender}, which does not store it")
                continue
            key = link_key(n, lender)
            link_bytes[key] = link_bytes.get(key, 0) + sizes[digest]
        for i, spec in enumerate(problem.services):
            if instances[i][n] > 0 and any(
                d not in stored[n] and d not in borrowed[n] for d in spec.layers
            ):
                out.append(f"server {n}: runs service {i} without all its layers")
    for (a, b), moved in link_bytes.items():
        budget = problem.link_bandwidth[(a, b)] * problem.deployment_window_s
        if moved > budget:
            out.append(f"link {a}-{b}: carries {moved} bytes, budget {budget:.0f}")
    return out


def _served_on(
    problem: MicroserviceProblem, instances: Sequence[Sequence[int]]
) -> dict[tuple[int, int], float]:
    """Requests/s each (service, server) serves in one maximum flow (per-service flows)."""
    served_on: dict[tuple[int, int], float] = {}
    for i, flow in service_flows(problem).items():
        rate = problem.services[i].service_rate_rps
        for n, count in enumerate(instances[i]):
            if count > 0 and flow.reaches(n):
                flow.add_capacity(n, count * rate)
        for (_, n), value in flow.flow.items():
            served_on[(i, n)] = served_on.get((i, n), 0.0) + value
    return served_on


def finish_plan(
    problem: MicroserviceProblem,
    instances: Sequence[Sequence[int]],
    stored: Sequence[set[str]],
    borrowed: Sequence[Mapping[str, int]],
) -> tuple[MicroservicePlan, Routing, dict[str, Any]]:
    """Route demand, trim idle instances and unneeded layers, and build the plan.

    Parameters
    ----------
    problem:
        The problem.
    instances:
        ``instances[i][n]``: instances of service ``i`` on server ``n``.
    stored:
        Digests stored on each server.
    borrowed:
        For each server, the lender of each borrowed digest.

    Returns
    -------
    tuple
        The plan; its routing (served requests/s by maximum flow); and metrics
        ``instances_deployed``, ``deployments`` (service-server pairs),
        ``storage_used_bytes``, ``bytes_borrowed`` and ``served_rps``.

    Notes
    -----
    An instance is kept when a maximum flow (per-service, :class:`ServiceFlow`)
    sends it requests: server ``n`` keeps ``ceil(served / service_rate_rps)``
    instances of a service, which serve the same flow. Trimming only frees
    resources, so a valid placement stays valid; demand is then routed on the
    trimmed counts by :func:`~.routing.route_demand` (networkx).
    """
    served_on = _served_on(problem, instances)
    trimmed = [list(row) for row in instances]
    for i, row in enumerate(trimmed):
        rate = problem.services[i].service_rate_rps
        for n, count in enumerate(row):
            if count > 0:
                served = served_on.get((i, n), 0.0)
                row[n] = min(count, math.ceil(served / rate - 1e-9)) if served > FLOW_EPS else 0
    routing = route_demand(problem, trimmed)
    n_servers = len(problem.servers)
    needed: list[set[str]] = [set() for _ in range(n_servers)]
    for i, row in enumerate(trimmed):
        for n, count in enumerate(row):
            if count > 0:
                needed[n].update(problem.services[i].layers)
    borrows: list[dict[str, int]] = [
        {d: borrowed[n][d] for d in sorted(needed[n]) if d not in stored[n] and d in borrowed[n]}
        for n in range(n_servers)
    ]
    lent: list[set[str]] = [set() for _ in range(n_servers)]
    for n in range(n_servers):
        for digest, lender in borrows[n].items():
            lent[lender].add(digest)
    kept = [
        sorted(d for d in stored[n] if d in needed[n] or d in lent[n]) for n in range(n_servers)
    ]
    plan = MicroservicePlan(
        instances=trimmed,
        stored_layers=kept,
        borrowed_layers=[
            [Borrow(layer=d, from_server=m) for d, m in borrows[n].items()]
            for n in range(n_servers)
        ],
        routes=routing.routes,
    )
    sizes = problem.layer_size
    metrics: dict[str, Any] = {
        "served_rps": routing.served_rps,
        "instances_deployed": sum(sum(row) for row in trimmed),
        "deployments": sum(1 for row in trimmed for count in row if count > 0),
        "storage_used_bytes": sum(sizes[d] for layers in kept for d in layers),
        "bytes_borrowed": sum(sizes[d] for b in borrows for d in b),
    }
    return plan, routing, metrics


def solver_output(
    problem: MicroserviceProblem,
    instances: Sequence[Sequence[int]],
    stored: Sequence[set[str]],
    borrowed: Sequence[Mapping[str, int]],
    status: SolveStatus = SolveStatus.FEASIBLE,
    bound: float | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> SolverOutput:
    """A :class:`SolverOutput` for a placement: finished plan, max-flow objective, merged metrics."""
    plan, routing, plan_metrics = finish_plan(problem, instances, stored, borrowed)
    merged = {**plan_metrics, **(metrics or {})}
    return SolverOutput(
        status, plan=plan, objective=routing.served_rps, bound=bound, metrics=merged
    )


def empty_output(problem: MicroserviceProblem) -> SolverOutput:
    """The empty placement, proven optimal: used when no (service, server) pair can serve demand."""
    n_servers = len(problem.servers)
    return solver_output(
        problem,
        [[0] * n_servers for _ in problem.services],
        [set() for _ in range(n_servers)],
        [{} for _ in range(n_servers)],
        SolveStatus.OPTIMAL,
        0.0,
    )
