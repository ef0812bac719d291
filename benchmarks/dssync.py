"""Benchmark of the dssync kind: simulated seconds to the target loss per solver and instance.

Usage::

    python benchmarks/dssync.py [--instances GLOB] [--repeats K]

For every shipped instance (``instances/dssync/*.json``) prints every solver's
time to target (seconds, as re-scored by the kind's independent evaluator), our mean iteration time and rho_P, the speed-up of ours
over the best all-reduce baseline (``ring_rank``, ``ring_rack``,
``hierarchical``) and over the best baseline of all (baseline / ours, > 1 means
ours is faster), and the median planning time of ours over ``K`` runs (seconds,
wall clock and CPU time of this process; on a shared machine the CPU time is the
steadier figure).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import distplan.planners.dssync.kind  # noqa: F401  (registers the kind until main discovers it)
from distplan.models.dssync import DssyncPlan, DssyncProblem
from distplan.models.result import Evaluation
from distplan.solvers.options import SolveOptions
from distplan.solvers.registry import get_solver, problem_kind

INSTANCES = Path(__file__).resolve().parent.parent / "instances" / "dssync"
OURS = "ds_sync"
ALL_REDUCE = ("ring_rank", "ring_rack", "hierarchical")
BASELINES = (*ALL_REDUCE, "periodic", "random_groups", "gossip")
MEASURES = ("iter_s", "rho_P", "x_allreduce", "x_best", "plan_s", "plan_cpu_s", "chosen")
COLUMNS = ("instance", "n", *BASELINES, OURS, *MEASURES)


def run(problem: DssyncProblem, solver: str) -> tuple[DssyncPlan, Evaluation]:
    """Plan with ``solver`` (seed 0) and score the plan with the kind's evaluator."""
    output = get_solver(solver, "dssync").function(problem, SolveOptions(seed=0))
    evaluation = problem_kind("dssync").evaluate(problem, output.plan)
    assert evaluation.feasible, evaluation.violations
    assert evaluation.objective == output.objective, (
        solver,
        output.objective,
        evaluation.objective,
    )
    return output.plan, evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", default="*.json", help="glob under instances/dssync")
    parser.add_argument("--repeats", type=int, default=3, help="planning runs of ours (median)")
    args = parser.parse_args()
    print(" | ".join(COLUMNS))
    print(" | ".join(["---"] * len(COLUMNS)))
    for path in sorted(INSTANCES.glob(args.instances)):
        problem = DssyncProblem.model_validate_json(path.read_text(encoding="utf-8"))
        times = {name: float(run(problem, name)[1].objective or 0.0) for name in BASELINES}
        planning, planning_cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            output = get_solver(OURS, "dssync").function(problem, SolveOptions(seed=0))
            planning.append(time.perf_counter() - start)
            planning_cpu.append(time.process_time() - start_cpu)
        _, evaluation = run(problem, OURS)
        ours_s = float(evaluation.objective or 0.0)
        best_all_reduce = min(times[name] for name in ALL_REDUCE)
        best = min(times.values())
        row = [
            path.stem,
            str(len(problem.workers)),
            *(f"{times[name]:.2f}" for name in BASELINES),
            f"{ours_s:.2f}",
            f"{evaluation.metrics['mean_iteration_s']:.3f}",
            f"{evaluation.metrics['rho_P']:.4f}",
            f"{best_all_reduce / ours_s:.2f}",
            f"{best / ours_s:.2f}",
            f"{statistics.median(planning):.2f}",
            f"{statistics.median(planning_cpu):.2f}",
            str(output.metrics.get("chosen")),
        ]
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
