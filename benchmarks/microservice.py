"""Microservice placement benchmark: shipped instances, held-out instances, storage sweep.

Three tables (choose with ``--table``):

``shipped``
    Every shipped instance x every microservice solver: served requests/s,
    instances, status, proven bound, the solver's own gap to it, distance to
    the best proven bound, and the
    planning time (median of ``--repeats`` runs; exact solvers run once, up to
    ``--time-limit``). A summary line per instance gives the best of ours (max
    of ilp, cpsat, lp_round, greedy) over ``image_locality`` and
    ``layer_oblivious``.
``heldout``
    The same on instances drawn by the Docker Hub importer with seeds the
    shipped set does not use (sizes in ``HELDOUT``), plus the diagnosis of the
    exact models: the root LP relaxation of the ILP (with its valid
    inequalities; a proven bound, counted in the best proven bound) and the
    closed-form compute bound against the best plan.
``sweep``
    Served requests/s of every solver as each server's storage goes from 10 %
    to 100 % of the image bytes demanded in its region (the importer's ``B_r``:
    the sum of the image sizes, not deduplicated, of the services demanded in
    region ``r``), on instances of ``--sweep-size`` drawn with several seeds. The
    registry bandwidth is scaled with the storage (the importer's pull-budget
    ratio is kept). Each cell is the mean over the seeds; the last columns are
    ``lp_round`` over ``image_locality`` and over ``layer_oblivious``.

    python benchmarks/microservice.py --table shipped [--time-limit 60] [--repeats 3]
    python benchmarks/microservice.py --table heldout [--time-limit 60]
    python benchmarks/microservice.py --table sweep [--sweep-size 8x30] [--sweep-time-limit 5]

Only the shipped table runs without the Docker Hub data file (``--data``,
default ``$DISTPLAN_IMAGE_LAYERS`` or ``/work/shared/data/image_layers/...``).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import distplan
from distplan.models.microservice import MicroserviceProblem
from distplan.models.result import HAS_PLAN, SolveResult
from distplan.solvers.bench.timing import timed_solve
from distplan.solvers.registry import solvers

EXACT = tuple(spec.name for spec in solvers("microservice") if spec.exact)
OURS = ("ilp", "cpsat", "lp_round", "greedy")
#: Every registered microservice solver, exact ones first.
SOLVERS = (*EXACT, *(spec.name for spec in solvers("microservice") if not spec.exact))
INSTANCES = Path(__file__).resolve().parents[1] / "instances" / "microservice"
DEFAULT_DATA = Path(
    os.environ.get(
        "DISTPLAN_IMAGE_LAYERS", "/work/shared/data/image_layers/top150_images_dockerhub.json"
    )
)
#: Held-out (servers, services, seed): the shipped instances use seeds 1-4.
HELDOUT = ((6, 15, 101), (6, 15, 102), (14, 60, 103), (20, 100, 104), (30, 136, 105))
SWEEP_FRACTIONS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
SWEEP_SEEDS = (201, 202, 203)


run = timed_solve


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def best_bound(results: dict[str, SolveResult], extra: float | None = None) -> float | None:
    """The smallest proven upper bound any solver reported (each includes the closed-form bound).

    ``extra`` is another proven bound (the root LP of the held-out table).
    """
    bounds = [r.bound for r in results.values() if r.bound is not None and math.isfinite(r.bound)]
    if extra is not None:
        bounds.append(extra)
    return min(bounds) if bounds else None


def solver_table(
    problem: MicroserviceProblem, args: argparse.Namespace, extra_bound: float | None = None
) -> tuple[int, dict]:
    """Print one instance's table; return the number of failed solves and the results."""
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
        "gap %",
        "below best bound %",
        "plan s",
    ]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    results, seconds = {}, {}
    failures = 0
    for solver in SOLVERS:
        repeats = 1 if solver in EXACT else max(1, args.repeats)
        results[solver], seconds[solver] = run(
            problem, solver, repeats, args.time_limit, args.threads
        )
        if results[solver].status not in HAS_PLAN or "violations" in results[solver].metrics:
            failures += 1
    bound = best_bound(results, extra_bound)
    for solver in SOLVERS:
        result = results[solver]
        served = result.objective if result.has_plan else None
        below = None if served is None or not bound else 100 * (bound - served) / bound
        print(
            " | ".join(
                [
                    solver,
                    fmt(served),
                    str(result.metrics.get("instances_deployed", "-")),
                    str(result.status),
                    fmt(result.bound),
                    fmt(None if result.gap is None else 100 * result.gap, ".2f"),
                    fmt(below, ".2f"),
                    fmt(seconds[solver], ".2f"),
                ]
            )
        )
    best = max((results[s].objective or 0.0) for s in OURS)
    print(f"best proven bound: {fmt(bound)}")
    for baseline in ("image_locality", "layer_oblivious"):
        base = results[baseline].objective
        print(f"best of ours / {baseline}: {fmt(best / base if base else None, '.3f')}")
        lp_round = results["lp_round"].objective or 0.0
        print(f"lp_round / {baseline}: {fmt(lp_round / base if base else None, '.3f')}")
    return failures, results


def root_bound(problem: MicroserviceProblem) -> tuple[float | None, float]:
    """The ILP's root LP relaxation (all valid inequalities), solved to optimality, and its seconds.

    A proven upper bound (None when the LP does not finish in 300 s).
    """
    from distplan.planners.microservice.ilp import build_milp
    from distplan.solvers.milp import solve_milp
    from distplan.solvers.options import SolveOptions

    start = time.perf_counter()
    model = build_milp(problem, relax=True).model
    outcome = solve_milp(model, SolveOptions(time_limit=300.0), lp_method="ipm")
    root = outcome.objective if outcome.status.value == "optimal" else None
    return root, time.perf_counter() - start


def diagnosis(problem: MicroserviceProblem, root: float | None, seconds: float, results) -> None:
    """Root LP and closed-form compute bound against the best plan found."""
    from distplan.planners.microservice.bounds import throughput_upper_bound

    best = max((r.objective or 0.0) for r in results.values())
    closed = throughput_upper_bound(problem)
    above = None if root is None or not best else 100 * (root - best) / best
    print(
        f"diagnosis: root LP {fmt(root)} ({seconds:.1f} s), closed-form compute bound "
        f"{fmt(closed)}, best plan {fmt(best)}; root LP above best plan by {fmt(above, '.2f')} %"
    )


def with_storage_fraction(problem: MicroserviceProblem, fraction: float) -> MicroserviceProblem:
    """``problem`` with every server's storage at ``fraction`` of its region's demanded image bytes.

    The registry bandwidth keeps its ratio to the storage.

    Raises
    ------
    ValueError
        When some service can then run nowhere (the model's validation).
    """
    demanded = [0] * len(problem.servers)
    for demand in problem.demands:
        demanded[demand.region] += problem.image_bytes(demand.service)
    servers = []
    for n, server in enumerate(problem.servers):
        storage = math.floor(fraction * demanded[n])
        registry = server.registry_bandwidth_bytes_per_s
        if registry is not None and server.storage_bytes > 0:
            registry = max(1.0, registry * storage / server.storage_bytes)
        servers.append(
            server.model_copy(
                update={"storage_bytes": storage, "registry_bandwidth_bytes_per_s": registry}
            )
        )
    data = problem.model_dump()
    data["servers"] = [s.model_dump() for s in servers]
    data["name"] = f"{problem.name}-storage{round(100 * fraction)}"
    return MicroserviceProblem.model_validate(data)


def sweep_table(args: argparse.Namespace) -> int:
    """Print the storage sweep (module docstring); return the number of failed solves."""
    from distplan.planners.microservice.dockerhub import build_instance

    servers, services = (int(v) for v in args.sweep_size.split("x"))
    bases = [build_instance(args.data, servers, services, seed) for seed in SWEEP_SEEDS]
    print(
        f"\n## storage sweep: {servers} servers x {services} services, seeds "
        f"{', '.join(map(str, SWEEP_SEEDS))}; mean served requests/s (exact solvers "
        f"{args.sweep_time_limit:g} s, others {args.time_limit:g} s)"
    )
    header = ["storage %", *SOLVERS, "lp_round/image_locality", "lp_round/layer_oblivious"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    failures = 0
    for fraction in SWEEP_FRACTIONS:
        served: dict[str, list[float]] = {solver: [] for solver in SOLVERS}
        rejected = []
        for base in bases:
            try:
                problem = with_storage_fraction(base, fraction)
            except ValueError as exc:
                rejected.append(str(exc).splitlines()[0])
                continue
            for solver in SOLVERS:
                limit = args.sweep_time_limit if solver in EXACT else args.time_limit
                result = distplan.solve(problem, solver, time_limit=limit, seed=0)
                if not result.has_plan or "violations" in result.metrics:
                    failures += 1
                served[solver].append(result.objective or 0.0)
        if not served["lp_round"]:
            print(f"{round(100 * fraction)} | every seed rejected: {rejected[0]}")
            continue
        means = {solver: statistics.mean(values) for solver, values in served.items()}
        ratios = [
            fmt(means["lp_round"] / means[b] if means[b] else None, ".3f")
            for b in ("image_locality", "layer_oblivious")
        ]
        note = f" ({len(rejected)} seed(s) rejected)" if rejected else ""
        print(
            " | ".join(
                [f"{round(100 * fraction)}{note}", *(fmt(means[s]) for s in SOLVERS), *ratios]
            )
        )
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=("shipped", "heldout", "sweep"), default="shipped")
    parser.add_argument(
        "--time-limit", type=float, default=60.0, help="seconds per solve (binds the exact solvers)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each non-exact solver for the median time"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="worker threads of the exact backends"
    )
    parser.add_argument("--filter", default="", help="only instances whose name contains this")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Docker Hub layer file")
    parser.add_argument("--sweep-size", default="8x30", help="servers x services of the sweep")
    parser.add_argument(
        "--sweep-time-limit", type=float, default=5.0, help="seconds per exact solve in the sweep"
    )
    args = parser.parse_args(argv)

    failures = 0
    if args.table == "sweep":
        failures += sweep_table(args)
    elif args.table == "heldout":
        from distplan.planners.microservice.dockerhub import build_instance

        for servers, services, seed in HELDOUT:
            problem = build_instance(args.data, servers, services, seed)
            if args.filter not in problem.name:
                continue
            root, seconds = root_bound(problem)
            failed, results = solver_table(problem, args, extra_bound=root)
            failures += failed
            diagnosis(problem, root, seconds, results)
    else:
        files = sorted(
            (p for p in INSTANCES.glob("*.json") if args.filter in p.name),
            key=lambda p: len(p.read_bytes()),
        )
        for path in files:
            failures += solver_table(distplan.load_instance(path), args)[0]
    if failures:
        print(f"\n{failures} solve(s) without a valid plan", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
