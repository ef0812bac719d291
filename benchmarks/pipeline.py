"""Pipeline planning benchmark: every shipped instance x every pipeline solver.

Prints one row per instance (profile x cluster preset x micro-batches K) with the
simulated iteration time of each solver, the ratio of ours (``topo``) to each
baseline and to the best baseline of that instance (all measured in the same
run; below 1 = ours faster), where topo's plan came from, and planning times
(median of ``--repeats`` runs). Then the median ratios per preset and over the
multi-server presets.

    python benchmarks/pipeline.py [--repeats 3] [--time-limit 60] [--filter vgg16] [--instances DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import distplan
from distplan.models.result import HAS_PLAN
from distplan.solvers.bench.timing import timed_solve
from distplan.solvers.registry import solvers

OURS = "topo"
BASELINES = tuple(spec.name for spec in solvers("pipeline") if spec.role.value == "baseline")
INSTANCES = Path(__file__).resolve().parents[1] / "instances" / "pipeline"


run = timed_solve


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label}: no instance"
    return (
        f"  {label}: median {statistics.median(values):.3f}, worst {max(values):.3f}, "
        f"best {min(values):.3f}, n={len(values)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per solver for the median planning time"
    )
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve")
    parser.add_argument("--filter", default="", help="only instances whose file name contains this")
    parser.add_argument(
        "--instances", type=Path, default=INSTANCES, help="folder of pipeline instances"
    )
    args = parser.parse_args(argv)

    solvers = [OURS, *BASELINES]
    files = sorted(p for p in args.instances.glob("*.json") if args.filter in p.name)
    header = [
        "instance",
        "layers",
        "gpus",
        "K",
        *[f"{s} s" for s in solvers],
        *[f"ours/{b}" for b in BASELINES],
        "ours/best",
        "topo plan from",
        "ours plan s",
        "slowest baseline plan s",
    ]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    ratios: dict[str, list[float]] = {b: [] for b in BASELINES}
    best_by_preset: dict[str, list[float]] = defaultdict(list)
    multi_server: list[float] = []
    plan_times: dict[str, list[float]] = {s: [] for s in solvers}
    for path in files:
        problem = distplan.load_instance(path)
        preset = path.stem.split("__")[1] if path.stem.count("__") == 2 else "?"
        objectives: dict[str, float | None] = {}
        seconds: dict[str, float] = {}
        source = "-"
        for solver in solvers:
            result, seconds[solver] = run(problem, solver, args.repeats, args.time_limit)
            objectives[solver] = result.objective if result.status in HAS_PLAN else None
            plan_times[solver].append(seconds[solver])
            if solver == OURS:
                source = result.metrics.get("plan_source", "-")
        ours = objectives[OURS]
        row_ratios = []
        for baseline in BASELINES:
            base = objectives[baseline]
            if ours is not None and base is not None:
                ratios[baseline].append(ours / base)
                row_ratios.append(f"{ours / base:.3f}")
            else:
                row_ratios.append("-")
        solved = [v for b in BASELINES if (v := objectives[b]) is not None]
        best_ratio = ours / min(solved) if ours is not None and solved else None
        if best_ratio is not None:
            best_by_preset[preset].append(best_ratio)
            if len(set(problem.cluster.server_of_gpu)) > 1 and problem.cluster.network is not None:
                multi_server.append(best_ratio)
        row = [
            path.stem,
            str(len(problem.layers)),
            str(problem.num_gpus),
            str(problem.microbatches),
            *[fmt(objectives[s]) for s in solvers],
            *row_ratios,
            fmt(best_ratio, 3),
            source,
            f"{seconds[OURS]:.2f}",
            f"{max(seconds[b] for b in BASELINES):.2f}",
        ]
        print(" | ".join(row))
        sys.stdout.flush()
    print()
    print("ratio ours/baseline (iteration time, lower is better) over instances both solved:")
    for baseline, values in ratios.items():
        print(summary(baseline, values))
    print("ratio ours/best baseline of the instance, per preset:")
    for preset, values in sorted(best_by_preset.items()):
        print(summary(preset, values))
    print(summary("multi-server presets (network form)", multi_server))
    print(f"median planning seconds (median of {args.repeats} runs each):")
    for solver, values in plan_times.items():
        if values:
            print(f"  {solver}: median {statistics.median(values):.2f}, max {max(values):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
