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
* Samples. A micro-batch holds ``samples_per_microbatch`` (N) whole samples. A
  replicated stage splits every micro-batch over its replicas in whole samples:
  replica ``g`` gets ``n_g >= 1`` samples, ``sum n_g = N`` (the plan's
  ``samples_of_replica``, or when it is None the rule of :func:`split_samples`:
  proportional to speed, largest remainder). Its share is ``share_g = n_g / N``.
  Files without ``samples_per_microbatch`` (written before it existed) keep the
  old continuous reading ``share_g = speed_g / sum(speed of the stage's GPUs)``.
* Compute. A layer's profiled seconds ``t`` (forward or backward, one whole
  micro-batch, speed 1.0) hold a fixed part ``o = min(launch_overhead_s, t)``
  (kernel launches, paid whatever the share) and a part that scales with the
  samples. Replica ``g`` of stage ``s`` runs a forward task in
  ``sum over the stage's layers of (o + share_g * (t - o)) / speed_g`` seconds
  (likewise backward); with ``launch_overhead_s = 0`` this is
  ``share_g * forward_s / speed_g``.
* Transfers: for every ordered stage pair ``(s, t)``, ``s < t``, the bytes sent per
  micro-batch are the ``activation_bytes`` of every layer of ``s`` with at least one
  consumer in ``t`` (each producer counted once per destination stage). The
  backward pass sends the same number of bytes from ``t`` back to ``s``
  (gradients). With replicas, the sender replica holding samples ``[a, b)`` of the
  micro-batch sends to the receiver replica holding ``[c, d)`` the fraction
  ``|[a,b) ∩ [c,d)| / N`` of the bytes (samples are laid out in the order of
  ``gpus_of_stage``). Same-GPU transfers cost nothing.
* Network. The cluster's network (:class:`distplan.models.network.Network`; the
  legacy GPU-matrix form is read as one private directed link per nonzero entry,
  GPUs relaying for each other) routes every transfer with
  :func:`distplan.models.network.route`. A transfer of ``b`` bytes takes
  ``latency + b / bottleneck`` of its route and *holds every resource of its
  route* (each directed link, each capacitated forwarding node) for that whole
  time; transfers are served first-come first-served by the time their data is
  ready. Sharing rule: FCFS hold, not max-min fluid sharing. Why: NCCL and the
  NIC send queue move a tensor as one large message, so a second tensor to the
  same NIC waits behind the first (hold is what a send queue does); both rules
  give the same total time for transfers that share one bottleneck (two equal
  transfers through one NIC end at 2T either way), and hold keeps the replay an
  exact event simulation with no rate recomputation. It is pessimistic only for
  multi-hop routes whose other links could have carried a second flow meanwhile.
* Task order: every replica of stage ``s`` runs the tasks ``order_of_stage[s]``
  (each ``(microbatch, "F" | "B")`` exactly once) in that order, each as soon as
  the GPU is free and its inputs have arrived. ``F`` of micro-batch ``m`` at stage
  ``t`` needs the activations of ``m`` from every earlier stage that feeds ``t``;
  ``B`` of ``m`` at ``s`` needs ``F`` of ``m`` at ``s`` and the gradients of ``m``
  from every later stage that ``s`` feeds.
* All-reduce: once every replica of a stage with ``R > 1`` replicas has finished
  all its tasks, its ``P = parameter_bytes_of_stage`` gradient bytes are
  all-reduced with the cheaper (on the idle network) of two algorithms, as
  NCCL's tuner picks between its algorithms:

  - *ring*: replicas ordered server by server (servers in order of first
    appearance in ``gpus_of_stage``, replicas of one server in plan order, so a
    ring crosses each server boundary once, as NCCL builds its rings);
    ``2 (R - 1)`` steps, in each every replica sends ``P / R`` to the next;
  - *two-level* (only when the replicas span several servers and one server
    holds more than one): inside every server with ``n > 1`` replicas a ring
    reduce-scatter (``n - 1`` steps of ``P / n``) and a gather of the shards to
    the server's first replica, its *leader* (one step); a ring all-reduce among
    the leaders (``2 (m - 1)`` steps of ``P / m`` for ``m`` servers); a scatter
    from every leader (one step of ``P / n`` to each member) and a ring
    all-gather (``n - 1`` steps of ``P / n``).

  Steps are bulk synchronous: a step starts when the previous one has ended;
  its transfers queue on the network like any other. The estimate that picks
  the algorithm charges each step the larger of its slowest transfer alone and,
  for every resource, the bytes the step puts on it over its capacity; ties go
  to the ring.
* Memory per GPU of stage ``s``: ``(1 + optimizer_state_factor) *
  parameter_bytes_of_stage`` (weights, plus optimizer state and gradients) plus
  ``share_g * sum(activation_bytes of the stage's layers)`` for every micro-batch
  whose forward has run on the stage and whose backward has not (peak over the
  task order). It must not exceed the GPU's ``memory_bytes``.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator

from .base import PlanBase, ProblemBase, StrictModel
from .graph import DNNLayer, FiniteNonNegative, LayerGraph
from .network import Network, NetworkLink, NetworkNode, Route, route

__all__ = [
    "ALL_SCHEDULES",
    "DEFAULT_LAUNCH_OVERHEAD_S",
    "GPU",
    "Cluster",
    "PipelineLayer",
    "PipelinePlan",
    "PipelineProblem",
    "split_samples",
]

Schedule = Literal["gpipe", "1f1b", "list"]
Phase = Literal["F", "B"]
ALL_SCHEDULES: tuple[Schedule, ...] = ("gpipe", "1f1b", "list")

#: Most GPUs a cluster may have, micro-batches an iteration, samples a micro-batch.
MAX_GPUS = 4096
MAX_MICROBATCHES = 100_000
MAX_SAMPLES = 1_000_000

#: Fixed seconds per layer and task the importer assumes (5 µs): the order of one
#: CUDA kernel launch, which Volkov and Demmel ("Benchmarking GPUs to tune dense
#: linear algebra", SC 2008) measured at a few microseconds; a layer launches at
#: least one kernel per pass. The model's own default is 0 (files written before
#: the field existed keep their meaning).
DEFAULT_LAUNCH_OVERHEAD_S = 5e-6

#: A finite positive number.
FinitePositive = Annotated[float, Field(gt=0, allow_inf_nan=False)]

#: The layer record of a pipeline problem (the shared DNN layer).
PipelineLayer = DNNLayer


class GPU(StrictModel):
    """One accelerator.

    ``node`` names its compute node in the cluster's ``network`` (default: the
    GPU's own name); ``server`` the host it sits in (GPUs of one server share
    its NICs; used by the two-level all-reduce and the physical bound). A GPU
    without a server is a server of its own.
    """

    name: str = Field(min_length=1, max_length=200)
    memory_bytes: FinitePositive = Field(description="device memory in bytes")
    speed: FinitePositive = Field(
        default=1.0, description="relative speed; layer times are divided by it"
    )
    node: str | None = Field(default=None, description="its compute node in the network form")
    server: str | None = Field(default=None, description="the host it sits in")


def _matrix_network(
    gpus: list[GPU], bandwidth: list[list[float]], latency: list[list[float]] | None
) -> Network:
    """The legacy matrix form read literally: a private directed link per nonzero pair, GPUs relay."""
    nodes = [NetworkNode(name=g.name, role="compute", forwards=True) for g in gpus]
    links = [
        NetworkLink(
            source=gpus[i].name,
            target=gpus[j].name,
            bandwidth_bytes_per_s=bandwidth[i][j],
            latency_s=0.0 if latency is None else latency[i][j],
            duplex=False,
        )
        for i in range(len(gpus))
        for j in range(len(gpus))
        if i != j and bandwidth[i][j] > 0
    ]
    return Network(nodes=nodes, links=links)


class Cluster(StrictModel):
    """GPUs and the network joining them, in one of two forms.

    *Network form*: ``network`` (compute nodes, NICs, switches, links; see
    :mod:`distplan.models.network`), every GPU naming its compute node.
    *Matrix form* (legacy, still read): ``bandwidth_bytes_per_s[i][j]`` is a
    private directed link from GPU ``i`` to ``j`` in bytes/s (0 = none) that no
    other pair shares, ``latency_s[i][j]`` its latency in seconds; GPUs relay
    traffic for each other. :attr:`fabric` is the network either way.
    """

    gpus: list[GPU] = Field(min_length=1, max_length=MAX_GPUS)
    network: Network | None = None
    bandwidth_bytes_per_s: list[list[FiniteNonNegative]] | None = None
    latency_s: list[list[FiniteNonNegative]] | None = None

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        n = len(self.gpus)
        names = [g.name for g in self.gpus]
        for k, name in enumerate(names):
            if name in names[:k]:
                raise ValueError(f"gpus[{k}].name: duplicate GPU name {name!r}")
        if (self.network is None) == (self.bandwidth_bytes_per_s is None):
            raise ValueError(
                "cluster: give exactly one of network (network form) and "
                "bandwidth_bytes_per_s (matrix form)"
            )
        if self.network is None:
            for field, matrix in (
                ("bandwidth_bytes_per_s", self.bandwidth_bytes_per_s),
                ("latency_s", self.latency_s),
            ):
                if matrix is not None and (
                    len(matrix) != n or any(len(row) != n for row in matrix)
                ):
                    raise ValueError(
                        f"{field} must be a {n}x{n} matrix (one row and column per GPU)"
                    )
        else:
            if self.latency_s is not None:
                raise ValueError(
                    "latency_s: only with bandwidth_bytes_per_s; put latencies on network links"
                )
            compute = set(self.network.compute_nodes)
            for k, node in enumerate(self.node_of_gpu):
                if node not in compute:
                    raise ValueError(
                        f"gpus[{k}].node: {node!r} is not a compute node of the network"
                    )
                if node in self.node_of_gpu[:k]:
                    raise ValueError(f"gpus[{k}].node: {node!r} already hosts another GPU")
        cut = [j for j in range(1, n) if self.route(0, j) is None or self.route(j, 0) is None]
        if cut:
            field = "network" if self.network is not None else "bandwidth_bytes_per_s"
            raise ValueError(
                f"{field}: GPUs {cut} are not connected to GPU 0 over links with bandwidth > 0 both ways"
            )
        return self

    @cached_property
    def node_of_gpu(self) -> list[str]:
        """Network node of every GPU."""
        return [g.node if g.node is not None else g.name for g in self.gpus]

    @cached_property
    def server_of_gpu(self) -> list[str]:
        """Server of every GPU (its own name when it names none)."""
        return [g.server if g.server is not None else g.name for g in self.gpus]

    @cached_property
    def fabric(self) -> Network:
        """The network: given, or built from the matrix form (private links, relaying GPUs)."""
        if self.network is not None:
            return self.network
        assert self.bandwidth_bytes_per_s is not None
        return _matrix_network(self.gpus, self.bandwidth_bytes_per_s, self.latency_s)

    def route(self, src: int, dst: int) -> Route | None:
        """The route from GPU ``src`` to GPU ``dst`` (:func:`distplan.models.network.route`)."""
        return route(self.fabric, self.node_of_gpu[src], self.node_of_gpu[dst])


class PipelineProblem(LayerGraph, ProblemBase):
    """Plan one synchronous pipeline-parallel training iteration.

    ``layers`` with ``edges`` (``[producer, consumer]`` layer indices) form a DAG
    (:class:`distplan.models.graph.LayerGraph`). The objective is the iteration
    time in seconds (minimise).
    """

    kind: Literal["pipeline"] = "pipeline"
    cluster: Cluster
    microbatches: PositiveInt = Field(
        le=MAX_MICROBATCHES, description="micro-batches K per iteration"
    )
    samples_per_microbatch: PositiveInt | None = Field(
        default=None,
        le=MAX_SAMPLES,
        description="whole samples N per micro-batch; None = continuous shares (files before N existed)",
    )
    launch_overhead_s: FiniteNonNegative = Field(
        default=0.0,
        description="fixed seconds per layer and task, paid whatever the share (see module docs)",
    )
    optimizer_state_factor: FiniteNonNegative = Field(
        default=4.0,
        description="bytes of optimizer state and gradients per parameter byte (4 for Adam fp32)",
    )
    allow_replication: bool = True
    schedules: list[Schedule] = Field(default_factory=lambda: list(ALL_SCHEDULES), min_length=1)
    notes: str = ""

    @property
    def num_gpus(self) -> int:
        return len(self.cluster.gpus)


def split_samples(samples: int, speeds: list[float]) -> list[int]:
    """The default whole-sample split of a micro-batch over a stage's replicas.

    Largest remainder (Hamilton) on the speed-proportional quotas
    ``samples * speed_g / sum(speed)``, computed exactly; leftover samples go to
    the largest remainders, ties to the earlier replica. A replica may get 0
    samples when ``samples`` is small (the evaluator reports it).

    Examples
    --------
    >>> split_samples(5, [1.0, 1.0, 0.5])
    [2, 2, 1]
    """
    exact = [Fraction(s) for s in speeds]
    total = sum(exact)
    quotas = [Fraction(samples) * s / total for s in exact]
    whole = [int(q) for q in quotas]
    left = samples - sum(whole)
    by_remainder = sorted(range(len(speeds)), key=lambda g: (-(quotas[g] - whole[g]), g))
    for g in by_remainder[:left]:
        whole[g] += 1
    return whole


class PipelinePlan(PlanBase):
    """A pipeline plan: partition, placement, sample split and per-stage task order.

    ``stage_of_layer[l]`` is the stage of layer ``l``; ``gpus_of_stage[s]`` the GPU
    indices running stage ``s`` (replicas); ``samples_of_replica[s][r]`` the
    whole samples of every micro-batch that replica ``r`` of stage ``s`` gets
    (None: :func:`split_samples`; ignored when the problem has no
    ``samples_per_microbatch``); ``order_of_stage[s]`` the ``(microbatch,
    phase)`` tasks every replica of ``s`` runs, in order; ``schedule`` names the
    family the order came from.
    """

    kind: Literal["pipeline"] = "pipeline"
    stage_of_layer: list[int]
    gpus_of_stage: list[list[int]]
    samples_of_replica: list[list[int]] | None = None
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
        lines = [
            f"schedule {self.schedule}, {self.num_stages} stages, {problem.microbatches} micro-batches"
        ]
        for stage, (layers, gpus) in enumerate(
            zip(layers_of_stage, self.gpus_of_stage, strict=True)
        ):
            names = ", ".join(
                problem.cluster.gpus[g].name for g in gpus if 0 <= g < problem.num_gpus
            )
            first = problem.layers[layers[0]].name if layers else "-"
            last = problem.layers[layers[-1]].name if layers else "-"
            lines.append(
                f"stage {stage}: {len(layers)} layers ({first} .. {last}) on GPUs [{names}]"
            )
        return lines
