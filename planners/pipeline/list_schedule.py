"""The ``list`` schedule: per-stage task orders from a priority list scheduler.

A list scheduler decides each stage's next task at run time: whenever a replica
of a stage is free and has run every task decided so far, it picks among the
tasks whose inputs have arrived, by a priority rule, and appends the choice to
the stage's order (every replica of the stage then runs that order). The run is
a lightweight event model of one iteration that follows the semantics of
:mod:`distplan.models.pipeline` (whole-sample shares, launch overhead,
interval-overlap transfers between replicas, routes of the shared network whose
resources carry one transfer at a time in ready order, the cheaper of ring and
two-level all-reduce by :mod:`.costs`); it is the planners' own model, and the
independent simulator re-scores every order it produces.

Rules tried (the best by the event model is returned):

* backward first: run a ready ``B`` (oldest micro-batch first), else the next
  ``F`` if fewer micro-batches than the stage's cap are in flight; with the cap
  set by memory, and with the cap ``min(memory cap, S - s)`` of 1F1B;
* forward first: the next ``F`` while the cap allows, else a ready ``B``
  (GPipe's fill-drain, bounded by memory).

Micro-batches enter every stage in index order. Because each order is read off
one feasible execution, the orders can never deadlock under any task or
transfer durations, and every stage's peak in-flight count respects its cap, so
the memory the order needs is known before the simulator replays it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from fractions import Fraction

from ...models.pipeline import Phase, PipelineProblem
from .costs import ClusterView, replica_shares
from .schedules import Task

__all__ = ["EventModel", "Policy", "StageFacts", "list_schedule", "memory_caps", "stage_facts"]

# Event kinds; at equal times they are handled in this order, so a decision
# sees every arrival of its instant.
_DONE, _ARRIVE, _READY, _WAKE = 0, 1, 2, 3


@dataclass(frozen=True)
class StageFacts:
    """Per-stage sums of a partition (speed-1.0 seconds and bytes, per micro-batch).

    ``pair_bytes[(s, t)]`` holds the activation bytes stage ``s`` sends to a
    later stage ``t`` per micro-batch (each producer counted once per
    destination stage); a pair with edges but no bytes maps to ``0.0``.
    """

    forward_s: tuple[float, ...]
    backward_s: tuple[float, ...]
    activation_bytes: tuple[float, ...]
    parameter_bytes: tuple[float, ...]
    pair_bytes: dict[tuple[int, int], float]
    fixed_forward_s: tuple[float, ...] = ()
    fixed_backward_s: tuple[float, ...] = ()


def stage_facts(problem: PipelineProblem, stage_of_layer: list[int], num_stages: int) -> StageFacts:
    """Sum the layers of every stage and the bytes every stage pair exchanges.

    Parameters
    ----------
    problem
        The pipeline problem.
    stage_of_layer
        Stage index of every layer (``0..num_stages-1``).
    num_stages
        Number of stages S.

    Returns
    -------
    StageFacts
    """
    forward, backward = [0.0] * num_stages, [0.0] * num_stages
    fixed_forward, fixed_backward = [0.0] * num_stages, [0.0] * num_stages
    overhead = problem.launch_overhead_s
    activation, parameter = [0.0] * num_stages, [0.0] * num_stages
    pair_bytes: dict[tuple[int, int], float] = {}
    successors = problem.successors
    for u, layer in enumerate(problem.layers):
        s = stage_of_layer[u]
        forward[s] += layer.forward_s
        backward[s] += layer.backward_s
        fixed_forward[s] += min(overhead, layer.forward_s)
        fixed_backward[s] += min(overhead, layer.backward_s)
        activation[s] += layer.activation_bytes
        parameter[s] += layer.parameter_bytes
        fed: set[int] = set()
        for v in successors[u]:
            t = stage_of_layer[v]
            if t > s and t not in fed:
                fed.add(t)
                pair_bytes[(s, t)] = pair_bytes.get((s, t), 0.0) + layer.activation_bytes
    return StageFacts(
        tuple(forward),
        tuple(backward),
        tuple(activation),
        tuple(parameter),
        pair_bytes,
        tuple(fixed_forward),
        tuple(fixed_backward),
    )


def memory_caps(
    problem: PipelineProblem, facts: StageFacts, gpus_of_stage: list[list[int]]
) -> list[int]:
    """Most micro-batches each stage may hold in flight within GPU memory.

    A replica of stage ``s`` on GPU ``g`` needs ``(1 + optimizer_state_factor) *
    parameter bytes`` plus ``share_g * activation bytes`` per micro-batch in
    flight (``models/pipeline.py``, memory). The cap is the smallest over the
    stage's replicas, at most K; 0 means the weights alone do not fit.
    """
    gpus = problem.cluster.gpus
    k = problem.microbatches
    factor = 1.0 + problem.optimizer_state_factor
    caps: list[int] = []
    for s, group in enumerate(gpus_of_stage):
        shares = replica_shares(problem, group)
        static = factor * facts.parameter_bytes[s]
        cap = 0 if min(shares) <= 0 else k
        for g, share in zip(group, shares, strict=True):
            free = gpus[g].memory_bytes - static
            if free < 0:
                cap = 0
                break
            stash = float(share) * facts.activation_bytes[s]
            if stash <= 0:
                continue
            fit = int(math.floor(free / stash))
            while fit > 0 and static + stash * fit > gpus[g].memory_bytes:
                fit -= 1
            cap = min(cap, fit)
        caps.append(max(cap, 0))
    return caps


@dataclass(frozen=True)
class Policy:
    """A priority rule of the list scheduler.

    Attributes
    ----------
    prefer_backward:
        Run a ready ``B`` before the next ``F`` (else the other way round).
    cap:
        Most micro-batches in flight per stage.
    """

    prefer_backward: bool
    cap: tuple[int, ...]


class _ProblemCache:
    """Routes, replica share intervals and all-reduce choices of one problem, computed once.

    Planners replay many plans of one problem; routes come from
    :meth:`~distplan.models.pipeline.Cluster.route` and every resource of a
    route (directed link, capacitated node) gets a number.
    """

    def __init__(self, problem: PipelineProblem):
        self.problem = problem
        self.view = ClusterView(problem)
        self.speeds = [gpu.speed for gpu in problem.cluster.gpus]
        self._routes: dict[tuple[int, int], tuple[float, float, tuple[int, ...]]] = {}
        self.resource_ids: dict[str, int] = {}
        self._spans: dict[tuple[int, ...], list[tuple[Fraction, Fraction]]] = {}

    def route(self, src: int, dst: int) -> tuple[float, float, tuple[int, ...]]:
        """``(latency seconds, bottleneck bytes/s, resource ids)`` of the network's route."""
        hit = self._routes.get((src, dst))
        if hit is None:
            route = self.view.route(src, dst)
            links = tuple(
                self.resource_ids.setdefault(r, len(self.resource_ids)) for r in route.resources
            )
            hit = self._routes[(src, dst)] = (route.latency_s, route.bottleneck_bytes_per_s, links)
        return hit

    def spans(self, group: tuple[int, ...]) -> list[tuple[Fraction, Fraction]]:
        """Exact share interval ``[a, b)`` of every replica of ``group``, in order (:func:`~.costs.replica_shares`)."""
        hit = self._spans.get(group)
        if hit is None:
            cumulative, hit = Fraction(0), []
            for share in replica_shares(self.problem, group):
                hit.append((cumulative, cumulative + share))
                cumulative += share
            self._spans[group] = hit
        return hit


_CACHES: dict[int, _ProblemCache] = {}


def _problem_cache(problem: PipelineProblem) -> _ProblemCache:
    cache = _CACHES.get(id(problem))
    if cache is None or cache.problem is not problem:
        if len(_CACHES) >= 16:
            _CACHES.clear()
        cache = _CACHES[id(problem)] = _ProblemCache(problem)
    return cache


# A transfer: (receiver task slot or -1 - stage for an all-reduce, seconds, directed link ids).
_Spec = tuple[int, float, tuple[int, ...]]


class EventModel:
    """One iteration of a partition and placement, replayable under any task order.

    Parameters
    ----------
    problem
        The pipeline problem.
    stage_of_layer, gpus_of_stage
        The partition and placement (as in ``PipelinePlan``).
    facts
        Precomputed :func:`stage_facts` of the partition (computed when None).
    """

    def __init__(
        self,
        problem: PipelineProblem,
        stage_of_layer: list[int],
        gpus_of_stage: list[list[int]],
        facts: StageFacts | None = None,
    ):
        cache = _problem_cache(problem)
        num_stages = len(gpus_of_stage)
        self.k = problem.microbatches
        self.num_stages = num_stages
        self.facts = facts or stage_facts(problem, stage_of_layer, num_stages)
        speeds = cache.speeds
        n = len(speeds)
        two_k = 2 * self.k

        # Workers (one per replica), numbered stage by stage.
        self.gpu: list[int] = []
        self.stage: list[int] = []
        self.workers_of_stage: list[list[int]] = []
        self.duration: list[tuple[float, float]] = []
        intervals: list[list[tuple[Fraction, Fraction]]] = []
        facts = self.facts
        self.feasible_shares = True
        for s, group in enumerate(gpus_of_stage):
            spans = cache.spans(tuple(group))
            intervals.append(spans)
            workers = list(range(len(self.gpu), len(self.gpu) + len(group)))
            self.gpu.extend(group)
            self.stage.extend([s] * len(group))
            fixed = (
                (facts.fixed_forward_s[s], facts.fixed_backward_s[s])
                if facts.fixed_forward_s
                else (0.0, 0.0)
            )
            scaled = (facts.forward_s[s] - fixed[0], facts.backward_s[s] - fixed[1])
            for g, (a, b) in zip(group, spans, strict=True):
                share = float(b - a)
                self.feasible_shares &= share > 0
                self.duration.append(
                    (
                        (fixed[0] + share * scaled[0]) / speeds[g],
                        (fixed[1] + share * scaled[1]) / speeds[g],
                    )
                )
            self.workers_of_stage.append(workers)
        num_workers = len(self.gpu)
        self.num_workers = num_workers

        def spec(sender: int, receiver: int, nbytes: float, slot: int) -> _Spec:
            latency, bandwidth, links = cache.route(self.gpu[sender], self.gpu[receiver])
            if nbytes <= 0.0:
                return (slot, latency, ())
            return (slot, latency + nbytes / bandwidth, links)

        # Pipeline transfers; the slot is the receiver's task index w * 2K + (0 for F, 1 for B),
        # to which the micro-batch's 2m is added at run time. Overlapping share intervals are
        # found by a merge of the two sorted interval lists (exact rational arithmetic); every
        # out-list stays sorted by receiver, the simulator's tie order.
        self.forward_out: list[list[_Spec]] = [[] for _ in range(num_workers)]
        self.backward_out: list[list[_Spec]] = [[] for _ in range(num_workers)]
        self.forward_in = [0] * num_workers
        self.backward_in = [0] * num_workers
        for (s, t), nbytes in sorted(self.facts.pair_bytes.items()):
            senders, receivers = self.workers_of_stage[s], self.workers_of_stage[t]
            i = j = 0
            while i < len(senders) and j < len(receivers):
                a, b = intervals[s][i]
                c, d = intervals[t][j]
                overlap = min(b, d) - max(a, c)
                if overlap > 0:
                    sender, receiver = senders[i], receivers[j]
                    share_bytes = float(overlap) * nbytes
                    self.forward_out[sender].append(
                        spec(sender, receiver, share_bytes, receiver * two_k)
                    )
                    self.backward_out[receiver].append(
                        spec(receiver, sender, share_bytes, sender * two_k + 1)
                    )
                    self.forward_in[receiver] += 1
                    self.backward_in[sender] += 1
                if b < d:
                    i += 1
                elif d < b:
                    j += 1
                else:
                    i += 1
                    j += 1
        for outs in self.backward_out:
            outs.sort(key=lambda x: x[0])
        # All-reduce steps: the algorithm the simulator's rule picks (cheaper estimate, ties to the ring).
        self.allreduce: list[list[list[_Spec]]] = []
        for s, workers in enumerate(self.workers_of_stage):
            group = [self.gpu[w] for w in workers]
            position = {g: w for g, w in zip(group, workers, strict=True)}
            _, steps = cache.view.allreduce_choice(group, self.facts.parameter_bytes[s])
            nbytes = self.facts.parameter_bytes[s]
            self.allreduce.append(
                [
                    [spec(position[a], position[b], f * nbytes, -1 - s) for a, b, f in step]
                    for step in steps
                ]
            )
        self.num_gpus = n
        self.num_resources = len(cache.resource_ids)

    def run(
        self, orders: list[list[Task]] | None = None, policy: Policy | None = None
    ) -> tuple[float, list[list[Task]]]:
        """Replay the iteration under fixed ``orders``, or build orders with ``policy``.

        Returns
        -------
        tuple
            The iteration time in seconds (``inf`` on a deadlock) and the
            per-stage orders that were run.
        """
        if (orders is None) == (policy is None):
            raise ValueError("give exactly one of orders and policy")
        k, two_k, num_workers, num_stages = self.k, 2 * self.k, self.num_workers, self.num_stages
        dynamic = orders is None
        ids: list[list[int]]
        if orders is None:
            ids = [[] for _ in range(num_stages)]
        else:
            ids = [[2 * m + (phase == "B") for m, phase in order] for order in orders]
        stage_of, duration, workers_of_stage = self.stage, self.duration, self.workers_of_stage
        forward_out, backward_out, allreduce = self.forward_out, self.backward_out, self.allreduce
        push, pop = heapq.heappush, heapq.heappop
        missing = [0] * (num_workers * two_k)
        for w in range(num_workers):
            base, f_in, b_in = w * two_k, self.forward_in[w], self.backward_in[w] + 1
            missing[base : base + two_k : 2] = [f_in] * k
            missing[base + 1 : base + two_k : 2] = [b_in] * k
        position = [0] * num_workers
        busy = [False] * num_workers
        free_at = [0.0] * num_workers
        link_free = [0.0] * self.num_resources
        # Events: (time, kind, key, payload, value). A _READY event carries every transfer one
        # task (or one ring step) makes ready, in the simulator's tie order.
        heap: list[tuple[float, int, int, object, int]] = []
        seq = 0
        done_of_stage = [0] * num_stages
        ring_step = [0] * num_stages
        ring_end = 0.0
        allreduce_key = two_k * num_workers + num_workers
        cap = policy.cap if policy is not None else ()
        prefer_backward = policy.prefer_backward if policy is not None else True
        next_forward = [0] * num_stages
        in_flight = [0] * num_stages
        pending: list[list[int]] = [[] for _ in range(num_stages)]

        def decide(w: int) -> int:
            """The next task of worker ``w``'s stage by the policy, or -1 when none is ready."""
            s, base = stage_of[w], w * two_k
            if not prefer_backward:
                m = next_forward[s]
                if m < k and in_flight[s] < cap[s] and not missing[base + 2 * m]:
                    return 2 * m
            for m in pending[s]:
                if not missing[base + 2 * m + 1]:
                    return 2 * m + 1
            m = next_forward[s]
            if m < k and in_flight[s] < cap[s] and not missing[base + 2 * m]:
                return 2 * m
            return -1

        def wake(w: int, now: float) -> None:
            nonlocal seq
            if busy[w]:
                return
            s, pos = stage_of[w], position[w]
            order = ids[s]
            if pos < len(order):
                task = order[pos]
                if missing[w * two_k + task]:
                    return
            elif not dynamic or pos == two_k:
                return
            else:
                task = decide(w)
                if task < 0:
                    return
                m = task >> 1
                order.append(task)
                if task & 1:
                    pending[s].remove(m)
                    in_flight[s] -= 1
                else:
                    pending[s].append(m)
                    next_forward[s] += 1
                    in_flight[s] += 1
                for v in workers_of_stage[s]:
                    if v != w and not busy[v] and position[v] == pos:
                        seq += 1
                        push(heap, (now, _WAKE, seq, None, v))
            busy[w] = True
            position[w] = pos + 1
            seq += 1
            push(heap, (now + duration[w][task & 1], _DONE, seq, w, task))

        def soon(w: int, now: float) -> None:
            """Wake ``w`` now, or after every other event of this instant when the policy decides."""
            nonlocal seq
            if dynamic and heap and heap[0][0] <= now:
                seq += 1
                push(heap, (now, _WAKE, seq, None, w))
            else:
                wake(w, now)

        for w in range(num_workers):
            wake(w, 0.0)
        while heap:
            now, kind, key, item, value = pop(heap)
            if kind == _DONE:
                w, task = item, value  # type: ignore[assignment]
                busy[w] = False
                free_at[w] = now
                if task & 1:
                    outs = backward_out[w]
                else:
                    outs = forward_out[w]
                    missing[w * two_k + task + 1] -= 1
                if outs:
                    push(heap, (now, _READY, task * num_workers + w, outs, task & ~1))
                if position[w] == two_k:
                    s = stage_of[w]
                    done_of_stage[s] += 1
                    workers = workers_of_stage[s]
                    if done_of_stage[s] == len(workers) and allreduce[s]:
                        ready = max(free_at[v] for v in workers)
                        push(heap, (ready, _READY, allreduce_key + s, allreduce[s][0], -1 - s))
                else:
                    soon(w, now)
            elif kind == _ARRIVE:
                missing[value] -= 1
                if not missing[value]:
                    soon(value // two_k, now)
            elif kind == _READY:
                last = now
                for spec in item:  # type: ignore[attr-defined]
                    links = spec[2]
                    begin = now
                    for link in links:
                        if link_free[link] > begin:
                            begin = link_free[link]
                    end = begin + spec[1]
                    for link in links:
                        link_free[link] = end
                    if value >= 0:
                        seq += 1
                        push(heap, (end, _ARRIVE, seq, None, spec[0] + value))
                    elif end > last:
                        last = end
                if value < 0:
                    s = -1 - value
                    ring_step[s] += 1
                    if ring_step[s] == len(allreduce[s]):
                        ring_end = max(ring_end, last)
                    else:
                        push(heap, (last, _READY, key, allreduce[s][ring_step[s]], value))
            else:
                wake(value, now)
        if any(p < two_k for p in position) or not self.feasible_shares:
            iteration = math.inf
        else:
            iteration = max(max(free_at), ring_end)
        phases: tuple[Phase, Phase] = ("F", "B")
        return iteration, [[(task >> 1, phases[task & 1]) for task in order] for order in ids]


def policies(num_stages: int, caps: list[int]) -> list[Policy]:
    """The priority rules :func:`list_schedule` tries, duplicates removed, in a fixed order."""
    memory = tuple(caps)
    one_f_one_b = tuple(min(c, num_stages - s) for s, c in enumerate(caps))
    rules = [Policy(True, memory), Policy(True, one_f_one_b), Policy(False, memory)]
    out: list[Policy] = []
    for rule in rules:
        if rule not in out:
            out.append(rule)
    return out


def list_schedule(
    problem: PipelineProblem,
    stage_of_layer: list[int],
    gpus_of_stage: list[list[int]],
    model: EventModel | None = None,
) -> list[list[Task]] | None:
    """Per-stage task orders of the ``list`` schedule, or None when the weights do not fit.

    Signature of :data:`~distplan.planners.pipeline.finalize.ListScheduler`.

    Parameters
    ----------
    problem
        The pipeline problem.
    stage_of_layer, gpus_of_stage
        The partition and placement.
    model
        A prepared :class:`EventModel` of this partition (built when None).

    Returns
    -------
    list of list of Task or None
        Every ``(m, "F")`` and ``(m, "B")`` once per stage, ``F`` before ``B``
        of the same micro-batch, micro-batches entering in index order, and no
        stage holding more micro-batches in flight than its memory allows.

    Examples
    --------
    >>> from distplan.models.pipeline import GPU, Cluster, PipelineLayer, PipelineProblem
    >>> layers = [PipelineLayer(name=n, forward_s=1, backward_s=2, activation_bytes=1, parameter_bytes=0) for n in "ab"]
    >>> cluster = Cluster(gpus=[GPU(name="g0", memory_bytes=1e9), GPU(name="g1", memory_bytes=1e9)],
    ...                   bandwidth_bytes_per_s=[[0, 1e9], [1e9, 0]])
    >>> problem = PipelineProblem(name="t", layers=layers, edges=[(0, 1)], cluster=cluster, microbatches=2)
    >>> list_schedule(problem, [0, 1], [[0], [1]])[1]
    [(0, 'F'), (0, 'B'), (1, 'F'), (1, 'B')]
    """
    num_stages = len(gpus_of_stage)
    if model is None:
        model = EventModel(problem, stage_of_layer, gpus_of_stage)
    caps = memory_caps(problem, model.facts, gpus_of_stage)
    if min(caps) < 1:
        return None
    best: tuple[float, list[list[Task]]] | None = None
    for rule in policies(num_stages, caps):
        iteration, orders = model.run(policy=rule)
        if math.isfinite(iteration) and (best is None or iteration < best[0]):
            best = (iteration, orders)
    return None if best is None else best[1]
