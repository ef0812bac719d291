"""Layer-aware microservice placement at the edge: the problem and its plan.

Reconstruction of Gu et al., "Layer-aware Collaborative Microservice Deployment
toward Maximal Edge Throughput" (INFOCOM 2022; intra-server sharing only in the
INFOCOM 2021 predecessor). The paper's text is not available to us; the
semantics below are ours and are the contract of every solver and the evaluator.

Semantics
---------
* A container image is a set of layers (by digest); a layer stored on a server is
  counted once in its storage however many images there use it (intra-server
  sharing).
* A server may also *borrow* a layer from a direct neighbour that stores it
  (inter-server sharing). Borrowed layers take no storage on the borrower, but
  their bytes must cross the link within the deployment window:
  the bytes borrowed over a link (both directions together) must not exceed
  ``bandwidth_bytes_per_s * deployment_window_s``.
* Layers stored on a server are pulled from the registry; when the server has a
  ``registry_bandwidth_bytes_per_s``, the bytes it stores must not exceed that
  rate times the window.
* Every instance of a microservice on a server needs each layer of its image
  stored on that server or borrowed from a neighbour; instances use
  ``compute_per_instance`` of the server's ``compute_capacity`` and serve up to
  ``service_rate_rps`` requests/s.
* Requests of a microservice arising in region ``r`` (the area of server ``r``) are
  served at the edge when they run on server ``r`` or on a direct neighbour of
  ``r`` (one-hop forwarding, not bandwidth-limited in this model); otherwise they
  go to the cloud and do not count.
* Objective: maximise the served requests/s, i.e. the maximum flow from demands
  to instances under these rules.

Validation
----------
Besides field types (negative sizes, rates and capacities are rejected with the
field's location) and cross references, a problem is rejected when some
microservice could not run anywhere: no server has ``compute_per_instance``
millicores, or no server with enough compute can hold or borrow the image. The
most a server ``n`` can hold or borrow (:meth:`MicroserviceProblem.max_holdable_bytes`)
is what it can store (``storage_bytes``, capped by its registry budget) plus, per
neighbour, what that neighbour can store capped by the link budget.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, model_validator

from .base import PlanBase, ProblemBase, StrictModel


class ImageLayer(StrictModel):
    """One container-image layer."""

    digest: str = Field(min_length=1)
    size_bytes: NonNegativeInt = Field(description="compressed size in bytes")


class EdgeServer(StrictModel):
    """An edge server: storage, compute and optional registry bandwidth."""

    name: str = Field(min_length=1)
    storage_bytes: NonNegativeInt = Field(description="storage for image layers, bytes")
    compute_capacity: NonNegativeFloat = Field(description="compute capacity, millicores")
    registry_bandwidth_bytes_per_s: PositiveFloat | None = Field(
        None, description="pull bandwidth from the image registry, bytes/s (None = unlimited)"
    )


class ServerLink(StrictModel):
    """An undirected link between two edge servers."""

    a: NonNegativeInt
    b: NonNegativeInt
    bandwidth_bytes_per_s: PositiveFloat


class Microservice(StrictModel):
    """A microservice: its image and per-instance demand and service rate."""

    name: str = Field(min_length=1)
    image: str = Field(min_length=1, description="image name, informative")
    layers: list[str] = Field(min_length=1, description="digests of the image's layers")
    compute_per_instance: PositiveFloat = Field(description="millicores per instance")
    service_rate_rps: PositiveFloat = Field(description="requests/s one instance serves")


class Demand(StrictModel):
    """Request rate of one microservice arising in one server's region."""

    service: NonNegativeInt
    region: NonNegativeInt
    rate_rps: NonNegativeFloat


class MicroserviceProblem(ProblemBase):
    """Place microservice instances and image layers to maximise served requests/s."""

    kind: Literal["microservice"] = "microservice"
    name: str = Field(min_length=1)
    servers: list[EdgeServer] = Field(min_length=1)
    links: list[ServerLink] = Field(default_factory=list)
    layers: list[ImageLayer] = Field(min_length=1)
    services: list[Microservice] = Field(min_length=1)
    demands: list[Demand] = Field(default_factory=list)
    deployment_window_s: PositiveFloat = Field(
        description="window T in which layers are pulled, seconds"
    )
    notes: str = ""

    @model_validator(mode="after")
    def _check_references(self) -> MicroserviceProblem:
        n = len(self.servers)
        digests = [layer.digest for layer in self.layers]
        if len(set(digests)) != len(digests):
            raise ValueError("layers: layer digests must be unique")
        known = set(digests)
        for k, link in enumerate(self.links):
            for end in (link.a, link.b):
                if end >= n:
                    raise ValueError(
                        f"links[{k}]: server index {end} is out of range (there are {n} servers)"
                    )
            if link.a == link.b:
                raise ValueError(f"links[{k}]: a link must join two different servers")
        pairs = [frozenset((link.a, link.b)) for link in self.links]
        if len(set(pairs)) != len(pairs):
            raise ValueError("links: duplicate link between the same two servers")
        for i, service in enumerate(self.services):
            for digest in service.layers:
                if digest not in known:
                    raise ValueError(
                        f"services[{i}] ({service.name}): unknown layer digest {digest!r}"
                    )
            if len(set(service.layers)) != len(service.layers):
                raise ValueError(f"services[{i}] ({service.name}): a layer is listed twice")
        seen: set[tuple[int, int]] = set()
        for k, demand in enumerate(self.demands):
            if demand.service >= len(self.services):
                raise ValueError(f"demands[{k}]: unknown service index {demand.service}")
            if demand.region >= n:
                raise ValueError(f"demands[{k}]: unknown region (server) index {demand.region}")
            if (demand.service, demand.region) in seen:
                raise ValueError(
                    f"demands[{k}]: duplicate demand for service {demand.service} in region {demand.region}"
                )
            seen.add((demand.service, demand.region))
        self._check_services_hostable()
        return self

    def _check_services_hostable(self) -> None:
        """Reject a microservice that no server has the compute and the room to run."""
        holdable = [self.max_holdable_bytes(n) for n in range(len(self.servers))]
        largest_compute = max(server.compute_capacity for server in self.servers)
        for i, service in enumerate(self.services):
            label = f"services[{i}] ({service.name})"
            need_bytes = self.image_bytes(i)
            if service.compute_per_instance > largest_compute:
                raise ValueError(
                    f"{label}: compute_per_instance {service.compute_per_instance:.1f} millicores exceeds "
                    f"the largest server compute_capacity ({largest_compute:.1f} millicores)"
                )
            if need_bytes > max(holdable):
                raise ValueError(
                    f"{label}: image needs {need_bytes / 1e6:.1f} MB but the most any server can hold "
                    f"or borrow is {max(holdable) / 1e6:.1f} MB"
                )
            able = [
                holdable[n]
                for n, server in enumerate(self.servers)
                if server.compute_capacity >= service.compute_per_instance
            ]
            if need_bytes > max(able):
                raise ValueError(
                    f"{label}: image needs {need_bytes / 1e6:.1f} MB but the most a server with "
                    f"{service.compute_per_instance:.1f} millicores can hold or borrow is "
                    f"{max(able) / 1e6:.1f} MB"
                )

    @cached_property
    def layer_size(self) -> dict[str, int]:
        """Bytes of every layer, by digest."""
        return {layer.digest: layer.size_bytes for layer in self.layers}

    @cached_property
    def neighbours(self) -> list[list[int]]:
        """Direct neighbours of every server, sorted."""
        out: list[set[int]] = [set() for _ in self.servers]
        for link in self.links:
            out[link.a].add(link.b)
            out[link.b].add(link.a)
        return [sorted(s) for s in out]

    def image_bytes(self, service: int) -> int:
        """Sum of the sizes of a service's image layers, bytes."""
        return sum(self.layer_size[d] for d in self.services[service].layers)

    @cached_property
    def link_bandwidth(self) -> dict[tuple[int, int], float]:
        """Bandwidth of every link in bytes/s, keyed by both ``(a, b)`` and ``(b, a)``."""
        out: dict[tuple[int, int], float] = {}
        for link in self.links:
            out[(link.a, link.b)] = link.bandwidth_bytes_per_s
            out[(link.b, link.a)] = link.bandwidth_bytes_per_s
        return out

    def reach(self, region: int) -> list[int]:
        """Servers that may serve requests of ``region``: the region's server, then its neighbours."""
        return [region, *self.neighbours[region]]

    def storable_bytes(self, server: int) -> float:
        """Most bytes ``server`` can store: its storage, capped by its registry budget (bytes)."""
        spec = self.servers[server]
        if spec.registry_bandwidth_bytes_per_s is None:
            return float(spec.storage_bytes)
        return min(
            float(spec.storage_bytes),
            spec.registry_bandwidth_bytes_per_s * self.deployment_window_s,
        )

    def max_holdable_bytes(self, server: int) -> float:
        """Most image bytes ``server`` can have at hand, stored or borrowed (bytes).

        What it can store plus, for each neighbour, what that neighbour can store
        capped by the link's budget ``bandwidth_bytes_per_s * deployment_window_s``.
        """
        total = self.storable_bytes(server)
        for other in self.neighbours[server]:
            link_budget = self.link_bandwidth[(server, other)] * self.deployment_window_s
            total += min(self.storable_bytes(other), link_budget)
        return total

    @property
    def total_demand_rps(self) -> float:
        """Sum of all demands, requests/s."""
        return sum(demand.rate_rps for demand in self.demands)


class Borrow(StrictModel):
    """A layer a server uses from a neighbour's storage."""

    layer: str
    from_server: NonNegativeInt


class Route(StrictModel):
    """Requests/s of a service from a region served on a server."""

    service: NonNegativeInt
    region: NonNegativeInt
    server: NonNegativeInt
    rate_rps: NonNegativeFloat


class MicroservicePlan(PlanBase):
    """A placement: instances, stored and borrowed layers, and request routing.

    ``instances[i][n]`` is the number of instances of service ``i`` on server ``n``;
    ``stored_layers[n]`` the digests stored on server ``n``; ``borrowed_layers[n]``
    the layers server ``n`` uses from neighbours; ``routes`` how demand is served.
    """

    kind: Literal["microservice"] = "microservice"
    instances: list[list[NonNegativeInt]]
    stored_layers: list[list[str]]
    borrowed_layers: list[list[Borrow]]
    routes: list[Route] = Field(default_factory=list)

    def describe(self, problem: MicroserviceProblem) -> list[str]:
        """Readable lines: per server, the instances placed and the bytes stored and borrowed."""
        lines = []
        size = problem.layer_size
        for n, server in enumerate(problem.servers):
            if n >= len(self.stored_layers) or n >= len(self.borrowed_layers):
                break
            placed = [
                f"{problem.services[i].name} x{row[n]}"
                for i, row in enumerate(self.instances)
                if i < len(problem.services) and n < len(row) and row[n] > 0
            ]
            stored = sum(size.get(d, 0) for d in set(self.stored_layers[n]))
            borrowed = sum(size.get(b.layer, 0) for b in self.borrowed_layers[n])
            lines.append(
                f"{server.name}: {', '.join(placed) or 'no instances'}; "
                f"stores {stored / 1e6:.1f} of {server.storage_bytes / 1e6:.1f} MB, borrows {borrowed / 1e6:.1f} MB"
            )
        served = sum(route.rate_rps for route in self.routes)
        lines.append(f"routed {served:.1f} requests/s over {len(self.routes)} routes")
        return lines
