"""Instance data of the exact pipeline CP-SAT model: integer scales, networks, replica groups, blocks.

See ``exact_cpsat`` for the model's semantics and the bound-validity argument.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

from ...models.pipeline import PipelineProblem
from ..common.linearize import candidate_cuts, linearize

#: Default number of blocks the layers are coarsened to.
DEFAULT_MAX_BLOCKS = 12
#: Replica groups have at most this many GPUs (more would be a restriction).
MAX_FULL_SUBSET_GPUS = 8
#: (Stage slot, replica group) pairs the model may have per second of time limit.
COMBINATIONS_PER_SECOND = 75.0
#: Most (stage pair, sender group, receiver group) lag constraints before a cheaper relaxation.
PAIR_BUDGET = 12_000
#: Relative float noise tolerated when rounding real numbers to the model's integers.
_EPS = 1e-9
#: Largest magnitude a coefficient times its variable's range may reach. CP-SAT's
#: presolve proved feasible models infeasible with terms near 1e17 (OR-Tools 9.15),
#: so every scale below keeps terms under 1e15.
_INT_LIMIT = 10**15
#: Ticks in the horizon: between 10**8 and 10**9 (tick = a power of ten seconds).
_RESOLUTION_DIGITS = 8
#: Sub-ticks per tick in stage-time constraints (per-block rounding costs 1 / _SUBTICKS tick).
_SUBTICKS = 1000


def _down(value: float) -> int:
    """Round down; a value within float noise (``_EPS`` relative) of an integer is that integer."""
    nearest = round(value)
    if abs(value - nearest) <= _EPS * max(1.0, abs(value)):
        return int(nearest)
    return math.floor(value)


def _up(value: float) -> int:
    """Round up; a value within float noise (``_EPS`` relative) of an integer is that integer."""
    nearest = round(value)
    if abs(value - nearest) <= _EPS * max(1.0, abs(value)):
        return int(nearest)
    return math.ceil(value)


def _pow10_at_most(value: float) -> int:
    """The largest power of ten not above ``value`` (at least 1)."""
    return 10 ** max(0, math.floor(math.log10(value))) if value >= 1 else 1


# ------------------------------------------------------------------- instance data


@dataclass(frozen=True)
class Network:
    """Lower-bound view of the interconnect.

    ``bandwidth[i][j]``: the bottleneck of the network's route in bytes/s;
    ``latency[i][j]``: its latency in seconds (both exactly the simulator's, on
    an idle network).
    """

    bandwidth: list[list[float]]
    latency: list[list[float]]


def lower_bound_network(problem: PipelineProblem) -> Network:
    """Bottleneck and latency of the network's route for every GPU pair, as if the network were idle.

    Routes come from :meth:`Cluster.route` (the one routing function). Using
    uncontended route times is a relaxation: the simulator charges at least
    ``latency + bytes / bottleneck`` for every transfer, plus any wait for a
    shared resource (NIC, switch port, medium), so bounds built on these
    numbers stay valid on the shared network.
    """
    cluster, n = problem.cluster, problem.num_gpus
    width = [[math.inf] * n for _ in range(n)]
    latency = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            route = cluster.route(i, j) if i != j else None
            if route is not None:
                width[i][j], latency[i][j] = route.bottleneck_bytes_per_s, route.latency_s
    return Network(bandwidth=width, latency=latency)


@dataclass(frozen=True)
class Group:
    """A candidate replica group: its GPUs, summed speed and all-reduce bound terms.

    The all-reduce of ``P`` bytes takes at least ``2 (R - 1) * max(ring_latency_s,
    link_latency_s + P / R * link_s_per_byte)`` seconds for every ring order and for
    the two-level algorithm (each term is the smaller of the two), and for
    two replicas at least ``2 * (latency + P / 2 / bandwidth)`` of each direction
    (``exact_links``).
    """

    mask: int
    gpus: tuple[int, ...]
    speed: float
    ring_latency_s: float = 0.0
    link_latency_s: float = 0.0
    link_s_per_byte: float = 0.0
    exact_links: tuple[tuple[float, float], ...] = ()

    @property
    def size(self) -> int:
        return len(self.gpus)


def _rings(gpus: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Every directed ring over ``gpus`` (first GPU fixed)."""
    first, rest = gpus[0], gpus[1:]
    for perm in itertools.permutations(rest):
        yield (first, *perm)


def _two_level_terms(
    gpus: tuple[int, ...], servers: list[str], net: Network
) -> tuple[float, float, float] | None:
    """Ring-form terms ``(ring_latency, link_latency, link_cost)`` under the two-level all-reduce.

    None when the simulator would not consider it (one server, or one replica per
    server). Its leader ring alone takes ``2 (m - 1)`` steps of at least
    ``latency + P / m * cost`` over ``m`` servers, with latency and cost (s/byte)
    at least the least over cross-server pairs; written in the ring's form
    ``2 (R - 1) (latency' + P / R * cost')`` this is ``latency' = (m - 1) / (R - 1)
    * latency`` and ``cost' = (m - 1) R / (m (R - 1)) * cost``.
    """
    on = [servers[g] for g in gpus]
    m, r = len(set(on)), len(gpus)
    if m < 2 or m == r:
        return None
    cross = [(a, b) for a in gpus for b in gpus if servers[a] != servers[b]]
    latency = min(net.latency[a][b] for a, b in cross)
    cost = min(1.0 / net.bandwidth[a][b] for a, b in cross)
    scaled_latency = (m - 1) / (r - 1) * latency
    return scaled_latency, scaled_latency, (m - 1) * r / (m * (r - 1)) * cost


def _make_group(
    gpus: tuple[int, ...], speeds: list[float], net: Network, servers: list[str]
) -> Group:
    """A group with all-reduce terms valid for the ring and, where it applies, the two-level algorithm."""
    mask = sum(1 << g for g in gpus)
    speed = sum(speeds[g] for g in gpus)
    if len(gpus) < 2:
        return Group(mask, gpus, speed)
    ring_latency = link_latency = link_cost = math.inf
    for ring in _rings(gpus):
        links = [(ring[p], ring[(p + 1) % len(ring)]) for p in range(len(ring))]
        lat = [net.latency[a][b] for a, b in links]
        cost = [1.0 / net.bandwidth[a][b] for a, b in links]
        ring_latency = min(ring_latency, max(lat))
        worst = max(range(len(links)), key=lambda k: (cost[k], lat[k]))
        link_latency = min(link_latency, lat[worst])
        link_cost = min(link_cost, cost[worst])
    two_level = _two_level_terms(gpus, servers, net)
    if two_level is not None:  # the simulator takes the cheaper: keep what bounds both
        ring_latency = min(ring_latency, two_level[0])
        link_latency = min(link_latency, two_level[1])
        link_cost = min(link_cost, two_level[2])
    exact: tuple[tuple[float, float], ...] = ()
    if len(gpus) == 2:
        a, b = gpus
        exact = (
            (net.latency[a][b], 1.0 / net.bandwidth[a][b]),
            (net.latency[b][a], 1.0 / net.bandwidth[b][a]),
        )
    return Group(mask, gpus, speed, ring_latency, link_latency, link_cost, exact)


def candidate_groups(
    problem: PipelineProblem, net: Network, max_combinations: float = math.inf
) -> tuple[list[Group], bool]:
    """Replica groups a stage may use, and whether that list restricts the problem.

    Singletons without replication. With replication, every subset of at most
    ``r`` GPUs, with ``r`` the largest size (at most ``MAX_FULL_SUBSET_GPUS``)
    whose (stage slot, group) pairs stay within ``max_combinations``; ``r < n``
    is a restriction (the model's bound is then not valid for the problem).
    """
    n = problem.num_gpus
    speeds = [g.speed for g in problem.cluster.gpus]
    largest = 1
    if problem.allow_replication:
        slots = min(len(problem.layers), n)
        count = 0
        for r in range(1, min(n, MAX_FULL_SUBSET_GPUS) + 1):
            count += math.comb(n, r)
            if r > 1 and slots * count > max_combinations:
                break
            largest = r
    groups = [
        _make_group(c, speeds, net, problem.cluster.server_of_gpu)
        for r in range(1, largest + 1)
        for c in itertools.combinations(range(n), r)
    ]
    return groups, problem.allow_replication and largest < n


def transfer_lag_terms(
    senders: Group, receivers: Group, net: Network, speeds: list[float]
) -> tuple[float, float]:
    """``(latency_s, s_per_byte)`` with ``lag >= latency_s + bytes * s_per_byte`` from ``senders`` to ``receivers``.

    A receiver ``j`` waits for every sender whose share interval overlaps its own;
    one of them sends at least ``share_j / |senders|`` of the bytes.
    """
    latency = min(net.latency[i][j] for i in senders.gpus for j in receivers.gpus)
    per_byte = min(
        (speeds[j] / receivers.speed)
        / (senders.size * max(net.bandwidth[i][j] for i in senders.gpus))
        for j in receivers.gpus
    )
    return latency, per_byte


def one_sided_lag_terms(
    group: Group, sends: bool, problem: PipelineProblem, net: Network
) -> tuple[float, float] | None:
    """Lag terms valid for any partner group, knowing only one side's group (None: no partner possible).

    The partner's GPUs are outside ``group``; a receiver's share is at least its
    speed over the speed of all GPUs outside the sending group, and at most
    ``n - |group|`` replicas send to one receiver.
    """
    speeds = [g.speed for g in problem.cluster.gpus]
    others = [g for g in range(problem.num_gpus) if not group.mask >> g & 1]
    if not others:
        return None
    replicated = problem.allow_replication
    if sends:
        rest_speed = sum(speeds[j] for j in others)
        latency = min(net.latency[i][j] for i in group.gpus for j in others)
        per_byte = min(
            (speeds[j] / rest_speed if replicated else 1.0)
            / (group.size * max(net.bandwidth[i][j] for i in group.gpus))
            for j in others
        )
    else:
        senders = len(others) if replicated else 1
        latency = min(net.latency[i][j] for i in others for j in group.gpus)
        per_byte = min(
            (speeds[j] / group.speed) / (senders * max(net.bandwidth[i][j] for i in others))
            for j in group.gpus
        )
    return latency, per_byte


@dataclass(frozen=True)
class Blocks:
    """The layers merged into blocks (contiguous segments of a topological order)."""

    layers_of_block: tuple[tuple[int, ...], ...]
    block_of_layer: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]
    max_span: int

    @property
    def count(self) -> int:
        return len(self.layers_of_block)


def make_blocks(problem: PipelineProblem, max_blocks: int, num_slots_cap: int) -> Blocks:
    """Blocks from the candidate cuts, the block graph and the largest stage distance of an edge."""
    lin = linearize(problem)
    cuts = candidate_cuts(lin, max_blocks)
    layers_of_block = tuple(
        tuple(lin.order[p] for p in range(a, b)) for a, b in zip(cuts, cuts[1:], strict=False)
    )
    block_of_layer = [0] * len(problem.layers)
    for b, layers in enumerate(layers_of_block):
        for layer in layers:
            block_of_layer[layer] = b
    edges = sorted(
        {
            (block_of_layer[u], block_of_layer[v])
            for u, v in problem.edges
            if block_of_layer[u] != block_of_layer[v]
        }
    )
    count = len(layers_of_block)
    succ: list[set[int]] = [set() for _ in range(count)]
    for u, v in edges:
        succ[u].add(v)
    descendants: list[set[int]] = [set() for _ in range(count)]
    for b in reversed(range(count)):  # blocks are in topological order
        for v in succ[b]:
            descendants[b] |= {v} | descendants[v]
    ancestors: list[set[int]] = [
        {a for a in range(count) if b in descendants[a]} for b in range(count)
    ]
    # Stages strictly between an edge's ends need blocks that are neither ancestors
    # of its producer nor descendants of its consumer.
    span = 1
    for u, v in edges:
        between = count - 2 - len(ancestors[u]) - len(descendants[v])
        span = max(span, 1 + max(0, between))
    return Blocks(
        layers_of_block, tuple(block_of_layer), tuple(edges), min(span, max(1, num_slots_cap - 1))
    )
