"""DS-Sync group formation: the problem and its plan.

Reconstruction of the problem of Wang et al., "DS-Sync: Addressing Network
Bottlenecks with Divide-and-Shuffle Synchronization for Distributed DNN Training"
(INFOCOM 2022, arXiv 2007.03298). The paper's full text is not available to us:
everything below is our reconstruction, and it is the exact contract that every
``dssync`` solver and the independent evaluator (a fluid network simulator and a
numpy training simulator) follow.

Semantics (the plan's meaning)
------------------------------
* Network: the shared :class:`~distplan.models.network.Network` (hosts, NICs,
  top-of-rack and spine switches; any tree given as JSON). Every worker runs on a
  compute node ``host`` and belongs to a ``rack`` (a label; hierarchical groups
  use it). Its NIC caps the rate at which it sends and receives
  (``nic_bytes_per_s``).
* Background traffic: a :class:`BackgroundLoad` takes ``bytes_per_s`` off one
  directed link; with a ``trace_bytes_per_s`` the load is piecewise constant,
  ``trace[floor(t / trace_step_s) mod len(trace)]`` at simulated time ``t``
  (seconds). Only the residual capacity is available to training.
* Plan: a periodic schedule of ``P`` partitions; iteration ``t`` (0-based) uses
  partition ``t mod P``. A partition lists groups; each worker is in exactly one
  group of every partition. A group of one worker does not communicate.
* Iteration of a worker: it computes for ``compute_s * slowdown[t mod len]``
  seconds (a local SGD step), then waits for the members of its group in this
  iteration (no global barrier), then the group averages its model parameters;
  the worker starts iteration ``t + 1`` when the group's averaging ends.
* Group algorithms (``alpha`` = per-step latency in seconds, ``M`` = model bytes):

  - ``ring`` over members ``w_0..w_{k-1}`` (in the listed order): a ring
    all-reduce, one fluid flow whose hops are ``w_i -> w_{i+1 mod k}``; it waits
    ``2 (k - 1) alpha`` seconds, then moves ``2 (k - 1) / k * M`` bytes over every
    hop at the flow's common rate. Alone on a non-blocking fabric of NIC rate
    ``B`` it takes ``2 (k-1)/k * M / B + 2 (k-1) alpha``.
  - ``hierarchical`` (NCCL / Horovod 2-D): members are split by rack (racks in
    order of first appearance, members in listed order, the first member of a
    rack is its leader). Phase 1: each rack's members form a chain to the leader
    and reduce (one flow per rack, ``(k_r - 1) alpha`` wait, ``M`` bytes per hop,
    pipelined). Phase 2: a ring all-reduce over the leaders (as ``ring``).
    Phase 3: each leader broadcasts down its chain (as phase 1, reversed). A
    phase starts when every flow of the previous phase has ended.
* Sharing: every hop is routed by :func:`~distplan.models.network.route`; a
  flow uses each directed link (and capacitated medium) as many times as its
  hops cross it. Concurrent flows of all groups share resources max-min fairly
  (progressive filling over flows with those crossing counts; a flow's rate is
  also capped by the smallest NIC rate of its members), re-filled whenever a
  flow starts or ends or a background trace steps.
* Training: a synthetic convex task (:class:`TrainingTask`), deterministic from
  its seed. Worker ``w`` holds model ``x_w``; at iteration ``t`` it takes an SGD
  step on a minibatch of its own samples (the minibatch indices depend only on
  the seed, ``w`` and ``t``), then the group replaces every member's model by the
  members' mean. Averaging is exact (of model parameters); communication does
  not change the numbers, only the time.
* Objective (minimise): simulated seconds until the loss (over all workers'
  data) of the workers' mean model reaches ``target_loss``: the first iteration
  ``T`` after which it does, timed when the last worker finishes iteration
  ``T``. ``inf`` when the target is not reached within ``max_iterations``.
  Also reported: mean iteration and period time, the consensus factor
  ``rho_P = ||W_P ... W_1 - J/n||_2``, the loss curve, link utilisation and every
  link a partition overcommits (more crossings than the residual capacity
  carries at the NIC rate).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from .base import PlanBase, ProblemBase, StrictModel
from .network import Network

__all__ = [
    "BackgroundLoad",
    "DssyncPlan",
    "DssyncProblem",
    "Group",
    "Partition",
    "TrainingTask",
    "Worker",
    "plan_violations",
]

#: Caps that keep instances and plans simulable in seconds.
MAX_WORKERS = 1024
MAX_PARTITIONS = 4096
MAX_ITERATIONS = 100_000
MAX_DIMENSION = 4096

GroupAlgorithm = Literal["ring", "hierarchical"]


def _finite(value: float, field: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{field}: must be a finite number, got {value}")
    return value


def _reachable_hosts(network: Network, source: str) -> set[str]:
    """Nodes a route from ``source`` can end at (intermediate nodes must relay)."""
    out: dict[str, list[str]] = {}
    for link in network.directed_links:
        out.setdefault(link.source, []).append(link.target)
    reached, frontier = {source}, [source]
    while frontier:
        node = frontier.pop()
        if node != source and not network.node_by_name[node].relays:
            continue
        for nxt in out.get(node, []):
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    return reached


class Worker(StrictModel):
    """A training worker on a compute node of the network."""

    name: str = Field(min_length=1, max_length=200)
    host: str = Field(min_length=1, description="compute node of the network it runs on")
    rack: str = Field(min_length=1, description="rack label (hierarchical groups split by it)")
    nic_bytes_per_s: PositiveFloat = Field(allow_inf_nan=False, description="NIC rate, bytes/s")
    compute_s: PositiveFloat = Field(allow_inf_nan=False, description="seconds of one local step")
    slowdown: list[PositiveFloat] | None = Field(
        None,
        max_length=MAX_ITERATIONS,
        description="per-iteration factor on compute_s (cyclic), for a contended host",
    )

    @field_validator("slowdown")
    @classmethod
    def _finite_slowdown(cls, value: list[float] | None) -> list[float] | None:
        for k, factor in enumerate(value or []):
            _finite(factor, f"slowdown[{k}]")
        return value

    def compute_seconds(self, iteration: int) -> float:
        """Seconds of the local step of ``iteration`` (slow-down applied)."""
        if not self.slowdown:
            return self.compute_s
        return self.compute_s * self.slowdown[iteration % len(self.slowdown)]


class BackgroundLoad(StrictModel):
    """Background traffic on the directed link ``source -> target`` (bytes/s)."""

    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    bytes_per_s: float = Field(0.0, ge=0.0, allow_inf_nan=False, description="constant load")
    trace_bytes_per_s: list[float] | None = Field(
        None, min_length=1, max_length=MAX_ITERATIONS, description="piecewise-constant load"
    )
    trace_step_s: PositiveFloat | None = Field(
        None, allow_inf_nan=False, description="seconds each trace value lasts"
    )

    @model_validator(mode="after")
    def _check(self) -> BackgroundLoad:
        if (self.trace_bytes_per_s is None) != (self.trace_step_s is None):
            raise ValueError("trace_step_s: give it exactly when trace_bytes_per_s is given")
        for k, value in enumerate(self.trace_bytes_per_s or []):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"trace_bytes_per_s[{k}]: must be finite and >= 0, got {value}")
        return self

    def peak_bytes_per_s(self) -> float:
        """Largest load this entry ever puts on its link (bytes/s)."""
        return self.bytes_per_s + max(self.trace_bytes_per_s or [0.0])

    def at(self, time_s: float) -> float:
        """Load in bytes/s at simulated time ``time_s`` (seconds)."""
        if self.trace_bytes_per_s is None or self.trace_step_s is None:
            return self.bytes_per_s
        step = int(math.floor(time_s / self.trace_step_s)) % len(self.trace_bytes_per_s)
        return self.bytes_per_s + self.trace_bytes_per_s[step]


class TrainingTask(StrictModel):
    """A synthetic convex learning task, deterministic from ``seed``."""

    loss: Literal["logistic", "least_squares"] = "logistic"
    dimension: PositiveInt = Field(le=MAX_DIMENSION, description="model parameters d")
    samples_per_worker: PositiveInt = Field(le=100_000)
    heterogeneity: float = Field(
        0.0, ge=0.0, le=1.0, allow_inf_nan=False, description="0 = IID, 1 = label-skewed by rack"
    )
    learning_rate: PositiveFloat = Field(allow_inf_nan=False)
    batch_size: PositiveInt
    target_loss: float = Field(allow_inf_nan=False, description="loss of the mean model to reach")
    max_iterations: PositiveInt = Field(le=MAX_ITERATIONS)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> TrainingTask:
        if self.batch_size > self.samples_per_worker:
            raise ValueError(
                f"batch_size: {self.batch_size} exceeds samples_per_worker {self.samples_per_worker}"
            )
        return self


class DssyncProblem(ProblemBase):
    """Workers on a network, a model to average, and a training task."""

    kind: Literal["dssync"] = "dssync"
    network: Network
    workers: list[Worker] = Field(min_length=1, max_length=MAX_WORKERS)
    model_bytes: PositiveFloat = Field(allow_inf_nan=False, description="M, bytes averaged")
    alpha_s: float = Field(0.0, ge=0.0, allow_inf_nan=False, description="per-step latency, s")
    background: list[BackgroundLoad] = Field(default_factory=list)
    training: TrainingTask

    @model_validator(mode="after")
    def _check(self) -> DssyncProblem:
        nodes = self.network.node_by_name
        seen: set[str] = set()
        for k, worker in enumerate(self.workers):
            if worker.name in seen:
                raise ValueError(f"workers[{k}].name: duplicate worker name {worker.name!r}")
            seen.add(worker.name)
            node = nodes.get(worker.host)
            if node is None:
                raise ValueError(f"workers[{k}].host: unknown network node {worker.host!r}")
            if node.role != "compute":
                raise ValueError(f"workers[{k}].host: node {worker.host!r} is not a compute node")
        capacity = {
            (link.source, link.target): link.bandwidth_bytes_per_s
            for link in self.network.directed_links
        }
        for k, load in enumerate(self.background):
            key = (load.source, load.target)
            if key not in capacity:
                raise ValueError(
                    f"background[{k}]: no directed link {load.source!r} -> {load.target!r}"
                )
            if load.peak_bytes_per_s() >= capacity[key]:
                raise ValueError(
                    f"background[{k}]: peak load {load.peak_bytes_per_s():.4g} B/s leaves no "
                    f"capacity on a {capacity[key]:.4g} B/s link"
                )
        hosts = list(dict.fromkeys(w.host for w in self.workers))
        for a in hosts:
            reached = _reachable_hosts(self.network, a)
            for b in hosts:
                if b not in reached:
                    raise ValueError(f"network: no route from host {a!r} to host {b!r}")
        return self

    @cached_property
    def worker_index(self) -> dict[str, int]:
        """Position of every worker by name."""
        return {worker.name: k for k, worker in enumerate(self.workers)}

    @cached_property
    def racks(self) -> list[str]:
        """Rack labels in order of first appearance."""
        return list(dict.fromkeys(worker.rack for worker in self.workers))


class Group(StrictModel):
    """Workers that average together, in ring order, and how."""

    members: list[str] = Field(min_length=1, max_length=MAX_WORKERS)
    algorithm: GroupAlgorithm = "ring"


class Partition(StrictModel):
    """Groups that together cover every worker once."""

    groups: list[Group] = Field(min_length=1, max_length=MAX_WORKERS)


class DssyncPlan(PlanBase):
    """A periodic schedule: iteration ``t`` uses ``partitions[t mod P]``."""

    kind: Literal["dssync"] = "dssync"
    partitions: list[Partition] = Field(min_length=1, max_length=MAX_PARTITIONS)

    @classmethod
    def of_groups(
        cls, partitions: list[list[list[str]]], algorithm: GroupAlgorithm = "ring"
    ) -> DssyncPlan:
        """Build a plan from member lists, every group with ``algorithm``."""
        return cls(
            partitions=[
                Partition(groups=[Group(members=g, algorithm=algorithm) for g in part])
                for part in partitions
            ]
        )


def plan_violations(problem: DssyncProblem, plan: DssyncPlan) -> list[str]:
    """Every way ``plan`` breaks the schedule rules for ``problem`` (empty when valid).

    Each partition must put every worker in exactly one group; names must be
    workers of the problem. Messages name the field, e.g.
    ``partitions[2].groups[0].members[1]: unknown worker 'x'``.
    """
    known = problem.worker_index
    violations: list[str] = []
    for p, partition in enumerate(plan.partitions):
        seen: dict[str, int] = {}
        for g, group in enumerate(partition.groups):
            for m, member in enumerate(group.members):
                where = f"partitions[{p}].groups[{g}].members[{m}]"
                if member not in known:
                    violations.append(f"{where}: unknown worker {member!r}")
                elif member in seen:
                    violations.append(
                        f"{where}: worker {member!r} is already in group {seen[member]}"
                    )
                else:
                    seen[member] = g
        missing = [w.name for w in problem.workers if w.name not in seen]
        if missing:
            shown = ", ".join(repr(name) for name in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            violations.append(f"partitions[{p}]: workers {shown}{more} are in no group")
    return violations
