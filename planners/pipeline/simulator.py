"""Independent discrete-event simulator for pipeline plans (the pipeline evaluator).

Replays one training iteration of a :class:`~distplan.models.pipeline.PipelinePlan`
exactly as the module docstring of :mod:`distplan.models.pipeline` defines it, and
shares no code with the pipeline solvers: it is the referee their plans are
scored by. It imports only :mod:`distplan.models` (the network and its one
routing function included). The work is split in parts a reader can hold:

* :mod:`.simulator_checks`: structural and policy violations;
* :mod:`.simulator_allreduce`: the ring and two-level all-reduce steps;
* :mod:`.simulator_prepare`: workers, shares, task times, routed transfers;
* :mod:`.simulator_replay`: the event loop and the trace;
* this module: the memory rule and the entry points.

Details the contract leaves open, decided here
----------------------------------------------
* The order is not checked against the family named by ``schedule``; any order
  that lists every task once is replayed. A ``B`` listed before its own ``F``
  shows up as a deadlock.
* Every micro-batch of every stage-pair edge is one transfer per overlapping
  (sender replica, receiver replica) pair; replicas whose sample intervals only
  touch exchange nothing. Intervals are exact rationals.
* A stage pair with edges but zero bytes still orders the tasks: its transfers
  cost the route latency and occupy nothing.
* Peak activation memory counts a micro-batch from its ``F`` up to and including
  its ``B`` (the peak over the order of the in-flight count).
* ``busy_fraction`` is the compute seconds of all used GPUs over
  ``iteration_s`` times the number of used GPUs (0 when the iteration takes 0 s).
* ``num_transfers`` counts every inter-GPU transfer of the iteration, including
  zero-byte ones and every all-reduce transfer. ``peak_memory_bytes`` is a list
  aligned with the cluster's GPUs (0 for unused ones).
"""

from __future__ import annotations

from typing import Any

from ...models.pipeline import PipelinePlan, PipelineProblem
from ...models.result import Evaluation
from .simulator_checks import policy_violations, structural_violations
from .simulator_prepare import Prepared
from .simulator_replay import (
    AllReduceRecord,
    SimulationTrace,
    TaskRecord,
    TransferRecord,
    replay,
)

__all__ = [
    "AllReduceRecord",
    "SimulationTrace",
    "TaskRecord",
    "TransferRecord",
    "evaluate_plan",
    "simulate",
]

_GB = 1e9


def _gb(nbytes: float) -> str:
    gb = nbytes / _GB
    return f"{gb:.1f} GB" if gb >= 0.1 or gb == 0 else f"{gb:.3g} GB"


def _memory_violations(problem: PipelineProblem, prep: Prepared) -> tuple[list[str], list[float]]:
    """Peak bytes of every GPU (weights, optimizer state, stashed activations) and overflows."""
    gpus = problem.cluster.gpus
    peak = [0.0] * len(gpus)
    out: list[str] = []
    factor = 1.0 + problem.optimizer_state_factor
    for w, g in enumerate(prep.gpu):
        s = prep.stage[w]
        static = factor * prep.parameter_bytes[s]
        dynamic = prep.share[w] * prep.activation_bytes[s] * prep.peak_in_flight[s]
        peak[g] = static + dynamic
        if peak[g] > gpus[g].memory_bytes:
            out.append(
                f"GPU {g} ({gpus[g].name}) of stage {s} needs {_gb(peak[g])} at peak (weights+optimizer "
                f"{_gb(static)}, activations {_gb(dynamic)}), holds {_gb(gpus[g].memory_bytes)}"
            )
    return out, peak


def simulate(
    problem: PipelineProblem, plan: PipelinePlan, *, record: bool = True
) -> SimulationTrace:
    """Replay one iteration of ``plan`` and return its trace.

    Parameters
    ----------
    problem:
        The pipeline problem.
    plan:
        A structurally valid plan for it.
    record:
        Whether to record every task and transfer (``tasks`` and ``transfers``
        stay empty otherwise, which is faster).

    Returns
    -------
    SimulationTrace
        Start and end of every task, transfer and all-reduce, in seconds.

    Raises
    ------
    ValueError
        If the plan cannot be replayed; the message lists the structural errors.
    """
    errors = structural_violations(problem, plan)
    if errors:
        raise ValueError("the plan cannot be replayed: " + "; ".join(errors))
    return replay(Prepared(problem, plan), record)


def _metrics(prep: Prepared, trace: SimulationTrace, iteration: float) -> dict[str, Any]:
    k = prep.k
    pipeline_transfers = 2 * k * sum(len(out) for out in prep.forward_out)
    pipeline_bytes = (
        2 * k * sum(spec[1] for out in prep.forward_out for spec in out if spec[4] != spec[5])
    )
    allreduce_specs = [spec for steps in prep.allreduce for step in steps for spec in step]
    busy = sum(trace.busy_s_of_worker)
    return {
        "iteration_s": iteration,
        "compute_end_s": trace.compute_end_s,
        "allreduce_s": [
            0.0 if start is None or end is None else end - start
            for start, end in zip(trace.allreduce_start_s, trace.allreduce_end_s, strict=True)
        ],
        "allreduce_algorithm": [a or "" for a in prep.allreduce_algorithm],
        "busy_fraction": busy / (iteration * prep.num_workers) if iteration > 0 else 0.0,
        "num_transfers": pipeline_transfers + len(allreduce_specs),
        "transfer_bytes": pipeline_bytes + sum(spec[1] for spec in allreduce_specs),
    }


def evaluate_plan(problem: PipelineProblem, plan: PipelinePlan) -> Evaluation:
    """Independently evaluate a pipeline plan by discrete-event simulation.

    Parameters
    ----------
    problem:
        The pipeline problem.
    plan:
        The plan to evaluate.

    Returns
    -------
    Evaluation
        ``objective`` is the simulated iteration time in seconds (None when the
        plan is structurally invalid or deadlocks); ``feasible`` means no
        violations. ``metrics`` holds ``iteration_s``, ``compute_end_s``,
        ``allreduce_s`` and ``allreduce_algorithm`` (per stage),
        ``peak_memory_bytes`` (per cluster GPU, 0 for unused ones),
        ``busy_fraction``, ``num_transfers`` and ``transfer_bytes``.
    """
    errors = structural_violations(problem, plan)
    if errors:
        return Evaluation(feasible=False, objective=None, violations=errors)
    violations = policy_violations(problem, plan)
    prep = Prepared(problem, plan)
    memory, peak = _memory_violations(problem, prep)
    violations += memory
    trace = replay(prep, record=False)
    metrics: dict[str, Any] = {"peak_memory_bytes": peak}
    if trace.deadlock is not None or trace.iteration_s is None:
        violations.append(trace.deadlock or "deadlock")
        return Evaluation(feasible=False, objective=None, violations=violations, metrics=metrics)
    metrics.update(_metrics(prep, trace, trace.iteration_s))
    return Evaluation(
        feasible=not violations, objective=trace.iteration_s, violations=violations, metrics=metrics
    )
