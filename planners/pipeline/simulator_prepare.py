"""Simulator, part 3: per-plan aggregates (workers, shares, task times, transfers, all-reduce steps).

Computed once per plan in O(layers + edges + replica pairs). Every transfer is
routed with :meth:`distplan.models.pipeline.Cluster.route` (the one routing
function of :mod:`distplan.models.network`) and occupies every resource of its
route: each directed link and each capacitated forwarding node, numbered here.
"""

from __future__ import annotations

from fractions import Fraction

from ...models.network import Route
from ...models.pipeline import PipelinePlan, PipelineProblem
from .simulator_allreduce import Step, choose_allreduce
from .simulator_checks import samples_of_stage

__all__ = ["Prepared", "Spec"]

#: A transfer: (receiver worker, bytes, seconds, resource ids, source GPU, destination GPU).
#: No resource ids: the transfer occupies nothing (same GPU, or zero bytes: latency only).
Spec = tuple[int, float, float, tuple[int, ...], int, int]


def _shares(problem: PipelineProblem, plan: PipelinePlan) -> list[list[Fraction]]:
    """Every replica's exact share of a micro-batch (whole samples / N, or speed-proportional)."""
    samples = samples_of_stage(problem, plan)
    total = problem.samples_per_microbatch
    if samples is not None and total is not None:
        return [[Fraction(n, total) for n in split] for split in samples]
    speeds = [Fraction(gpu.speed) for gpu in problem.cluster.gpus]
    return [[speeds[g] / sum(speeds[h] for h in gpus) for g in gpus] for gpus in plan.gpus_of_stage]


class Prepared:
    """Aggregates of one plan the replay and the memory check read."""

    def __init__(self, problem: PipelineProblem, plan: PipelinePlan):
        self.problem = problem
        self.k, self.num_stages = problem.microbatches, plan.num_stages
        self._stage_sums(problem, plan)
        self._workers(problem, plan)
        self._resource_id: dict[str, int] = {}
        self.capacity: list[float] = []
        self._pipeline_transfers()
        self._allreduces()
        self._orders(plan)

    # ------------------------------------------------------------------ stages
    def _stage_sums(self, problem: PipelineProblem, plan: PipelinePlan) -> None:
        s_count, stage_of_layer = plan.num_stages, plan.stage_of_layer
        overhead = problem.launch_overhead_s
        self.fixed_s = [[0.0, 0.0] for _ in range(s_count)]  # launch part, F and B
        self.scaled_s = [[0.0, 0.0] for _ in range(s_count)]  # part that scales with the share
        self.activation_bytes = [0.0] * s_count
        self.parameter_bytes = [0.0] * s_count
        self.pair_bytes: dict[tuple[int, int], float] = {}
        for u, layer in enumerate(problem.layers):
            s = stage_of_layer[u]
            for phase, seconds in enumerate((layer.forward_s, layer.backward_s)):
                fixed = min(overhead, seconds)
                self.fixed_s[s][phase] += fixed
                self.scaled_s[s][phase] += seconds - fixed
            self.activation_bytes[s] += layer.activation_bytes
            self.parameter_bytes[s] += layer.parameter_bytes
            fed: set[int] = set()
            for v in problem.successors[u]:
                t = stage_of_layer[v]
                if t > s and t not in fed:
                    fed.add(t)
                    self.pair_bytes[(s, t)] = (
                        self.pair_bytes.get((s, t), 0.0) + layer.activation_bytes
                    )

    # ----------------------------------------------------------------- workers
    def _workers(self, problem: PipelineProblem, plan: PipelinePlan) -> None:
        """One worker per (stage, replica), numbered stage by stage."""
        speeds = [gpu.speed for gpu in problem.cluster.gpus]
        self.gpu: list[int] = []
        self.stage: list[int] = []
        self.share: list[float] = []
        self.duration: list[tuple[float, float]] = []
        self.workers_of_stage: list[list[int]] = []
        self.intervals: list[list[tuple[Fraction, Fraction]]] = []
        for s, (gpus, shares) in enumerate(
            zip(plan.gpus_of_stage, _shares(problem, plan), strict=True)
        ):
            cumulative, spans, workers = Fraction(0), [], []
            for g, share in zip(gpus, shares, strict=True):
                spans.append((cumulative, cumulative + share))
                cumulative += share
                workers.append(len(self.gpu))
                self.gpu.append(g)
                self.stage.append(s)
                self.share.append(float(share))
                fixed, scaled = self.fixed_s[s], self.scaled_s[s]
                self.duration.append(
                    tuple((fixed[p] + float(share) * scaled[p]) / speeds[g] for p in (0, 1))  # type: ignore[arg-type]
                )
            self.intervals.append(spans)
            self.workers_of_stage.append(workers)
        self.num_workers = len(self.gpu)

    # --------------------------------------------------------------- transfers
    def _resources(self, route: Route) -> tuple[int, ...]:
        ids = []
        for name in route.resources:
            if name not in self._resource_id:
                self._resource_id[name] = len(self.capacity)
                self.capacity.append(self.problem.cluster.fabric.capacity_of(name))
            ids.append(self._resource_id[name])
        return tuple(ids)

    def spec(self, sender: int, receiver: int, nbytes: float) -> Spec:
        """The transfer of ``nbytes`` from worker ``sender`` to worker ``receiver``."""
        src, dst = self.gpu[sender], self.gpu[receiver]
        if src == dst:
            return (receiver, nbytes, 0.0, (), src, dst)
        route = self.problem.cluster.route(src, dst)
        assert route is not None  # the cluster validator proved every pair connected
        if nbytes <= 0.0:
            return (receiver, nbytes, route.latency_s, (), src, dst)
        return (receiver, nbytes, route.transfer_s(nbytes), self._resources(route), src, dst)

    def _pipeline_transfers(self) -> None:
        n = self.num_workers
        self.forward_out: list[list[Spec]] = [[] for _ in range(n)]
        self.backward_out: list[list[Spec]] = [[] for _ in range(n)]
        self.forward_in: list[list[int]] = [[] for _ in range(n)]
        self.backward_in: list[list[int]] = [[] for _ in range(n)]
        for (s, t), nbytes in sorted(self.pair_bytes.items()):
            for i, sender in enumerate(self.workers_of_stage[s]):
                a, b = self.intervals[s][i]
                for j, receiver in enumerate(self.workers_of_stage[t]):
                    c, d = self.intervals[t][j]
                    overlap = min(b, d) - max(a, c)
                    if overlap <= 0:
                        continue
                    share_bytes = float(overlap) * nbytes
                    self.forward_out[sender].append(self.spec(sender, receiver, share_bytes))
                    self.backward_out[receiver].append(self.spec(receiver, sender, share_bytes))
                    self.forward_in[receiver].append(sender)
                    self.backward_in[sender].append(receiver)

    # --------------------------------------------------------------- all-reduce
    def _step_estimate_s(self, workers: list[int], step: Step) -> float:
        """Idle-network seconds of one step: slowest transfer, or the busiest resource's bytes / capacity."""
        slowest, load = 0.0, dict[int, float]()
        for p, q, nbytes in step:
            spec = self.spec(workers[p], workers[q], nbytes)
            slowest = max(slowest, spec[2])
            for resource in spec[3]:
                load[resource] = load.get(resource, 0.0) + nbytes
        return max([slowest] + [b / self.capacity[r] for r, b in load.items()])

    def _allreduces(self) -> None:
        servers = self.problem.cluster.server_of_gpu
        self.allreduce_algorithm: list[str | None] = []
        self.allreduce: list[list[list[Spec]]] = []
        for s, workers in enumerate(self.workers_of_stage):
            if len(workers) < 2:
                self.allreduce_algorithm.append(None)
                self.allreduce.append([])
                continue

            def step_s(step: Step, workers: list[int] = workers) -> float:
                return self._step_estimate_s(workers, step)

            name, steps = choose_allreduce(
                [servers[self.gpu[w]] for w in workers], self.parameter_bytes[s], step_s
            )
            self.allreduce_algorithm.append(name)
            self.allreduce.append(
                [[self.spec(workers[p], workers[q], b) for p, q, b in step] for step in steps]
            )

    # ------------------------------------------------------------------ orders
    def _orders(self, plan: PipelinePlan) -> None:
        """Task orders as local ids ``2 m + phase``, and the peak in-flight micro-batches."""
        self.order: list[list[int]] = []
        self.peak_in_flight: list[int] = []
        for order in plan.order_of_stage:
            ids, in_flight, peak = [], 0, 0
            for m, phase in order:
                if phase == "F":
                    ids.append(2 * m)
                    in_flight += 1
                    peak = max(peak, in_flight)
                else:
                    ids.append(2 * m + 1)
                    in_flight -= 1
            self.order.append(ids)
            self.peak_in_flight.append(peak)
        self.order_of_worker = [self.order[s] for s in self.stage]
        self.num_resources = len(self.capacity)
