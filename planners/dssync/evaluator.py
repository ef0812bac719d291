"""Independent evaluator of ``dssync`` plans: schedule rules, training replay, fluid network replay.

The objective is the simulated wall-clock time (seconds) until the loss of the
workers' mean model reaches the target: the training simulator gives the
iteration ``T`` at which it does, the fluid network simulator the time at which
the last worker finishes iteration ``T``. Imports only ``models/`` and numpy
(through :mod:`.network_sim` and :mod:`.training_sim`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...models.dssync import DssyncPlan, DssyncProblem, plan_violations
from ...models.result import Evaluation
from .network_sim import NetworkTrace, Resources, group_phases, simulate_network
from .training_sim import TrainingRun, consensus_factor, train

__all__ = ["Replay", "evaluate_plan", "overcommitted_links", "replay"]

#: Iterations simulated for the timing metrics when the target is never reached.
TIMING_ITERATIONS_WITHOUT_TARGET = 20
#: Points kept of the loss curve in the metrics.
LOSS_CURVE_POINTS = 40


def overcommitted_links(problem: DssyncProblem, plan: DssyncPlan) -> list[str]:
    """Links some partition overcommits: its groups' crossings at their NIC rates exceed the residual.

    For each partition and directed link: the sum over groups of the largest
    (over the group's phases) ``crossings * rate cap`` of its flows, against the
    link's capacity minus its peak background load (bytes/s).
    """
    res = Resources(problem)
    free = res.capacity.copy()
    for link, load in res.loads:
        free[link] -= load.peak_bytes_per_s()
    index = problem.worker_index
    found: list[str] = []
    for p, partition in enumerate(plan.partitions):
        demand = np.zeros(len(res.names))
        for group in partition.groups:
            members = [index[m] for m in group.members]
            phases = group_phases(problem, res, members, group.algorithm)
            per_phase = [sum(f.usage * f.rate_cap for f in phase) for phase in phases]
            if per_phase:
                demand += np.max(np.array(per_phase), axis=0)
        for r in np.flatnonzero(demand > free * (1 + 1e-9)):
            found.append(
                f"partitions[{p}]: {res.names[r]} asked {demand[r]:.4g} B/s, has {free[r]:.4g} B/s"
            )
    return found


@dataclass(frozen=True)
class Replay:
    """Both simulations of one valid plan: seconds to target (inf if never), training, timing."""

    time_to_target_s: float
    run: TrainingRun
    trace: NetworkTrace


def replay(problem: DssyncProblem, plan: DssyncPlan) -> Replay:
    """Train, then time the iterations trained (``plan`` must be valid; see :func:`evaluate_plan`)."""
    run = train(problem, plan)
    reached = run.iterations_to_target
    cap = problem.training.max_iterations
    timed = reached if reached is not None else min(cap, TIMING_ITERATIONS_WITHOUT_TARGET)
    trace = simulate_network(problem, plan, max(timed, 1))
    ends = trace.iteration_end_s
    objective = math.inf if reached is None else (ends[reached - 1] if reached > 0 else 0.0)
    return Replay(float(objective), run, trace)


def evaluate_plan(problem: DssyncProblem, plan: DssyncPlan) -> Evaluation:
    """Check ``plan`` and simulate it; the objective is seconds to the target loss (inf if never)."""
    violations = plan_violations(problem, plan)
    if violations:
        return Evaluation(feasible=False, objective=None, violations=violations)
    result = replay(problem, plan)
    objective, run, trace = result.time_to_target_s, result.run, result.trace
    reached = run.iterations_to_target
    ends = trace.iteration_end_s
    timed = len(ends)
    makespan = float(ends[-1])
    mean_iteration = makespan / timed
    used = trace.bytes_on_resource > 0
    utilisation = np.zeros_like(trace.bytes_on_resource)
    if makespan > 0:
        utilisation[used] = trace.bytes_on_resource[used] / (
            trace.resource_capacity[used] * makespan
        )
    busiest = np.argsort(-utilisation, kind="stable")[:5]
    step = max(1, len(run.losses) // LOSS_CURVE_POINTS)
    curve = [
        [t, 0.0 if t == 0 else ends[t - 1] if t <= len(ends) else None, run.losses[t]]
        for t in range(0, len(run.losses), step)
    ]
    metrics: dict[str, Any] = {
        "time_to_target_s": objective,
        "target_reached": reached is not None,
        "iterations_to_target": reached,
        "mean_iteration_s": mean_iteration,
        "mean_period_s": mean_iteration * len(plan.partitions),
        "period": len(plan.partitions),
        "rho_P": consensus_factor(problem, plan),
        "final_loss": run.losses[-1],
        "loss_curve": curve,
        "max_link_utilisation": float(utilisation.max()) if len(utilisation) else 0.0,
        "busiest_links": {
            trace.resource_names[r]: round(float(utilisation[r]), 4) for r in busiest if used[r]
        },
        "overcommitted_links": overcommitted_links(problem, plan),
    }
    return Evaluation(feasible=True, objective=objective, metrics=metrics)
