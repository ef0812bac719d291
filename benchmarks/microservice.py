"""Microservice placement benchmark: every shipped instance x every microservice solver.

For each instance (servers x services, distinct layers) prints one row per solver
with the served requests/s, instances deployed, status, proven bound, the gap to
the ILP's bound, and the planning time (median of ``--repeats`` runs; the exact
solvers run once, up to ``--time-limit``). A summary line per instance gives the
best of ours (max of ilp, cpsat, lp_round, greedy) over ``image_locality`` and
over ``layer_oblivious``.

    python benchmarks/microservice.py [--time-limit 60] [--repeats 3] [--filter small] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import distplan
from distplan.models.result import HAS_PLAN

EXACT = ("ilp", "cpsat")
OURS = ("ilp", "cpsat", "lp_round", "greedy")
SOLVERS = (
    *EXACT,
    "lp_round",
    "greedy",
    "greedy_intra",
    "image_locality",
    "lr_scheduler",
    "layer_oblivious",
)
INSTANCES = Path(__file__).resolve().parents[1] / "instances" / "microservice"


def run(problem, solver: str, repeats: int, time_limit: float, threads: int):
    """Solve ``repeats`` times with seed 0; return the last result and the median planning seconds."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = distplan.solve(problem, solver, time_limit=time_limit, seed=0, threads=threads)
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--time-limit", type=float, default=60.0, help="seconds per solve (binds the exact solvers)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each non-exact solver for the median time"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="worker threads of the exact backends"
    )
    parser.add_argument("--filter", default="", help="only instances whose file name contains this")
    args = parser.parse_args(argv)

    files = sorted(
        (p for p in INSTANCES.glob("*.json") if args.filter in p.name),
        key=lambda p: len(p.read_bytes()),
    )
    failures = 0
    for path in files:
        problem = distplan.load_instance(path)
        layers = len({d for spec in problem.services for d in spec.layers})
        print(
            f"\n## {problem.name}: {len(problem.servers)} servers, {len(problem.services)} services, "
            f"{layers} layers, demand {problem.total_demand_rps:.1f} requests/s"
        )
        header = [
            "solver",
            "served rps",
            "instances",
            "status",
            "bound",
            "gap to ILP bound %",
            "plan s",
        ]
        print(" | ".join(header))
        print(" | ".join("---" for _ in header))
        results = {}
        for solver in SOLVERS:
            repeats = 1 if solver in EXACT else max(1, args.repeats)
            result, seconds = run(problem, solver, repeats, args.time_limit, args.threads)
            results[solver] = (result, seconds)
            if result.status not in HAS_PLAN or "violations" in result.metrics:
                failures += 1
        ilp_bound = results["ilp"][0].bound
        for solver in SOLVERS:
            result, seconds = results[solver]
            served = result.objective if result.has_plan else None
            gap = (
                None if served is None or not ilp_bound else 100 * (ilp_bound - served) / ilp_bound
            )
            print(
                " | ".join(
                    [
                        solver,
                        fmt(served),
                        str(result.metrics.get("instances_deployed", "-")),
                        str(result.status),
                        fmt(result.bound),
                        fmt(gap, ".2f"),
                        fmt(seconds, ".2f"),
                    ]
                )
            )
        best = max((results[s][0].objective or 0.0) for s in OURS)
        for baseline in ("image_locality", "layer_oblivious"):
            base = results[baseline][0].objective
            ratio = best / base if base else None
            print(f"best of ours / {baseline}: {fmt(ratio, '.3f')}")
    if failures:
        print(f"\n{failures} solve(s) without a valid plan", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
