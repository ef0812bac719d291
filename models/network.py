"""The physical network every kind shares: nodes, directed links, one routing function.

A :class:`Network` is what a user pays for, written down: nodes that compute
(GPUs, edge devices, training workers) and nodes that only forward (NICs, PCIe
and NVLink switches, an NVSwitch, top-of-rack and spine switches, a shared
wireless medium), joined by directed links with a capacity (bytes/s) and a
latency (seconds).

Semantics (the contract of every simulator that uses it)
--------------------------------------------------------
* A link ``{"source": a, "target": b, ...}`` is a directed link ``a -> b``; with
  ``duplex`` (the default) it also stands for a second, independent directed link
  ``b -> a`` of the same capacity and latency (full-duplex Ethernet, NVLink, PCIe).
* A forwarding node may carry ``capacity_bytes_per_s``: every byte routed *through*
  it (in or out of any of its ports) counts against that one capacity. This is how
  a shared medium is written: a WLAN is a forwarding node ``wlan`` whose capacity is
  the medium's rate, with each station linked to it. A node without a capacity is
  non-blocking (a switch whose backplane is never the bottleneck).
* Compute nodes are endpoints: a route never relays through a compute node unless
  the node says ``forwards: true`` (the legacy GPU-matrix cluster form, where GPUs
  relay for each other, sets it).
* Routing (:func:`route`, the one routing function of distplan): among all paths
  from ``source`` to ``target`` whose intermediate nodes forward, take the widest
  (largest bottleneck capacity over its links and capacitated nodes); among those,
  the least total latency; then the fewest hops; then the lexicographically
  smallest sequence of node names. Routes are therefore deterministic and
  independent of the order links are listed in.
* A transfer occupies every *resource* of its route: each directed link, and each
  capacitated forwarding node it passes. How concurrent transfers share a resource
  is the simulator's rule, stated in each kind's model docstring. Two rules are
  provided here: *hold* (a transfer holds its resources first-come first-served,
  as a NIC's send queue serialises large messages and a CSMA/CA medium serialises
  frames) and *max-min fair* sharing (:func:`max_min_fair_rates`, progressive
  filling, the fluid model of competing TCP/RDMA flows). Either way a resource of
  capacity ``C`` never moves more than ``C`` bytes/s in total, which is what makes
  a shared NIC or medium cost what it costs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from .base import StrictModel

__all__ = [
    "Network",
    "NetworkLink",
    "NetworkNode",
    "Route",
    "max_min_fair_rates",
    "route",
]

NodeRole = Literal["compute", "forward"]


class NetworkNode(StrictModel):
    """A node of the network: one that computes, or one that only forwards."""

    name: str = Field(min_length=1, max_length=200)
    role: NodeRole = Field(
        default="forward",
        description="compute (GPU, device, worker) or forward (NIC, switch, medium)",
    )
    capacity_bytes_per_s: PositiveFloat | None = Field(
        default=None,
        description="total bytes/s through this node (a shared medium such as one WLAN); None = non-blocking",
    )
    forwards: bool | None = Field(
        default=None,
        description="whether routes may relay through this node; default: forwarding nodes only",
    )

    @property
    def relays(self) -> bool:
        """Whether a route may pass through this node."""
        return self.forwards if self.forwards is not None else self.role == "forward"


class NetworkLink(StrictModel):
    """A link ``source -> target`` (and back, when ``duplex``)."""

    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    bandwidth_bytes_per_s: PositiveFloat = Field(
        description="capacity of each direction in bytes/s"
    )
    latency_s: NonNegativeFloat = Field(default=0.0, description="one-way latency in seconds")
    duplex: bool = Field(
        default=True, description="also a separate link target -> source of the same capacity"
    )


@dataclass(frozen=True)
class DirectedLink:
    """One direction of a link: the unit of capacity a transfer occupies."""

    index: int
    source: str
    target: str
    bandwidth_bytes_per_s: float
    latency_s: float


@dataclass(frozen=True)
class Route:
    """A route from ``nodes[0]`` to ``nodes[-1]``.

    ``links`` are indices into :attr:`Network.directed_links`; ``media`` the
    capacitated forwarding nodes passed through. ``bottleneck_bytes_per_s`` is
    the smallest capacity on the route (``inf`` for a route to oneself) and
    ``latency_s`` the sum of its links' latencies.
    """

    nodes: tuple[str, ...]
    links: tuple[int, ...]
    media: tuple[str, ...]
    bottleneck_bytes_per_s: float
    latency_s: float

    @property
    def resources(self) -> tuple[str, ...]:
        """Names of the resources a transfer on this route occupies (``link:<i>``, ``node:<name>``)."""
        return tuple(f"link:{i}" for i in self.links) + tuple(f"node:{m}" for m in self.media)

    def transfer_s(self, nbytes: float) -> float:
        """Seconds to move ``nbytes`` alone on an idle network: ``latency + bytes / bottleneck``."""
        if nbytes <= 0 or not self.links:
            return 0.0
        return self.latency_s + nbytes / self.bottleneck_bytes_per_s


class Network(StrictModel):
    """Nodes and links; see the module docstring for the semantics."""

    nodes: list[NetworkNode] = Field(min_length=1)
    links: list[NetworkLink] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Network:
        names = [node.name for node in self.nodes]
        seen: set[str] = set()
        for k, name in enumerate(names):
            if name in seen:
                raise ValueError(f"nodes[{k}].name: duplicate node name {name!r}")
            seen.add(name)
        directed: set[tuple[str, str]] = set()
        for k, link in enumerate(self.links):
            for end in ("source", "target"):
                if getattr(link, end) not in seen:
                    raise ValueError(f"links[{k}].{end}: unknown node {getattr(link, end)!r}")
            if link.source == link.target:
                raise ValueError(f"links[{k}]: a link from {link.source!r} to itself")
            pairs = [(link.source, link.target)] + (
                [(link.target, link.source)] if link.duplex else []
            )
            for pair in pairs:
                if pair in directed:
                    raise ValueError(f"links[{k}]: a second link {pair[0]} -> {pair[1]}")
                directed.add(pair)
        return self

    @cached_property
    def node_by_name(self) -> dict[str, NetworkNode]:
        """Every node by its name."""
        return {node.name: node for node in self.nodes}

    @cached_property
    def compute_nodes(self) -> list[str]:
        """Names of the compute nodes, in the order listed."""
        return [node.name for node in self.nodes if node.role == "compute"]

    @cached_property
    def directed_links(self) -> list[DirectedLink]:
        """Every direction of every link, numbered in listing order (a duplex link's reverse follows it)."""
        out: list[DirectedLink] = []
        for link in self.links:
            ends = [(link.source, link.target)] + (
                [(link.target, link.source)] if link.duplex else []
            )
            for source, target in ends:
                out.append(
                    DirectedLink(
                        len(out), source, target, link.bandwidth_bytes_per_s, link.latency_s
                    )
                )
        return out

    @cached_property
    def _out_links(self) -> dict[str, list[DirectedLink]]:
        out: dict[str, list[DirectedLink]] = {node.name: [] for node in self.nodes}
        for link in self.directed_links:
            out[link.source].append(link)
        for links in out.values():
            links.sort(key=lambda item: item.target)
        return out

    @cached_property
    def _route_cache(self) -> dict[tuple[str, str], Route | None]:
        return {}

    def capacity_of(self, resource: str) -> float:
        """Capacity in bytes/s of a resource named as in :attr:`Route.resources`."""
        category, _, key = resource.partition(":")
        if category == "link":
            return self.directed_links[int(key)].bandwidth_bytes_per_s
        capacity = self.node_by_name[key].capacity_bytes_per_s
        return math.inf if capacity is None else capacity

    def route(self, source: str, target: str) -> Route | None:
        """The route from ``source`` to ``target`` (None when unreachable); see :func:`route`."""
        return route(self, source, target)


def _node_capacity(network: Network, name: str) -> float:
    capacity = network.node_by_name[name].capacity_bytes_per_s
    return math.inf if capacity is None else capacity


def route(network: Network, source: str, target: str) -> Route | None:
    """The one deterministic route from ``source`` to ``target``, or None if unreachable.

    Widest path first (its bottleneck counts links and capacitated forwarding
    nodes), then least latency, then fewest hops, then the smallest sequence of
    node names. Intermediate nodes must forward (see :class:`NetworkNode`).
    Results are cached on the network.

    Raises
    ------
    KeyError
        When ``source`` or ``target`` is not a node of the network.

    Examples
    --------
    >>> net = Network(nodes=[NetworkNode(name="a", role="compute"), NetworkNode(name="sw"),
    ...     NetworkNode(name="b", role="compute")],
    ...     links=[NetworkLink(source="a", target="sw", bandwidth_bytes_per_s=1e9),
    ...            NetworkLink(source="sw", target="b", bandwidth_bytes_per_s=1e9)])
    >>> route(net, "a", "b").nodes
    ('a', 'sw', 'b')
    """
    for end in (source, target):
        if end not in network.node_by_name:
            raise KeyError(f"unknown node {end!r}")
    cache = network._route_cache
    key = (source, target)
    if key not in cache:
        cache[key] = _find_route(network, source, target)
    return cache[key]


def _find_route(network: Network, source: str, target: str) -> Route | None:
    if source == target:
        return Route((source,), (), (), math.inf, 0.0)
    out_links = network._out_links

    def usable(node: str) -> bool:
        return node == target or network.node_by_name[node].relays

    # Phase 1: the widest bottleneck (max-min Dijkstra; node capacities count for relays).
    best: dict[str, float] = {source: math.inf}
    heap: list[tuple[float, str]] = [(-math.inf, source)]
    while heap:
        negative, node = heapq.heappop(heap)
        width = -negative
        if width < best.get(node, -1.0) or node == target:
            continue
        if node != source and not network.node_by_name[node].relays:
            continue
        for link in out_links[node]:
            nxt = link.target
            if not usable(nxt):
                continue
            through = min(width, link.bandwidth_bytes_per_s)
            if nxt != target:
                through = min(through, _node_capacity(network, nxt))
            if through > best.get(nxt, -1.0):
                best[nxt] = through
                heapq.heappush(heap, (-through, nxt))
    if target not in best:
        return None
    widest = best[target]

    # Phase 2: among paths of that width, least latency, fewest hops, smallest name sequence.
    settled: set[str] = set()
    heap2: list[tuple[float, int, tuple[str, ...], tuple[int, ...]]] = [(0.0, 0, (source,), ())]
    while heap2:
        latency, hops, nodes, links = heapq.heappop(heap2)
        node = nodes[-1]
        if node in settled:
            continue
        settled.add(node)
        if node == target:
            media = tuple(
                n for n in nodes[1:-1] if network.node_by_name[n].capacity_bytes_per_s is not None
            )
            return Route(nodes, links, media, widest, latency)
        if node != source and not network.node_by_name[node].relays:
            continue
        for link in out_links[node]:
            nxt = link.target
            if nxt in settled or not usable(nxt) or link.bandwidth_bytes_per_s < widest:
                continue
            if nxt != target and _node_capacity(network, nxt) < widest:
                continue
            heapq.heappush(
                heap2, (latency + link.latency_s, hops + 1, (*nodes, nxt), (*links, link.index))
            )
    return None  # pragma: no cover - phase 1 proved reachability


def max_min_fair_rates(
    usage: Sequence[Mapping[Hashable, float]],
    capacity: Mapping[Hashable, float],
    *,
    rate_cap: Sequence[float] | None = None,
) -> list[float]:
    """Max-min fair rates of flows sharing capacitated resources (progressive filling).

    Parameters
    ----------
    usage
        For every flow, how many times it crosses each resource (a ring that
        crosses a rack uplink twice uses it twice); a flow's rate ``r`` puts
        ``count * r`` bytes/s on the resource.
    capacity
        Bytes/s of every resource named in ``usage`` (missing = unlimited).
    rate_cap
        Optional per-flow ceiling in bytes/s (``inf`` = none).

    Returns
    -------
    list[float]
        Every flow's rate in bytes/s: all rates rise together until a resource
        fills; the flows on it freeze, the rest keep rising. A flow that uses no
        finite resource and has no cap gets ``inf``.

    Examples
    --------
    >>> max_min_fair_rates([{"l": 1}, {"l": 1}, {"m": 1}], {"l": 10.0, "m": 8.0})
    [5.0, 5.0, 8.0]
    """
    n = len(usage)
    caps = list(rate_cap) if rate_cap is not None else [math.inf] * n
    if len(caps) != n:
        raise ValueError("rate_cap: one entry per flow")
    rates = [0.0] * n
    active = set(range(n))
    residual = {r: float(c) for r, c in capacity.items()}
    while active:
        load: dict[Hashable, float] = {}
        for flow in active:
            for resource, count in usage[flow].items():
                if count > 0 and math.isfinite(residual.get(resource, math.inf)):
                    load[resource] = load.get(resource, 0.0) + count
        increment = math.inf
        for resource, total in load.items():
            increment = min(increment, max(0.0, residual[resource]) / total)
        for flow in active:
            increment = min(increment, caps[flow] - rates[flow])
        if math.isinf(increment):
            for flow in active:
                rates[flow] = math.inf
            break
        for flow in active:
            rates[flow] += increment
        for resource, total in load.items():
            residual[resource] -= increment * total
        tolerance = 1e-12
        saturated = {
            r for r, total in load.items() if residual[r] <= tolerance * max(1.0, capacity[r])
        }
        frozen = {
            flow
            for flow in active
            if caps[flow] - rates[flow] <= tolerance * max(1.0, rates[flow])
            or any(usage[flow].get(r, 0) > 0 for r in saturated)
        }
        if not frozen:  # pragma: no cover - numerical safety
            break
        active -= frozen
    return rates
