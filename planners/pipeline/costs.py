"""Cost estimates the planners share: effective bandwidth between GPUs, stage times.

These are the planners' own estimates (the simulator recomputes everything from
the plan in its own code).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...models.pipeline import Cluster, PipelineProblem


@dataclass(frozen=True)
class Interconnect:
    """Widest-path bandwidth (bytes/s) and route latency (s) for every GPU pair."""

    bandwidth_bytes_per_s: np.ndarray
    latency_s: np.ndarray

    def transfer_s(self, src: int, dst: int, num_bytes: float) -> float:
        """Seconds to move ``num_bytes`` from GPU ``src`` to ``dst`` on an idle network."""
        if src == dst:
            return 0.0
        return float(self.latency_s[src, dst] + num_bytes / self.bandwidth_bytes_per_s[src, dst])


def interconnect(cluster: Cluster) -> Interconnect:
    """Bottleneck bandwidth and latency of the network's route between every GPU pair.

    Routes come from :meth:`Cluster.route` (:func:`distplan.models.network.route`,
    the one routing function); ``inf`` bandwidth and 0 latency on the diagonal.
    """
    n = len(cluster.gpus)
    width = np.full((n, n), np.inf)
    latency = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            route = cluster.route(i, j) if i != j else None
            if route is not None:
                width[i, j], latency[i, j] = route.bottleneck_bytes_per_s, route.latency_s
    return Interconnect(bandwidth_bytes_per_s=width, latency_s=latency)


@dataclass(frozen=True)
class ClusterView:
    """Per-problem facts planners look up often."""

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

    def group_speed(self, gpus: list[int] | tuple[int, ...]) -> float:
        """Summed speed of a replica group (its throughput relative to one speed-1.0 GPU)."""
        return float(sum(self.speed[g] for g in gpus))

    def group_transfer_s(self, src: list[int] | tuple[int, ...], dst: list[int] | tuple[int, ...], num_bytes: float) -> float:
        """Estimated seconds to move a micro-batch's ``num_bytes`` from group ``src`` to ``dst``.

        Shards move in parallel; the estimate is the slowest sender-receiver pair
        carrying ``num_bytes / max(len(src), len(dst))``.
        """
        if num_bytes <= 0 or tuple(src) == tuple(dst):
            return 0.0
        share = num_bytes / max(len(src), len(dst))
        return max(self.net.transfer_s(a, b, share) for a in src for b in dst)

    def allreduce_s(self, gpus: list[int] | tuple[int, ...], parameter_bytes: float) -> float:
        """Ring all-reduce seconds over ``gpus`` in order: ``2 (R-1)`` steps of ``bytes / R``."""
        r = len(gpus)
        if r <= 1 or parameter_bytes <= 0:
            return 0.0
        chunk = parameter_bytes / r
        step = max(self.net.transfer_s(gpus[i], gpus[(i + 1) % r], chunk) for i in range(r))
        return 2 * (r - 1) * step
