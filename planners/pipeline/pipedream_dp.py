"""PipeDream's partitioning optimizer as a baseline (``pipedream_dp``).

A clean-room reconstruction of the optimizer of Narayanan et al., "PipeDream:
Generalized Pipeline Parallelism for DNN Training" (SOSP 2019), Sec. 3.1, as its
public implementation runs it (``optimizer/optimizer_graph_hierarchical.py`` of
msr-fiddle/pipedream, read for the algorithm; no code copied) with its default
flags: one level of flat topology, memory constraint off, no activation
compression, every worker used. The graph side (clean-up, antichain DAG, branch
compression) lives in :mod:`.pipedream_graph`.

The dynamic programme (Sec. 3.1)
--------------------------------
``A(j, m)`` is the smallest slowest-stage time, in seconds per minibatch, of a
pipeline holding the down-set of state ``j`` on ``m`` workers: either one stage
replicated ``m`` times, time ``(T + 4 (m-1) P / (B m)) / m``, or the best
pipeline on the down-set of a predecessor state ``k`` of ``j`` (in the antichain
DAG) on ``m - m'`` workers followed by one stage holding the nodes in between
replicated ``m'`` times, time ``max(A(k, m - m'), (T_kj + 4 (m'-1) P_kj / (B m')) / m')``.
``T`` is forward plus backward seconds of a whole minibatch, ``P`` parameter
bytes, ``B`` the bandwidth; ``4 (m-1) P / (B m)`` is the data-parallel weight
synchronisation. With activation compression off (the default) activation
transfers between stages do not enter the objective, as in the reference.
``A(last state, N)`` is what the reference prints as "Time per stage in
pipeline". Ties keep the first candidate in (state position, replica count)
order; the reference's order there is Python set order, not reproducible, so
split positions can differ between equally good plans while the time cannot.

Reconstructions and choices
---------------------------
* Units. Our problems carry per-micro-batch seconds and activation bytes; the
  optimizer works on the profiled whole minibatch, rebuilt as
  ``per-micro-batch x K`` (the inverse of the PipeDream importer), so on an
  imported profile its figures equal PipeDream's own. Parameter bytes are used
  as they are.
* Cluster. PipeDream assumes identical workers (speed-1.0 times here). On a
  cluster of several servers with equal GPU counts (``hierarchy="servers"``,
  the default) it runs as its authors ran it on multi-server clusters, in its
  hierarchical mode (:mod:`.pipedream_levels`): level 1 inside a server with
  the slowest route bandwidth between two GPUs of one server, level 2 across
  servers with the slowest route bandwidth between GPUs of different servers
  (on a network-form cluster that is the server's NIC). A level-2 stage
  replicated on ``R`` servers becomes, for each of its level-1 stages, one
  stage whose replicas are that level-1 stage's GPUs in each of the ``R``
  servers. On one server, or with ``hierarchy="flat"`` (the old behaviour), it
  runs flat with ``N`` = all GPUs and one bandwidth: by default the smallest
  route bandwidth between any two GPUs (option ``bandwidth``: ``"min"``,
  ``"max"`` or bytes/s).
* Large state spaces. The antichain DAG is exponential in the number of
  parallel branches (more than 10^5 states for Inception-v3 and for NASNet-A
  Mobile, even after branch compression for the latter); the reference's
  README prescribes compressing branches first for such networks.
  We build the DAG up to ``max_states`` states (default 3000, about where the
  reference's ``S x S x N`` tables stop fitting in memory); beyond that we
  compress branches (:func:`~.pipedream_graph.compress_branches`) and retry,
  and only if that is still too large fall back to the prefixes of two
  topological orders (:func:`~.pipedream_graph.prefix_states`; on NASNet-A
  Mobile this lands within 0.5 % of the ``total work / N`` lower bound of the
  reference's optimum). ``metrics["pipedream_state_space"]`` says which was used.
* From PipeDream's stages to our plan: stage ``s`` holds the layers of the
  down-set of its last state not held by earlier stages; dropped ``Input``
  layers go to stage 0 (as the reference does); dropped ``__getitem__`` sinks
  and layers no state covers go to the latest stage of their producers (stage
  0 if none), so no edge runs backward. Stages get consecutive GPU indices in
  order, ``replicas`` each; the DP runs with ``N`` = the cluster's GPU count,
  so the replicas of all stages never exceed the cluster. The partition is then
  replayed under the common schedule menu (GPipe, 1F1B, list; option
  ``schedules="native"``: 1F1B and GPipe only) and the fastest
  memory-feasible schedule is returned.
* Metrics: ``pipedream_bottleneck_s`` (the optimized time above),
  ``pipedream_splits`` (``[start, end, replicas]`` per stage, state positions),
  ``pipedream_num_states``, ``pipedream_state_space``,
  ``pipedream_bandwidth_bytes_per_s``, ``pipedream_single_stage_s`` and
  ``pipedream_uncovered_layers``.
* Whole samples. PipeDream replicas take whole minibatches in turn; here a
  replicated stage splits each micro-batch, so a stage never gets more
  replicas than the micro-batch has samples (``samples_per_microbatch``).
* With ``allow_replication`` false the optimizer runs in the reference's
  ``straight_pipeline`` mode. When no configuration uses exactly ``N`` workers
  (fewer states than GPUs, or the memory constraint) it is rerun with
  ``use_fewer_machines``; unused GPUs stay idle.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ...models.pipeline import PipelineProblem, Schedule
from ...models.result import Role, SolveStatus
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .costs import ClusterView, interconnect
from .finalize import SCHEDULE_OPTION, simulate_candidates, to_output
from .list_schedule import list_schedule
from .pipedream_graph import (
    CleanedGraph,
    StateSpace,
    antichain_states,
    cleaned_graph,
    compress_branches,
    graph_of,
    mask_indices,
    prefix_states,
)
from .pipedream_levels import hierarchical_partition, replica_cap

__all__ = [
    "MAX_STATES",
    "PipeDreamPartition",
    "optimize_partition",
    "pipedream_dp",
    "pipedream_states",
]

logger = logging.getLogger(__name__)

#: Antichain DAGs larger than this are rebuilt on the branch-compressed graph (option ``max_states``).
MAX_STATES = 3000

#: Hierarchical mode's level 1 repeats the DP from every start state: about ``S^3 n^2`` work for ``S``
#: states and ``n`` GPUs per server. Its state limit is ``(HIERARCHICAL_WORK / n^2)^(1/3)`` (246 states
#: for 4 GPUs per server, 155 for 8: a few seconds on one core).
HIERARCHICAL_WORK = 2.4e8


# --------------------------------------------------------------------------- dynamic programme


@dataclass(frozen=True)
class PipeDreamPartition:
    """The optimizer's answer.

    Attributes
    ----------
    bottleneck_s:
        Slowest stage's time per minibatch, seconds (PipeDream's "Time per
        stage in pipeline"); ``inf`` when no configuration exists.
    stages:
        ``(start, end, replicas)``: a stage holding state positions
        ``start .. end-1`` replicated ``replicas`` times, in pipeline order.
    """

    bottleneck_s: float
    stages: list[tuple[int, int, int]]

    @property
    def workers_used(self) -> int:
        return sum(r for _, _, r in self.stages)


def optimize_partition(
    compute_s: np.ndarray,
    activation_bytes: np.ndarray,
    parameter_bytes: np.ndarray,
    output_activation_bytes: np.ndarray,
    predecessors: list[int],
    num_workers: int,
    bandwidth_bytes_per_s: float,
    *,
    straight_pipeline: bool = False,
    max_replicas: int | None = None,
    use_fewer_machines: bool = False,
    memory_bytes: float | None = None,
    activation_compression_ratio: float | None = None,
) -> PipeDreamPartition:
    """PipeDream's DP over (state, workers), Sec. 3.1; see the module docstring.

    Parameters
    ----------
    compute_s, activation_bytes, parameter_bytes
        Per state (topological position), the down-set's forward plus backward
        seconds per minibatch, activation bytes and parameter bytes.
    output_activation_bytes
        Per state, the activation bytes of its members (used only with
        activation compression, as in the reference).
    predecessors
        Per state, a bitmask over positions of its transitive predecessors.
    num_workers
        Workers ``N``; a plan uses exactly ``N`` unless ``use_fewer_machines``.
    bandwidth_bytes_per_s
        The one flat bandwidth ``B``.
    straight_pipeline
        No replication.
    use_fewer_machines
        A pipeline on ``m`` workers may leave some of them idle.
    memory_bytes
        Memory per worker; None switches the memory constraint off (default).
    max_replicas
        Most replicas of one stage (None: no cap).
    activation_compression_ratio
        When given, a stage's input and output transfers ``2 a / (B m')``
        divided by it also bound its time.

    Returns
    -------
    PipeDreamPartition
    """
    num_states = len(compute_s)
    if num_states == 0:
        return PipeDreamPartition(math.inf, [])
    n = num_workers
    inf = math.inf
    bandwidth = bandwidth_bytes_per_s
    time = np.full((num_states, n), inf)
    split_state = np.full((num_states, n), -1, dtype=np.int64)
    split_workers = np.full((num_states, n), -1, dtype=np.int64)
    replicas = np.zeros((num_states, n), dtype=np.int64)

    # One stage holding the whole down-set, replicated m + 1 times.
    for m in range(replica_cap(n, straight_pipeline, max_replicas)):
        r = m + 1
        sync_s = (4 * m * parameter_bytes) / (bandwidth * r)
        stage_s = (compute_s + sync_s) / r
        if memory_bytes is not None:
            stashed = math.ceil((n - r) / r) * (activation_bytes + parameter_bytes)
            stage_s = np.where(stashed > memory_bytes, inf, stage_s)
        time[:, m] = stage_s
        replicas[:, m] = r

    if n > 1:
        # last[r - 1]: replica counts r of the new last stage; total[m - 1]: workers m + 1.
        last_r = np.arange(1, min(replica_cap(n, straight_pipeline, max_replicas) + 1, max(n, 2)))
        total = np.arange(1, n)
        rest = total[:, None] - last_r[None, :]  # workers index left for the earlier stages
        valid = rest >= 0
        rest = np.where(valid, rest, 0)
        if memory_bytes is not None:
            stash_factor = np.ceil((n - (total[:, None] + 1)) / last_r[None, :])
    for j in range(1, num_states if n > 1 else 0):
        preds = mask_indices(predecessors[j], j)
        best = np.full(n - 1, inf)
        best_k = np.full(n - 1, -1, dtype=np.int64)
        best_r = np.zeros(n - 1, dtype=np.int64)
        if len(preds):
            work_s = (compute_s[j] - compute_s[preds])[:, None]
            params = (parameter_bytes[j] - parameter_bytes[preds])[:, None]
            last_s = (
                work_s + (4 * (last_r - 1) * params) / (bandwidth * last_r)
            ) / last_r  # (k, r)
            earlier_s = np.where(valid, time[preds][:, rest], inf)  # (k, m, r)
            last_3d = np.broadcast_to(last_s[:, None, :], earlier_s.shape)
            if memory_bytes is not None:
                stashed = (activation_bytes[j] - activation_bytes[preds])[:, None] + params
                too_big = stashed[:, None, :] * stash_factor[None, :, :] > memory_bytes
                last_3d = np.where(too_big, inf, last_3d)
            candidate = np.maximum(earlier_s, last_3d)
            if activation_compression_ratio is not None:
                into = (2.0 * output_activation_bytes[preds])[:, None] / (bandwidth * last_r)
                candidate = np.maximum(candidate, (into / activation_compression_ratio)[:, None, :])
                if j < num_states - 1:
                    out_of = (2.0 * output_activation_bytes[j]) / (bandwidth * last_r)
                    candidate = np.maximum(
                        candidate, (out_of / activation_compression_ratio)[None, None, :]
                    )
            # First minimum in (predecessor, replicas) order for every worker count.
            per_m = candidate.transpose(1, 0, 2).reshape(n - 1, -1)
            flat = np.argmin(per_m, axis=1)
            best = per_m[np.arange(n - 1), flat]
            best_k = preds[flat // len(last_r)]
            best_r = last_r[flat % len(last_r)]
        for m in range(1, n):
            chosen = (time[j, m], -1, -1, replicas[j, m])
            if use_fewer_machines and (chosen[0] == inf or time[j, m - 1] < chosen[0]):
                chosen = (
                    time[j, m - 1],
                    split_state[j, m - 1],
                    split_workers[j, m - 1],
                    replicas[j, m - 1],
                )
            if best[m - 1] < chosen[0]:
                chosen = (best[m - 1], best_k[m - 1], m - best_r[m - 1], best_r[m - 1])
            time[j, m], split_state[j, m], split_workers[j, m], replicas[j, m] = chosen

    j, m = num_states - 1, n - 1
    bottleneck = float(time[j, m])
    if bottleneck == inf:
        return PipeDreamPartition(inf, [])
    stages: list[tuple[int, int, int]] = []
    end = num_states
    while split_state[j, m] >= 0:
        k = int(split_state[j, m])
        stages.append((k + 1, end, int(replicas[j, m])))
        end = k + 1
        j, m = k, int(split_workers[j, m])
    stages.append((0, end, int(replicas[j, m])))
    stages.reverse()
    return PipeDreamPartition(bottleneck, stages)


# --------------------------------------------------------------------------- solver


def pipedream_states(
    problem: PipelineProblem, max_states: int = MAX_STATES, compress: bool | None = None
) -> tuple[CleanedGraph, StateSpace, str]:
    """The optimizer's graph and states for ``problem``, and which state space was used.

    ``compress`` None compresses branches only when the plain antichain DAG
    exceeds ``max_states``; True always; False never (prefixes instead).
    Returns ``(cleaned graph, states, label)`` with ``label`` one of
    ``"antichain"``, ``"antichain on compressed branches"``, ``"prefix"``,
    ``"prefix on compressed branches"``.
    """
    base = graph_of(problem)
    if compress is not True:
        cleaned = cleaned_graph(base)
        states = antichain_states(cleaned, max_states)
        if states is not None:
            return cleaned, states, "antichain"
        if compress is False:
            return cleaned, prefix_states(cleaned), "prefix"
    cleaned = cleaned_graph(compress_branches(base))
    states = antichain_states(cleaned, max_states)
    if states is not None:
        return cleaned, states, "antichain on compressed branches"
    return cleaned, prefix_states(cleaned), "prefix on compressed branches"


def _bandwidth(problem: PipelineProblem, choice: object) -> float:
    """The flat bandwidth (bytes/s) the optimizer uses: ``"min"``/``"max"`` widest-path, or a
    positive number (the option's declaration has checked which)."""
    if isinstance(choice, int | float) and not isinstance(choice, bool):
        return float(choice)
    n = problem.num_gpus
    if n == 1:
        return math.inf
    widest = interconnect(problem.cluster).bandwidth_bytes_per_s
    off_diagonal = widest[~np.eye(n, dtype=bool)]
    return float(off_diagonal.min() if choice == "min" else off_diagonal.max())


def server_levels(problem: PipelineProblem) -> tuple[list[list[int]], float, float] | None:
    """GPUs of every server and the intra/inter-server bandwidths, or None when the cluster is not hierarchical.

    Hierarchical means at least two servers, each of the same number (at least
    two) of GPUs with consecutive indices. A level's bandwidth is the slowest route
    bottleneck between two GPUs of one server (intra, ``inf`` for one GPU per
    server) or of different servers (inter), in bytes/s.
    """
    view = ClusterView(problem)
    servers = view.server_order(range(problem.num_gpus))
    sizes = {len(gpus) for gpus in servers}
    if (
        len(servers) < 2
        or sizes == {1}
        or len(sizes) != 1
        or [g for m in servers for g in m] != list(range(problem.num_gpus))
    ):
        return None
    width = view.net.bandwidth_bytes_per_s
    server = np.repeat(np.arange(len(servers)), len(servers[0]))
    same = server[:, None] == server[None, :]
    np.fill_diagonal(same, False)
    other = server[:, None] != server[None, :]
    intra = float(width[same].min()) if same.any() else math.inf
    return servers, intra, float(width[other].min())


def _hierarchical_groups(
    servers: list[list[int]], inside: list[list[tuple[int, int, int]]], top
) -> list[list[int]]:
    """GPU groups of the flattened two-level plan, in pipeline order."""
    groups: list[list[int]] = []
    first_server = 0
    for (_, _, replicas), stages in zip(top, inside, strict=True):
        offset = 0
        for _, _, r in stages:
            groups.append(
                [servers[first_server + q][offset + t] for q in range(replicas) for t in range(r)]
            )
            offset += r
        first_server += replicas
    return groups


def _stage_of_layer(
    problem: PipelineProblem,
    cleaned: CleanedGraph,
    states: StateSpace,
    partition: PipeDreamPartition,
) -> tuple[list[int], int]:
    """Our stage of every layer, and how many layers neither a state nor the clean-up accounts for."""
    graph = cleaned.graph
    stage: list[int | None] = [None] * len(problem.layers)
    for s, (_, end, _) in enumerate(partition.stages):
        for node in mask_indices(states.ideals[end - 1], graph.num_nodes):
            for layer in graph.layers[node]:
                if stage[layer] is None:
                    stage[layer] = s
    for node in cleaned.inputs:
        for layer in graph.layers[node]:
            stage[layer] = 0
    dropped = {layer for node in cleaned.dropped_sinks for layer in graph.layers[node]}
    uncovered = 0
    for layer in problem.topological_order:
        if stage[layer] is None:
            uncovered += layer not in dropped
            stage[layer] = max((stage[p] or 0 for p in problem.predecessors[layer]), default=0)
    return [s or 0 for s in stage], uncovered


@register_solver(
    "pipedream_dp",
    honours_time_limit=False,
    kind="pipeline",
    role=Role.BASELINE,
    description="PipeDream's optimizer (SOSP'19 Sec. 3.1): antichain DP with replication, hierarchical across servers",
    extra_options={
        "hierarchy": Option(
            "'servers' (default: PipeDream's two-level mode on multi-server clusters) or 'flat'",
            choices=("servers", "flat"),
        ),
        "bandwidth": Option(
            "flat mode: 'min' (default) or 'max' route bandwidth between GPUs, or bytes/s",
            types=("str", "float"),
            choices=("min", "max"),
            minimum=1e-9,
        ),
        "use_memory_constraint": Option(
            "PipeDream's memory check against the smallest GPU memory (default false)",
            types=("bool",),
        ),
        "straight_pipeline": Option(
            "no replication (default: not problem.allow_replication)", types=("bool",)
        ),
        "use_fewer_machines": Option(
            "allow plans on fewer GPUs (default false; used anyway when none fits all)",
            types=("bool",),
        ),
        "activation_compression_ratio": Option(
            "count stage input/output transfers divided by this (default off)",
            types=("float", "none"),
            minimum=1e-9,
        ),
        "max_states": Option(
            f"antichain DAG size beyond which branches are compressed (default {MAX_STATES})",
            types=("int",),
            minimum=1,
        ),
        "compress_branches": Option(
            "None (default: when max_states is exceeded), true (always) or false (never)",
            types=("bool", "none"),
        ),
        **SCHEDULE_OPTION,
    },
)
def pipedream_dp(problem: PipelineProblem, options: SolveOptions) -> SolverOutput:
    """PipeDream's partitioner, then replayed under the schedule menu."""
    bandwidth = _bandwidth(problem, options.option("bandwidth", "min"))
    # Option values arrive checked against the declarations above (solve()).
    use_memory = bool(options.option("use_memory_constraint", False))
    memory = min(g.memory_bytes for g in problem.cluster.gpus) if use_memory else None
    straight = bool(options.option("straight_pipeline", not problem.allow_replication))
    fewer = bool(options.option("use_fewer_machines", False))
    ratio = options.option("activation_compression_ratio", None)
    max_states = int(options.option("max_states", MAX_STATES))
    compress = options.option("compress_branches", None)
    hierarchy = options.option("hierarchy", "servers")
    native = options.option("schedules", "menu") == "native"
    schedules: list[Schedule] = ["1f1b", "gpipe"] if native else list(problem.schedules)
    levels = (
        server_levels(problem)
        if hierarchy == "servers" and not use_memory and ratio is None
        else None
    )

    if levels is not None:
        max_states = min(max_states, int((HIERARCHICAL_WORK / len(levels[0][0]) ** 2) ** (1 / 3)))
    cleaned, states, label = pipedream_states(
        problem, max_states, None if compress is None else bool(compress)
    )
    graph = cleaned.graph
    metrics: dict = {
        "pipedream_bandwidth_bytes_per_s": bandwidth,
        "pipedream_state_space": label,
        "pipedream_num_states": states.num_states,
    }
    if label != "antichain":
        logger.info(
            "pipedream_dp: %s: using the %s state space (%d states)",
            problem.name,
            label,
            states.num_states,
        )
    if states.num_states == 0:  # nothing but inputs and dropped sinks: one stage on one GPU
        metrics.update(pipedream_bottleneck_s=0.0, pipedream_splits=[])
        candidates = simulate_candidates(
            problem, [0] * len(problem.layers), [[0]], schedules, list_schedule
        )
        return to_output(candidates, metrics=metrics)

    membership = np.zeros((states.num_states, graph.num_nodes))
    for p, ideal in enumerate(states.ideals):
        membership[p, mask_indices(ideal, graph.num_nodes)] = 1.0
    outputs = np.array([graph.activation_bytes[list(m)].sum() for m in states.members])

    def run_flat(use_fewer: bool) -> PipeDreamPartition:
        return optimize_partition(
            membership @ graph.work_s,
            membership @ graph.activation_bytes,
            membership @ graph.parameter_bytes,
            outputs,
            states.predecessors,
            problem.num_gpus,
            bandwidth,
            straight_pipeline=straight,
            use_fewer_machines=use_fewer,
            max_replicas=problem.samples_per_microbatch,
            memory_bytes=memory,
            activation_compression_ratio=None if ratio is None else float(ratio),  # type: ignore[arg-type]
        )

    groups: list[list[int]] | None = None
    if levels is not None:
        servers, intra, inter = levels
        is_predecessor = np.zeros((states.num_states, states.num_states), dtype=bool)
        for a, mask in enumerate(states.predecessors):
            is_predecessor[a, mask_indices(mask, states.num_states)] = True
        metrics["pipedream_levels"] = [[len(servers[0]), intra], [len(servers), inter]]

    def run(use_fewer: bool) -> PipeDreamPartition:
        nonlocal groups
        if levels is None:
            return run_flat(use_fewer)
        bottleneck, inside, top = hierarchical_partition(
            membership @ graph.work_s,
            membership @ graph.parameter_bytes,
            is_predecessor,
            [(len(servers[0]), intra), (len(servers), inter)],
            straight_pipeline=straight,
            use_fewer_machines=use_fewer,
            max_replicas=problem.samples_per_microbatch,
        )
        flat_stages = [stage for stages in inside for stage in stages]
        groups = _hierarchical_groups(servers, inside, top)
        metrics["pipedream_level2_splits"] = [list(t) for t in top]
        return PipeDreamPartition(
            bottleneck, [(a, b, len(g)) for (a, b, _), g in zip(flat_stages, groups, strict=True)]
        )

    partition = run(fewer)
    if math.isinf(partition.bottleneck_s) and not fewer:
        partition = run(True)
        metrics["pipedream_used_fewer_machines"] = True
    if math.isinf(partition.bottleneck_s):
        metrics["reason"] = "PipeDream's optimizer found no configuration (memory constraint)"
        return SolverOutput(SolveStatus.NO_SOLUTION, metrics=metrics)

    stage_of_layer, uncovered = _stage_of_layer(problem, cleaned, states, partition)
    gpus_of_stage: list[list[int]] = []
    for _, _, r in partition.stages:
        first = sum(len(g) for g in gpus_of_stage)
        gpus_of_stage.append(list(range(first, first + r)))
    if groups is not None:
        gpus_of_stage = groups
    metrics.update(
        pipedream_bottleneck_s=partition.bottleneck_s,
        pipedream_splits=[[a, b, r] for a, b, r in partition.stages],
        pipedream_single_stage_s=float(membership[-1] @ graph.work_s),
        pipedream_uncovered_layers=uncovered,
    )
    candidates = simulate_candidates(
        problem, stage_of_layer, gpus_of_stage, schedules, list_schedule
    )
    return to_output(candidates, metrics=metrics)
