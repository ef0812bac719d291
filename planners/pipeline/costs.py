"""Cost estimates the planners share, on the cluster's physical network.

These are the planners' own estimates (the simulator recomputes everything from
the plan in its own code). Every estimate routes its transfers with the one
routing function of :mod:`distplan.models.network` and charges *shared*
resources: transfers that cross one NIC, switch port or medium at the same time
split its capacity.

Estimate of a set of concurrent transfers (a "step")
----------------------------------------------------
A step moving ``b_f`` bytes on the route of every flow ``f`` takes::

    max( max_f (latency_f + b_f / bottleneck_f),  max_resource sum_{f on it} b_f / capacity )

the slowest transfer alone, or the busiest resource's bytes over its capacity,
whichever is larger (a lower estimate of the FCFS-hold replay of
``models/pipeline.py``, exact when one resource is the bottleneck). Because
every flow carries a fixed fraction of a stage's bytes, a step is a set of
*lines* ``(latency, seconds per byte)`` and its time for ``B`` bytes is the
largest ``latency + B * seconds_per_byte``; the DPs evaluate these lines on
whole vectors of byte counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from ...models.network import Route
from ...models.pipeline import Cluster, PipelineProblem, split_samples

__all__ = [
    "ClusterView",
    "Flow",
    "Interconnect",
    "Line",
    "interconnect",
    "lines_s",
    "replica_shares",
    "servers_of",
]

#: ``(latency seconds, seconds per byte)``: a transfer time linear in the bytes moved.
Line = tuple[float, float]

#: ``(source GPU, destination GPU, fraction of the bytes)``: one flow of a step.
Flow = tuple[int, int, float]


def gpu_route(cluster: Cluster, src: int, dst: int) -> Route:
    """The route from GPU ``src`` to GPU ``dst`` on the cluster's network (:meth:`Cluster.route`)."""
    found = cluster.route(src, dst)
    if found is None:  # pragma: no cover - the cluster validator proves connectivity
        raise ValueError(f"cluster: no route from GPU {src} to GPU {dst}")
    return found


def servers_of(cluster: Cluster) -> list[str]:
    """The server (host) of every GPU; a GPU that names none is a server of its own."""
    return list(cluster.server_of_gpu)


def replica_shares(problem: PipelineProblem, gpus: Sequence[int]) -> list[Fraction]:
    """Every replica's exact share of a micro-batch (``models/pipeline.py``, samples).

    Whole samples by :func:`~distplan.models.pipeline.split_samples` over ``N =
    samples_per_microbatch`` when the problem has it (a replica may get 0: such
    a plan is infeasible), else in proportion to speed.
    """
    speeds = [problem.cluster.gpus[g].speed for g in gpus]
    total = problem.samples_per_microbatch
    if total is not None:
        return [Fraction(n, total) for n in split_samples(total, speeds)]
    exact = [Fraction(v) for v in speeds]
    return [v / sum(exact) for v in exact]


def lines_s(lines: Sequence[Line], num_bytes: np.ndarray | float) -> np.ndarray:
    """The largest ``latency + bytes * seconds_per_byte`` over ``lines`` (0 for no lines), element-wise."""
    values = np.asarray(num_bytes, dtype=float)
    if not lines:
        return np.zeros_like(values)
    return np.max([lat + per_byte * values for lat, per_byte in lines], axis=0)


@dataclass(frozen=True)
class Interconnect:
    """Route bottleneck bandwidth (bytes/s) and route latency (s) for every GPU pair, on an idle network."""

    bandwidth_bytes_per_s: np.ndarray
    latency_s: np.ndarray

    def transfer_s(self, src: int, dst: int, num_bytes: float) -> float:
        """Seconds to move ``num_bytes`` from GPU ``src`` to ``dst`` alone on an idle network."""
        if src == dst:
            return 0.0
        return float(self.latency_s[src, dst] + num_bytes / self.bandwidth_bytes_per_s[src, dst])


def interconnect(cluster: Cluster) -> Interconnect:
    """Bottleneck and latency of the route (:func:`distplan.models.network.route`) of every GPU pair."""
    n = len(cluster.gpus)
    width = np.full((n, n), np.inf)
    latency = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                found = gpu_route(cluster, i, j)
                width[i, j], latency[i, j] = found.bottleneck_bytes_per_s, found.latency_s
    return Interconnect(bandwidth_bytes_per_s=width, latency_s=latency)


@dataclass(frozen=True)
class ClusterView:
    """Per-problem facts and network estimates the planners look up often."""

    problem: PipelineProblem

    @cached_property
    def net(self) -> Interconnect:
        return interconnect(self.problem.cluster)

    @cached_property
    def speed(self) -> np.ndarray:
        return np.array([g.speed for g in self.problem.cluster.gpus], dtype=float)

    @cached_property
    def memory_bytes(self) -> np.ndarray:
        return np.array([g.memory_bytes for g in self.problem.cluster.gpus], dtype=float)

    @cached_property
    def server_of_gpu(self) -> list[str]:
        return servers_of(self.problem.cluster)

    @cached_property
    def _routes(self) -> dict[tuple[int, int], Route]:
        return {}

    def route(self, src: int, dst: int) -> Route:
        """The route of GPU ``src`` to GPU ``dst`` (cached)."""
        found = self._routes.get((src, dst))
        if found is None:
            found = self._routes[(src, dst)] = gpu_route(self.problem.cluster, src, dst)
        return found

    def capacity(self, resource: str) -> float:
        """Capacity (bytes/s) of a resource named as in :attr:`Route.resources`."""
        return self.problem.cluster.fabric.capacity_of(resource)

    def group_speed(self, gpus: Sequence[int]) -> float:
        """Summed speed of a replica group (its throughput relative to one speed-1.0 GPU)."""
        return float(sum(self.speed[g] for g in gpus))

    def shares(self, gpus: Sequence[int]) -> list[float]:
        """Every replica's fraction of a micro-batch (:func:`replica_shares`)."""
        return [float(share) for share in replica_shares(self.problem, gpus)]

    def step_lines(self, flows: Sequence[Flow]) -> list[Line]:
        """Lines of a step of concurrent ``(src, dst, fraction of the bytes)`` flows (module docstring)."""
        lines: set[Line] = set()
        load: dict[str, float] = {}
        for src, dst, fraction in flows:
            if src == dst or fraction <= 0:
                continue
            found = self.route(src, dst)
            lines.add((found.latency_s, fraction / found.bottleneck_bytes_per_s))
            for resource in found.resources:
                load[resource] = load.get(resource, 0.0) + fraction
        for resource, fraction in load.items():
            capacity = self.capacity(resource)
            if math.isfinite(capacity):
                lines.add((0.0, fraction / capacity))
        return sorted(lines)

    def boundary_lines(self, src: Sequence[int], dst: Sequence[int]) -> list[Line]:
        """Lines of one micro-batch's activations moving from group ``src`` to group ``dst``.

        Replicas hold consecutive share intervals of the micro-batch (in group
        order); a sender sends a receiver the overlap of their intervals, all at
        once (``models/pipeline.py``, transfers).
        """
        flows: list[tuple[int, int, float]] = []
        a = 0.0
        dst_spans = []
        c = 0.0
        for g, share in zip(dst, self.shares(dst), strict=True):
            dst_spans.append((g, c, c + share))
            c += share
        for g, share in zip(src, self.shares(src), strict=True):
            b = a + share
            for h, lo, hi in dst_spans:
                overlap = min(b, hi) - max(a, lo)
                if overlap > 1e-12:
                    flows.append((g, h, overlap))
            a = b
        return self.step_lines(flows)

    def group_transfer_s(self, src: Sequence[int], dst: Sequence[int], num_bytes: float) -> float:
        """Estimated seconds to move a micro-batch's ``num_bytes`` from group ``src`` to group ``dst``."""
        if num_bytes <= 0 or tuple(src) == tuple(dst):
            return 0.0
        return float(lines_s(self.boundary_lines(src, dst), num_bytes))

    def server_order(self, gpus: Sequence[int]) -> list[list[int]]:
        """The group's replicas by server: servers in order of first appearance, replicas in group order."""
        by_server: dict[str, list[int]] = {}
        for g in gpus:
            by_server.setdefault(self.server_of_gpu[g], []).append(g)
        return list(by_server.values())

    def allreduce_algorithms(self, gpus: Sequence[int]) -> list[tuple[str, list[list[Flow]]]]:
        """The all-reduce algorithms over ``gpus``: ring, then two-level when it applies.

        Each is a list of bulk-synchronous steps of concurrent ``(src, dst,
        fraction of the parameter bytes)`` flows (``models/pipeline.py``,
        all-reduce): a ring over the replicas ordered server by server; a
        two-level reduce-scatter, gather to the server's first replica, ring
        among those leaders, scatter, all-gather, when the replicas span several
        servers and one server holds more than one.
        """
        servers = self.server_order(gpus)
        ring = [g for members in servers for g in members]
        r = len(ring)
        if r < 2:
            return []

        def ring_step(members: list[int]) -> list[Flow]:
            return [
                (members[p], members[(p + 1) % len(members)], 1.0 / len(members))
                for p in range(len(members))
            ]

        algorithms = [("ring", [ring_step(ring)] * (2 * (r - 1)))]
        local = [m for m in servers if len(m) > 1]
        if len(servers) > 1 and local:
            inner = [
                [f for m in local if i < len(m) - 1 for f in ring_step(m)]
                for i in range(max(map(len, local)) - 1)
            ]
            gather = [(g, m[0], 1.0 / len(m)) for m in local for g in m[1:]]
            scatter = [(m[0], g, 1.0 / len(m)) for m in local for g in m[1:]]
            leaders = [m[0] for m in servers]
            steps = [
                *inner,
                gather,
                *[ring_step(leaders)] * (2 * (len(leaders) - 1)),
                scatter,
                *inner,
            ]
            algorithms.append(("two-level", steps))
        return algorithms

    def _algorithm_s(
        self, steps: Sequence[Sequence[Flow]], parameter_bytes: np.ndarray
    ) -> np.ndarray:
        total = np.zeros_like(parameter_bytes)
        counted: dict[tuple[Flow, ...], int] = {}
        for step in steps:
            counted[tuple(step)] = counted.get(tuple(step), 0) + 1
        for step, count in counted.items():
            total = total + count * lines_s(self.step_lines(step), parameter_bytes)
        return total

    def allreduce_choice(
        self, gpus: Sequence[int], parameter_bytes: float
    ) -> tuple[str, list[list[Flow]]]:
        """The algorithm the replay runs: the cheaper estimate, ties to the ring (``("ring", [])`` for one replica)."""
        best: tuple[float, str, list[list[Flow]]] = (math.inf, "ring", [])
        for name, steps in self.allreduce_algorithms(gpus):
            seconds = float(self._algorithm_s(steps, np.asarray(float(parameter_bytes))))
            if seconds < best[0]:
                best = (seconds, name, steps)
        return best[1], best[2]

    def allreduce_s(self, gpus: Sequence[int], parameter_bytes: np.ndarray | float) -> np.ndarray:
        """Estimated all-reduce seconds of ``parameter_bytes`` over ``gpus``: the cheaper algorithm, element-wise."""
        values = np.asarray(parameter_bytes, dtype=float)
        best = np.zeros_like(values) if len(gpus) < 2 else np.full_like(values, np.inf)
        for _, steps in self.allreduce_algorithms(gpus):
            best = np.minimum(best, self._algorithm_s(steps, values))
        return np.where(values > 0, best, 0.0)
