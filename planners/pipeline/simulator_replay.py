"""Simulator, part 4: the event loop that replays one iteration, and the trace it returns.

Rules the contract leaves open, decided here: resource queues are first-come
first-served by ready time; transfers ready at the same instant are served by
(micro-batch, F before B, sender stage and replica, receiver stage and
replica), pipeline transfers before all-reduce transfers, and all-reduce
transfers by (stage, position in the step). A transfer reserves every resource
of its route from ``max(ready, latest release of those resources)``. A task
starts at ``max(its GPU is free, its last input has arrived)``; a ``B`` needs its
own ``F`` to have finished. The iteration time is the latest end of any task or
all-reduce; ``compute_end_s`` the latest task end.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .simulator_checks import PHASES, stages_text
from .simulator_prepare import Prepared, Spec

__all__ = ["AllReduceRecord", "SimulationTrace", "TaskRecord", "TransferRecord", "replay"]


@dataclass(frozen=True)
class TaskRecord:
    """One compute task of the replayed iteration (times in seconds)."""

    stage: int
    gpu: int
    microbatch: int
    phase: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class TransferRecord:
    """One inter-GPU transfer (times in seconds, size in bytes).

    ``kind`` is ``"activation"``, ``"gradient"`` or ``"allreduce"``; ``index`` is
    the micro-batch, or the step for an all-reduce.
    """

    kind: str
    stage: int
    index: int
    src_gpu: int
    dst_gpu: int
    nbytes: float
    ready_s: float
    start_s: float
    end_s: float


@dataclass(frozen=True)
class AllReduceRecord:
    """One stage's gradient all-reduce: algorithm (``"ring"`` or ``"two-level"``), steps, times in seconds."""

    stage: int
    algorithm: str
    steps: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SimulationTrace:
    """The replayed iteration.

    ``iteration_s`` is None when the plan deadlocks; ``deadlock`` then says who
    waits for what. ``allreduce_start_s`` / ``allreduce_end_s`` are per stage
    (None for unreplicated stages); ``allreduces`` has one record per finished
    all-reduce.
    """

    iteration_s: float | None
    compute_end_s: float
    tasks: tuple[TaskRecord, ...]
    transfers: tuple[TransferRecord, ...]
    allreduce_start_s: tuple[float | None, ...]
    allreduce_end_s: tuple[float | None, ...]
    busy_s_of_worker: tuple[float, ...]
    deadlock: str | None
    allreduces: tuple[AllReduceRecord, ...] = ()


class _Replay:
    """Mutable state of one replay."""

    def __init__(self, prep: Prepared, record: bool):
        self.prep, self.record = prep, record
        k, n = prep.k, prep.num_workers
        self.two_k = two_k = 2 * k
        self.missing = [0] * (n * two_k)
        self.ready_at = [0.0] * (n * two_k)
        self.end_at = [0.0] * (n * two_k)
        self.start_at = [0.0] * (n * two_k) if record else []
        for w in range(n):
            base, f_in, b_in = w * two_k, len(prep.forward_in[w]), len(prep.backward_in[w]) + 1
            for m in range(k):
                self.missing[base + 2 * m] = f_in
                self.missing[base + 2 * m + 1] = b_in
        self.position = [0] * n
        self.free_at = [0.0] * n
        self.resource_free = [0.0] * prep.num_resources
        self.heap: list[tuple[float, int, Spec, int]] = []
        self.stack = list(range(n))
        stages = prep.num_stages
        self.done_of_stage = [0] * stages
        self.step_left = [0] * stages
        self.step_of = [0] * stages
        self.step_last = [0.0] * stages
        self.ring_start: list[float | None] = [None] * stages
        self.ring_end: list[float | None] = [None] * stages
        self.allreduce_key = two_k * n * n
        self.transfers: list[TransferRecord] = []

    def launch_step(self, s: int, ready: float) -> None:
        step = self.prep.allreduce[s][self.step_of[s]]
        self.step_left[s] = len(step)
        base = self.allreduce_key + s * (self.prep.num_workers**2)
        for p, spec in enumerate(step):
            heapq.heappush(self.heap, (ready, base + p, spec, -1 - s))

    def run_worker(self, w: int) -> None:
        """Run worker ``w``'s tasks in order while their inputs are there."""
        prep, two_k, n = self.prep, self.two_k, self.prep.num_workers
        pos, order = self.position[w], prep.order_of_worker[w]
        if pos == len(order):
            return
        base, free = w * two_k, self.free_at[w]
        f_s, b_s = prep.duration[w]
        while pos < len(order):
            task = order[pos]
            idx = base + task
            if self.missing[idx]:
                break
            start = max(self.ready_at[idx], free)
            if task & 1:
                free, outs = start + b_s, prep.backward_out[w]
            else:
                free, outs = start + f_s, prep.forward_out[w]
                self.missing[idx + 1] -= 1  # the own backward needs this forward
                self.ready_at[idx + 1] = max(self.ready_at[idx + 1], free)
            self.end_at[idx] = free
            if self.record:
                self.start_at[idx] = start
            pos += 1
            key = task * n + w
            for spec in outs:
                target = spec[0]
                heapq.heappush(self.heap, (free, key * n + target, spec, target * two_k + task))
        self.position[w], self.free_at[w] = pos, free
        if pos == len(order):
            s = prep.stage[w]
            self.done_of_stage[s] += 1
            workers = prep.workers_of_stage[s]
            if self.done_of_stage[s] == len(workers) and prep.allreduce[s]:
                self.ring_start[s] = self.step_last[s] = max(self.free_at[v] for v in workers)
                self.launch_step(s, self.step_last[s])

    def serve(self) -> None:
        """Serve the earliest-ready transfer on its resources."""
        ready, _, spec, target = heapq.heappop(self.heap)
        resources = spec[3]
        start = max([ready] + [self.resource_free[r] for r in resources])
        end = start + spec[2]
        for r in resources:
            self.resource_free[r] = end
        two_k = self.two_k
        if target >= 0:
            self.ready_at[target] = max(self.ready_at[target], end)
            self.missing[target] -= 1
            if not self.missing[target]:
                self.stack.append(target // two_k)
            if self.record:
                kind = "gradient" if target & 1 else "activation"
                index, stage = (target % two_k) >> 1, self.prep.stage[target // two_k]
                self.transfers.append(
                    TransferRecord(kind, stage, index, *spec[4:], spec[1], ready, start, end)
                )
            return
        s = -1 - target
        if self.record:
            self.transfers.append(
                TransferRecord(
                    "allreduce", s, self.step_of[s], *spec[4:], spec[1], ready, start, end
                )
            )
        self.step_last[s] = max(self.step_last[s], end)
        self.step_left[s] -= 1
        if self.step_left[s] == 0:  # the step is over
            self.step_of[s] += 1
            if self.step_of[s] == len(self.prep.allreduce[s]):
                self.ring_end[s] = self.step_last[s]
            else:
                self.launch_step(s, self.step_last[s])

    def trace(self) -> SimulationTrace:
        prep, two_k = self.prep, self.two_k
        busy = tuple(prep.k * (f + b) for f, b in prep.duration)
        compute_end = max(self.free_at)
        stuck = [
            w for w in range(prep.num_workers) if self.position[w] < len(prep.order_of_worker[w])
        ]
        deadlock = deadlock_message(prep, stuck, self.position) if stuck else None
        ends = [t for t in self.ring_end if t is not None]
        iteration = None if stuck else max([compute_end] + ends)
        tasks: tuple[TaskRecord, ...] = ()
        if self.record:
            tasks = tuple(
                TaskRecord(
                    prep.stage[w],
                    prep.gpu[w],
                    task >> 1,
                    PHASES[task & 1],
                    self.start_at[w * two_k + task],
                    self.end_at[w * two_k + task],
                )
                for w in range(prep.num_workers)
                for task in prep.order_of_worker[w][: self.position[w]]
            )
        allreduces = tuple(
            AllReduceRecord(s, algorithm, len(prep.allreduce[s]), start, end)
            for s, (algorithm, start, end) in enumerate(
                zip(prep.allreduce_algorithm, self.ring_start, self.ring_end, strict=True)
            )
            if algorithm is not None and start is not None and end is not None
        )
        return SimulationTrace(
            iteration,
            compute_end,
            tasks,
            tuple(self.transfers),
            tuple(self.ring_start),
            tuple(self.ring_end),
            busy,
            deadlock,
            allreduces,
        )


def replay(prep: Prepared, record: bool) -> SimulationTrace:
    """Run the event loop: transfers in ready order on their resources, tasks as early as allowed."""
    state = _Replay(prep, record)
    while True:
        while state.stack:
            state.run_worker(state.stack.pop())
        if not state.heap:
            break
        state.serve()
    return state.trace()


def deadlock_message(prep: Prepared, stuck: list[int], position: list[int]) -> str:
    """Name, per stuck stage, the task its first stuck replica waits at and what it lacks."""
    two_k = 2 * prep.k
    ran: set[int] = set()
    for w in range(prep.num_workers):
        ran.update(w * two_k + task for task in prep.order_of_worker[w][: position[w]])
    waits: list[str] = []
    seen_stages: set[int] = set()
    for w in stuck:
        s = prep.stage[w]
        if s in seen_stages:
            continue
        seen_stages.add(s)
        task = prep.order_of_worker[w][position[w]]
        m, phase = task >> 1, PHASES[task & 1]
        needs: list[str] = []
        if phase == "B" and w * two_k + 2 * m not in ran:
            needs.append(f"its own forward (mb {m}, F), which comes later in its order")
        sources, what = (
            (prep.forward_in[w], "activations")
            if phase == "F"
            else (prep.backward_in[w], "gradients")
        )
        source_task = 2 * m + (phase == "B")
        late = sorted({prep.stage[v] for v in sources if v * two_k + source_task not in ran})
        if late:
            needs.append(f"{what} from stage{'s' if len(late) > 1 else ''} {stages_text(late)}")
        waits.append(
            f"stage {s} (mb {m}, {phase}) on GPU {prep.gpu[w]} needs " + " and ".join(needs)
        )
    return "deadlock: no task can start; waiting: " + "; ".join(waits)
