"""Synchronous pipeline-parallel training: the problem and its plan.

Reconstruction of the planning problem of Luo et al., "Efficient Pipeline Planning
for Expedited Distributed DNN Training" (INFOCOM 2022); the paper's full text is
not available to us, so the semantics below are ours and are the contract that
every pipeline solver and the independent simulator follow.

Semantics (the plan's meaning)
------------------------------
* One iteration processes ``microbatches`` (K) micro-batches forward and backward,
  then all replicas of each replicated stage all-reduce their gradients; the
  iteration ends when every GPU is done (synchronous barrier).
* Stages are numbered ``0..S-1``; every layer belongs to one stage and every edge
  ``(u, v)`` of the layer DAG satisfies ``stage_of_layer[u] <= stage_of_layer[v]``.
  Every stage is non-empty and runs on a non-empty set of GPUs; a GPU serves at
  most one stage.
* Replication is data parallel inside the stage: every micro-batch is split over
  the stage's replicas in proportion to their ``speed``; replica ``g`` of stage
  ``s`` therefore computes the forward of one micro-batch in
  ``share_g * sum(forward_s of the stage's layers) / speed_g`` seconds with
  ``share_g = speed_g / sum(speed of the stage's GPUs)`` (likewise backward).
* Transfers: for every ordered stage pair ``(s, t)``, ``s < t``, the bytes sent per
  micro-batch are the ``activation_bytes`` of every layer of ``s`` with at least one
  consumer in ``t`` (each producer counted once per destination stage). The
  backward pass sends the same number of bytes from ``t`` back to ``s``
  (gradients). With replicas, the sender replica with share interval
  ``[a, b)`` of the micro-batch sends to the receiver replica with interval
  ``[c, d)`` the fraction ``|[a,b) ∩ [c,d)|`` of the bytes (intervals are laid out
  in the order of ``gpus_of_stage``). Same-GPU transfers cost nothing.
* A transfer from GPU ``i`` to GPU ``j`` takes ``latency + bytes / bandwidth``
  where the route is the widest path (largest bottleneck bandwidth; ties: fewest
  hops, then the lexicographically smallest GPU sequence) in the graph of direct
  links (bandwidth > 0), ``bandwidth`` is that path's bottleneck and ``latency``
  the sum of the route's link latencies. Links are full duplex: each directed
  link carries one transfer at a time, and a transfer holds every directed link
  of its route for its whole duration; transfers are served first-come
  first-served (by the time their data is ready).
* Task order: every replica of stage ``s`` runs the tasks ``order_of_stage[s]``
  (each ``(microbatch, "F" | "B")`` exactly once) in that order, each as soon as
  the GPU is free and its inputs have arrived. ``F`` of micro-batch ``m`` at stage
  ``t`` needs the activations of ``m`` from every earlier stage that feeds ``t``;
  ``B`` of ``m`` at ``s`` needs ``F`` of ``m`` at ``s`` and the gradients of ``m``
  from every later stage that ``s`` feeds.
* All-reduce: once every replica of a stage with ``R > 1`` replicas has finished
  all its tasks, a ring all-reduce over the replicas (in the order of
  ``gpus_of_stage``) runs ``2 (R - 1)`` steps; in each step every replica sends
  ``parameter_bytes_of_stage / R`` to the next one around the ring, and the step
  lasts as long as the slowest of those transfers.
* Memory per GPU of stage ``s``: ``(1 + optimizer_state_factor) *
  parameter_bytes_of_stage`` (weights, plus optimizer state and gradients) plus
  ``share_g * sum(activation_bytes of the stage's layers)`` for every micro-batch
  whose forward has run on the stage and whose backward has not (peak over the
  task order). It must not exceed the GPU's ``memory_bytes``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from .base import PlanBase, ProblemBase, StrictModel
from .graph import topological_order

Schedule = Literal["gpipe", "1f1b", "list"]
Phase = Literal["F", "B"]
ALL_SCHEDULES: tuple[Schedule, ...] = ("gpipe", "1f1b", "list")


class PipelineLayer(StrictModel):
    """One layer (or merged block of layers) of the DNN, per micro-batch."""

    name: str = Field(min_length=1)
    forward_s: NonNegativeFloat = Field(description="forward seconds per micro-batch on a speed-1.0 GPU")
    backward_s: NonNegativeFloat = Field(description="backward seconds per micro-batch on a speed-1.0 GPU")
    activation_bytes: NonNegativeFloat = Field(description="output activation bytes per micro-batch")
    parameter_bytes: NonNegativeFloat = Field(description="parameter bytes (weights)")


class GPU(StrictModel):
    """One accelerator."""

    name: str = Field(min_length=1)
    memory_bytes: PositiveFloat = Field(description="device memory in bytes")
    speed: PositiveFloat = Field(1.0, description="relative speed; layer times are divided by it")


class Cluster(StrictModel):
    """GPUs and their interconnect.

    ``bandwidth_bytes_per_s[i][j]`` is the direct link from GPU ``i`` to ``j`` in
    bytes/s (0 = no direct link: traffic routes over the widest path);
    ``latency_s[i][j]`` its latency in seconds (default 0).
    """

    gpus: list[GPU] = Field(min_length=1)
    bandwidth_bytes_per_s: list[list[NonNegativeFloat]]
    latency_s: list[list[NonNegativeFloat]] | None = None

    @model_validator(mode="after")
    def _check_matrices(self) -> Cluster:
        n = len(self.gpus)
        for field, matrix in (("bandwidth_bytes_per_s", self.bandwidth_bytes_per_s), ("latency_s", self.latency_s)):
            if matrix is None:
                continue
            if len(matrix) != n or any(len(row) != n for row in matrix):
                raise ValueError(f"{field} must be a {n}x{n} matrix (one row and column per GPU)")
        names = [g.name for g in self.gpus]
        if len(set(names)) != n:
            raise ValueError("gpus: GPU names must be unique")
        # Every pair must be reachable over direct links.
        reached, frontier = {0}, [0]
        while frontier:
            i = frontier.pop()
            for j in range(n):
                if j not in reached and (self.bandwidth_bytes_per_s[i][j] > 0 and self.bandwidth_bytes_per_s[j][i] > 0):
                    reached.add(j)
                    frontier.append(j)
        if len(reached) != n:
            cut = sorted(set(range(n)) - reached)
            raise ValueError(
                f"bandwidth_bytes_per_s: GPUs {cut} are not connected to GPU 0 over links with bandwidth > 0 both ways"
            )
        return self


class PipelineProblem(ProblemBase):
    """Plan one synchronous pipeline-parallel training iteration.

    ``layers`` with ``edges`` (``[producer, consumer]`` layer indices) form a DAG.
    The objective is the iteration time in seconds (minimise).
    """

    kind: Literal["pipeline"] = "pipeline"
    name: str = Field(min_length=1)
    layers: list[PipelineLayer] = Field(min_length=1)
    edges: list[tuple[int, int]] = Field(default_factory=list)
    cluster: Cluster
    microbatches: PositiveInt = Field(description="micro-batches K per iteration")
    optimizer_state_factor: NonNegativeFloat = Field(
        4.0, description="bytes of optimizer state and gradients per parameter byte (4 for Adam fp32)"
    )
    allow_replication: bool = True
    schedules: list[Schedule] = Field(default_factory=lambda: list(ALL_SCHEDULES), min_length=1)
    notes: str = ""

    @model_validator(mode="after")
    def _check_graph(self) -> PipelineProblem:
        n = len(self.layers)
        seen: set[tuple[int, int]] = set()
        for k, (u, v) in enumerate(self.edges):
            for end in (u, v):
                if not 0 <= end < n:
                    raise ValueError(f"edges[{k}]: layer index {end} is out of range (there are {n} layers)")
            if u == v:
                raise ValueError(f"edges[{k}]: self-loop on layer {u}")
            if (u, v) in seen:
                raise ValueError(f"edges[{k}]: duplicate edge {u} -> {v}")
            seen.add((u, v))
        if len(self.topological_order) != n:
            raise ValueError("edges: the layer graph has a cycle; it must be a DAG")
        return self

    @cached_property
    def topological_order(self) -> list[int]:
        """Layer indices in a deterministic topological order (Kahn, smallest index first); empty on a cycle."""
        return topological_order(range(len(self.layers)), self.edges) or []

    @cached_property
    def successors(self) -> list[list[int]]:
        """Consumers of every layer, sorted."""
        out: list[list[int]] = [[] for _ in self.layers]
        for u, v in self.edges:
            out[u].append(v)
        return [sorted(s) for s in out]

    @cached_property
    def predecessors(self) -> list[list[int]]:
        """Producers of every layer, sorted."""
        out: list[list[int]] = [[] for _ in self.layers]
        for u, v in self.edges:
            out[v].append(u)
        return [sorted(p) for p in out]

    @property
    def num_gpus(self) -> int:
        return len(self.cluster.gpus)


class PipelinePlan(PlanBase):
    """A pipeline plan: partition, placement and per-stage task order.

    ``stage_of_layer[l]`` is the stage of layer ``l``; ``gpus_of_stage[s]`` the GPU
    indices running stage ``s`` (replicas); ``order_of_stage[s]`` the
    ``(microbatch, phase)`` tasks every replica of ``s`` runs, in order;
    ``schedule`` names the family the order came from.
    """

    kind: Literal["pipeline"] = "pipeline"
    stage_of_layer: list[int]
    gpus_of_stage: list[list[int]]
    order_of_stage: list[list[tuple[int, Phase]]]
    schedule: Schedule

    @property
    def num_stages(self) -> int:
        return len(self.gpus_of_stage)

    def describe(self, problem: PipelineProblem) -> list[str]:
        """Readable lines: each stage's layers, GPUs and the schedule."""
        layers_of_stage: list[list[int]] = [[] for _ in self.gpus_of_stage]
        for layer, stage in enumerate(self.stage_of_layer):
            if 0 <= stage < len(layers_of_stage):
                layers_of_stage[stage].append(layer)
        lines = [f"schedule {self.schedule}, {self.num_stages} stages, {problem.microbatches} micro-batches"]
        for stage, (layers, gpus) in enumerate(zip(layers_of_stage, self.gpus_of_stage, strict=True)):
            names = ", ".join(problem.cluster.gpus[g].name for g in gpus if 0 <= g < problem.num_gpus)
            first = problem.layers[layers[0]].name if layers else "-"
            last = problem.layers[layers[-1]].name if layers else "-"
            lines.append(f"stage {stage}: {len(layers)} layers ({first} .. {last}) on GPUs [{names}]")
        return lines
