"""Pipeline planning benchmark: every shipped instance x every pipeline solver.

Prints one row per instance (profile x cluster preset x micro-batches K) with the
simulated iteration time of each solver, the ratio of ours (``topo``) to each
baseline measured in the same run, and planning times (median of ``--repeats``).

    python benchmarks/pipeline.py [--repeats 3] [--time-limit 30] [--exact] [--filter vgg16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import distplan
from distplan.models.result import HAS_PLAN

OURS = "topo"
BASELINES = ("uniform", "balance_by_time", "alpa_dp", "pipedream_dp")
INSTANCES = Path(__file__).resolve().parents[1] / "instances" / "pipeline"


def run(problem, solver: str, repeats: int, time_limit: float):
    """Solve ``repeats`` times; return the (deterministic) result and the median planning seconds."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = distplan.solve(problem, solver, time_limit=time_limit, seed=0)
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per solver for the median planning time")
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per solve")
    parser.add_argument("--exact", action="store_true", help="also run the exact CP-SAT solver (coarsened, time-limited)")
    parser.add_argument("--filter", default="", help="only instances whose file name contains this")
    args = parser.parse_args(argv)

    solvers = [OURS, *BASELINES] + (["cpsat"] if args.exact else [])
    files = sorted(p for p in INSTANCES.glob("*.json") if args.filter in p.name)
    header = ["instance", "layers", "gpus", "K", *[f"{s} s" for s in solvers], *[f"ours/{b}" for b in BASELINES], "ours plan s", "worst baseline plan s"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    ratios: dict[str, list[float]] = {b: [] for b in BASELINES}
    worst_ours_time = 0.0
    for path in files:
        problem = distplan.load_instance(path)
        objectives: dict[str, float | None] = {}
        plan_times: dict[str, float] = {}
        for solver in solvers:
            result, seconds = run(problem, solver, args.repeats if solver != "cpsat" else 1, args.time_limit)
            objectives[solver] = result.objective if result.status in HAS_PLAN else None
            plan_times[solver] = seconds
        ours = objectives[OURS]
        row_ratios = []
        for baseline in BASELINES:
            base = objectives[baseline]
            if ours is not None and base is not None:
                ratios[baseline].append(ours / base)
                row_ratios.append(f"{ours / base:.3f}")
            else:
                row_ratios.append("-")
        worst_ours_time = max(worst_ours_time, plan_times[OURS])
        row = [
            path.stem,
            str(len(problem.layers)),
            str(problem.num_gpus),
            str(problem.microbatches),
            *[fmt(objectives[s]) for s in solvers],
            *row_ratios,
            f"{plan_times[OURS]:.2f}",
            f"{max(plan_times[b] for b in BASELINES):.2f}",
        ]
        print(" | ".join(row))
        sys.stdout.flush()
    print()
    print("ratio ours/baseline (iteration time, lower is better) over instances both solved:")
    for baseline, values in ratios.items():
        if values:
            print(
                f"  {baseline}: median {statistics.median(values):.3f}, worst {max(values):.3f}, "
                f"best {min(values):.3f}, n={len(values)}"
            )
    print(f"slowest planning time of {OURS}: {worst_ours_time:.2f} s (median of {args.repeats} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
