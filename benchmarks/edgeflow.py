"""EdgeFlow benchmark: every shipped edgeflow instance x every edgeflow solver.

Prints one row per instance (model x device preset) with the simulated latency
(ms) of each solver, the ratio of ours (``edgeflow``) to the best single device,
to HEFT and to the best baseline, measured in the same run, the bytes ours moves,
and planning times (median of ``--repeats`` runs for ours, one run for the rest).
Solvers come from the registry (every ``edgeflow`` solver, exact ones unless
``--no-exact``). Instances: the shipped ones, or the files / folders given (e.g.
instances imported with other devices by ``distplan import paleo --devices FILE``).

    python benchmarks/edgeflow.py [INSTANCE.json | DIR ...] [--repeats 3] [--time-limit 10]
                                  [--filter vgg16] [--no-exact]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import distplan
from distplan.models.result import HAS_PLAN
from distplan.solvers.bench.timing import timed_solve
from distplan.solvers.registry import solvers

OURS = "edgeflow"
INSTANCES = Path(__file__).resolve().parents[1] / "instances" / "edgeflow"


run = timed_solve


def ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.1f}"


def instance_paths(sources: list[Path]) -> list[Path]:
    """The ``.json`` instance files named or held (directly) by the folders named, sorted by name."""
    paths = []
    for source in sources:
        if source.is_dir():
            paths += list(source.glob("*.json"))
        else:
            paths.append(source)
    return sorted(paths, key=lambda p: p.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "instances",
        nargs="*",
        type=Path,
        help="instance files or folders of them (default: the shipped edgeflow instances)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of ours per instance (median time)"
    )
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per solve")
    parser.add_argument("--filter", default="", help="only instances whose name contains this")
    parser.add_argument("--no-exact", action="store_true", help="skip the CP-SAT solver")
    args = parser.parse_args(argv)
    names = [s.name for s in solvers("edgeflow") if not (args.no_exact and s.exact)]
    baselines = [s.name for s in solvers("edgeflow") if s.role.value == "baseline"]
    others = [n for n in names if n != OURS]
    header = [
        "instance",
        "layers",
        "devs",
        *others,
        OURS,
        "ours/single",
        "ours/heft",
        "ours/best-bl",
        "MB moved",
        "t_ours s",
        "t_max-other s",
    ]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    worse = []
    for path in instance_paths(args.instances or [INSTANCES]):
        if args.filter not in path.stem:
            continue
        problem = distplan.load_instance(path)
        ours, t_ours = run(problem, OURS, args.repeats, args.time_limit)
        if ours.status not in HAS_PLAN or ours.objective is None:
            print(f"{path.stem}: ours found no plan ({ours.reason})")
            continue
        latency: dict[str, float | None] = {OURS: ours.objective}
        slowest = 0.0
        for name in others:
            result, seconds = run(problem, name, 1, args.time_limit)
            latency[name] = result.objective if result.status in HAS_PLAN else None
            slowest = max(slowest, seconds)
        best_baseline = min(v for b in baselines if (v := latency[b]) is not None)
        ratio = {
            key: ours.objective / v for key in ("single-device", "heft") if (v := latency[key])
        }
        if ours.objective > best_baseline * (1 + 1e-9):
            worse.append(path.stem)
        moved = ours.metrics.get("evaluation", {}).get("bytes_moved", 0.0) / 1e6
        row = [
            path.stem,
            str(len(problem.layers)),
            str(len(problem.devices)),
            *(ms(latency[n]) for n in others),
            ms(latency[OURS]),
        ]
        row += [
            f"{ratio.get('single-device', float('nan')):.3f}",
            f"{ratio.get('heft', float('nan')):.3f}",
            f"{ours.objective / best_baseline:.3f}",
        ]
        row += [f"{moved:.2f}", f"{t_ours:.2f}", f"{slowest:.2f}"]
        print(" | ".join(row), flush=True)
    print(
        f"\nlatencies in ms (simulated); ours no worse than every baseline on all but: {worse or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
