"""The exact solvers against brute-force optima on small random instances.

The brute force shares nothing with the formulations: it enumerates every
choice of stored layers per server (within storage and registry budgets) and
of borrowed layers per server (from neighbours that store them, within the
link budgets), derives which services each server can run, enumerates every
instance count vector per server within its compute, and routes demand by a
networkx maximum flow (one hop). The best value over all of them is the
optimum (only configurations whose deployable sets are maximal are routed:
more deployable services never serve less).
"""

from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest

import distplan
from distplan.models.microservice import (
    Demand,
    EdgeServer,
    ImageLayer,
    Microservice,
    MicroserviceProblem,
    ServerLink,
)
from distplan.models.result import SolveStatus

MB = 1_000_000
SEEDS = range(12)


def random_problem(seed: int) -> MicroserviceProblem:
    """2-3 servers on a line, 2-3 services over 4 layers with a shared base, random budgets."""
    rng = random.Random(seed)
    n_servers, n_services = rng.choice((2, 3)), rng.choice((2, 3))
    layers = [ImageLayer(digest=f"l{k}", size_bytes=rng.randint(20, 120) * MB) for k in range(4)]
    services = [
        Microservice(
            name=f"s{i}",
            image=f"s{i}",
            layers=sorted({"l0", f"l{1 + i}", *rng.sample(["l1", "l2", "l3"], rng.randint(0, 1))}),
            compute_per_instance=float(rng.choice((250, 500, 750))),
            service_rate_rps=float(rng.randint(5, 20)),
        )
        for i in range(n_services)
    ]
    servers = [
        EdgeServer(
            name=f"e{n}",
            storage_bytes=rng.randint(120, 260) * MB,
            compute_capacity=float(rng.choice((500, 1000, 1500))),
            registry_bandwidth_bytes_per_s=rng.choice((None, 2.0 * MB)),
        )
        for n in range(n_servers)
    ]
    links = [
        ServerLink(a=n, b=n + 1, bandwidth_bytes_per_s=rng.choice((0.5, 1.0, 2.0)) * MB)
        for n in range(n_servers - 1)
    ]
    demands = [
        Demand(service=i, region=r, rate_rps=round(rng.uniform(5, 40), 1))
        for i in range(n_services)
        for r in range(n_servers)
        if rng.random() < 0.7
    ]
    return MicroserviceProblem(
        name=f"random-{seed}",
        servers=servers,
        links=links,
        layers=layers,
        services=services,
        demands=demands,
        deployment_window_s=100.0,
    )


def _subsets(items: list[str]) -> list[frozenset[str]]:
    return [frozenset(c) for k in range(len(items) + 1) for c in itertools.combinations(items, k)]


def _served(problem: MicroserviceProblem, instances: dict[tuple[int, int], int]) -> float:
    """Maximum flow of the demand to the instances, one hop (networkx)."""
    graph = nx.DiGraph()
    for k, demand in enumerate(problem.demands):
        graph.add_edge("src", ("d", k), capacity=demand.rate_rps)
        for n in [demand.region, *problem.neighbours[demand.region]]:
            if instances.get((demand.service, n), 0):
                graph.add_edge(("d", k), ("x", demand.service, n))
    for (i, n), count in instances.items():
        if count:
            graph.add_edge(
                ("x", i, n), "dst", capacity=count * problem.services[i].service_rate_rps
            )
    if "src" not in graph or "dst" not in graph:
        return 0.0
    return float(nx.maximum_flow_value(graph, "src", "dst"))


def brute_force_optimum(problem: MicroserviceProblem) -> float:
    """The optimum served requests/s by exhaustive enumeration (module docstring)."""
    size = problem.layer_size
    digests = sorted(size)
    window = problem.deployment_window_s
    n_servers = len(problem.servers)
    store_options = []
    for server in problem.servers:
        budget = server.storage_bytes
        if server.registry_bandwidth_bytes_per_s is not None:
            budget = min(budget, server.registry_bandwidth_bytes_per_s * window)
        store_options.append([s for s in _subsets(digests) if sum(size[d] for d in s) <= budget])
    deployable_sets: set[tuple[frozenset[int], ...]] = set()
    for stored in itertools.product(*store_options):
        # per link, the layers each end borrows from the other: enumerate within the budget
        borrow_choices = []
        for link in problem.links:
            budget = link.bandwidth_bytes_per_s * window
            pairs = []
            for from_a in _subsets(sorted(stored[link.a] - stored[link.b])):
                for from_b in _subsets(sorted(stored[link.b] - stored[link.a])):
                    if sum(size[d] for d in from_a | from_b) <= budget:
                        pairs.append((link.b, from_a, link.a, from_b))
            borrow_choices.append(pairs)
        for choice in itertools.product(*borrow_choices):
            at_hand = [set(stored[n]) for n in range(n_servers)]
            for borrower_a, layers_a, borrower_b, layers_b in choice:
                at_hand[borrower_a] |= layers_a
                at_hand[borrower_b] |= layers_b
            deployable_sets.add(
                tuple(
                    frozenset(
                        i
                        for i, spec in enumerate(problem.services)
                        if set(spec.layers) <= at_hand[n]
                    )
                    for n in range(n_servers)
                )
            )
    # more deployable services never serve less: keep only the maximal configurations
    maximal = [
        config
        for config in deployable_sets
        if not any(
            other != config and all(a <= b for a, b in zip(config, other, strict=True))
            for other in deployable_sets
        )
    ]
    best = 0.0
    for deployable in maximal:
        per_server = []
        for n, services in enumerate(deployable):
            ordered = sorted(services)
            capacity = problem.servers[n].compute_capacity
            ranges = [
                range(int(capacity // problem.services[i].compute_per_instance) + 1)
                for i in ordered
            ]
            vectors = [
                dict(zip([(i, n) for i in ordered], counts, strict=True))
                for counts in itertools.product(*ranges)
                if sum(
                    c * problem.services[i].compute_per_instance
                    for c, i in zip(counts, ordered, strict=True)
                )
                <= capacity
            ]
            per_server.append(vectors)
        for combo in itertools.product(*per_server):
            instances: dict[tuple[int, int], int] = {}
            for part in combo:
                instances.update(part)
            best = max(best, _served(problem, instances))
    return best


@pytest.fixture(scope="module")
def optima() -> dict[int, float]:
    """Brute-force optimum of every random instance, by seed."""
    return {seed: brute_force_optimum(random_problem(seed)) for seed in SEEDS}


@pytest.mark.parametrize("solver", ["ilp", "cpsat"])
def test_exact_solvers_match_brute_force(optima: dict[int, float], solver: str) -> None:
    """On small random instances each exact solver proves optimal exactly the brute-force optimum."""
    for seed in SEEDS:
        result = distplan.solve(random_problem(seed), solver, time_limit=30.0, seed=0)
        assert result.status is SolveStatus.OPTIMAL, (seed, result.status)
        assert result.objective == pytest.approx(optima[seed], rel=1e-6, abs=1e-6), seed
        assert result.bound == pytest.approx(optima[seed], rel=1e-6, abs=1e-6), seed


def test_brute_force_is_not_trivial(optima: dict[int, float]) -> None:
    """The random instances constrain the optimum: it is positive and below the total demand on some."""
    assert all(value > 0 for value in optima.values())
    below = [s for s in SEEDS if optima[s] < random_problem(s).total_demand_rps - 1e-6]
    assert len(below) >= len(SEEDS) // 2


def test_rounding_cuts_are_valid_and_bite(optima: dict[int, float]) -> None:
    """The ILP relaxation with instance-rounding cuts stays above every optimum and is tighter on some."""
    from distplan.planners.microservice.ilp import build_milp
    from distplan.solvers.milp import solve_milp
    from distplan.solvers.options import SolveOptions

    tighter = 0
    for seed in SEEDS:
        problem = random_problem(seed)
        values = {}
        for cuts in ("all", "none"):
            model = build_milp(problem, relax=True, rounding_cuts=cuts).model
            values[cuts] = solve_milp(model, SolveOptions()).objective
        assert values["all"] >= optima[seed] - 1e-6, seed
        tighter += values["all"] < values["none"] - 1e-6
    assert tighter >= 1


def test_cpsat_scaling_exact_on_decimals_and_safe_otherwise() -> None:
    """CP-SAT scales decimal data exactly; with a non-decimal size it falls back and still meets the optimum's bracket."""
    from distplan.planners.microservice.cp_model import exact_scale, scaling_of

    assert exact_scale([250.0, 12.5, 0.1]) == 10
    assert exact_scale([1 / 3]) is None
    problem = random_problem(3)
    assert scaling_of(problem).exact
    odd = problem.model_copy(
        update={
            "services": [
                s.model_copy(update={"compute_per_instance": s.compute_per_instance + 1 / 3})
                for s in problem.services
            ]
        }
    )
    odd = MicroserviceProblem.model_validate(odd.model_dump())
    assert not scaling_of(odd).exact
    result = distplan.solve(odd, "cpsat", time_limit=30.0, seed=0)
    ilp = distplan.solve(odd, "ilp", time_limit=30.0, seed=0)
    assert result.metrics["exact_data"] is False
    assert ilp.status is SolveStatus.OPTIMAL
    assert result.objective <= ilp.objective * (1 + 1e-6) + 1e-9
    assert result.bound >= ilp.objective * (1 - 1e-6) - 1e-9
