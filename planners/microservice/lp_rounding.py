"""LP rounding: randomised rounding of the ILP's relaxation, repair, fill-up.

1. Solve the LP relaxation of the ILP (:func:`~.ilp.build_milp` with every
   variable continuous) over merged layer units and without the optional
   tightening rows (:mod:`.formulation`, :func:`~.ilp.build_milp`). Its optimum
   is a valid upper bound on the served requests/s, reported as ``bound`` with
   ``metrics["lp_gap"]`` the plan's relative gap to it. (On the shipped
   instances it is close to the compute-only bound: fractional deployments
   make storage nearly free in the relaxation.)
2. Rounds (option ``rounds``), drawing from ``numpy.random.default_rng(seed)``
   in a fixed order:

   * keep each deployment ``(i, n)`` with probability ``min(1, g * d[i,n])``,
     ``g`` cycling through :data:`DENSITIES` to vary how many are kept;
   * for every layer unit a kept deployment needs, pick its source -- store it
     on ``n`` or borrow it from neighbour ``m`` -- with probability proportional
     to ``s[u,n]`` and ``b[u,n,m]``;
   * repair: admit the kept deployments in decreasing LP-served requests/s per
     image byte, each with its picked sources where they still fit, else the
     cheapest sources (:meth:`~.placement.Placement.layer_plan`); a deployment
     whose layers fit no budget any more is dropped;
   * score the round: instance counts of the throughput LP
     (:class:`~.allocation.ThroughputLP`) on the deployable pairs rounded
     down, then a greedy fill-up on those pairs; demand routed by max-flow.

3. The best round is allocated again with the full fill-up: the greedy may
   store or borrow more layers with the leftover storage
   (:func:`~.greedy.fill_greedily`), alternating with swap improvements
   (:func:`~.local_search.improve_instances`).
4. Fill-up pass (option ``fill_up``): from the best round's layers, more pairs
   are made deployable by throughput-LP gain per new byte
   (:func:`~.growth.grow_deployments`, at most ``fill_up_evaluations`` LP
   solves) and allocated as in 3; kept if it serves more.

Deterministic per seed (no step depends on the clock unless a time limit
stops it early).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ...models.errors import BadInput
from ...models.microservice import MicroserviceProblem
from ...models.result import Role, SolveStatus, relative_gap
from ...solvers.milp import solve_milp
from ...solvers.options import SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .allocation import ThroughputLP
from .formulation import FormulationIndex, formulation_index
from .greedy import DEFAULT_SCORE, fill_greedily
from .growth import grow_deployments
from .ilp import MilpModel, build_milp
from .local_search import improve_instances
from .placement import Placement, empty_output, solver_output

__all__ = ["DENSITIES", "allocate", "round_once", "solve_lp_round"]

#: Multipliers of the LP deployment values, cycled over the rounds.
DENSITIES = (1.0, 0.5, 1.5, 0.75, 1.25)


def allocate(
    placement: Placement, lp: ThroughputLP, *, full: bool = True, deadline: float = math.inf
) -> float:
    """Deploy instances on a layer-only placement; return the served requests/s.

    The throughput LP's instance counts rounded down, then a greedy fill-up on
    the deployable pairs. With ``full``, the fill-up may also store or borrow
    more layers, and swap improvements alternate with fill-ups until neither
    changes anything.
    """
    pairs = [pair for pair in lp.pairs if placement.deployable(*pair)]
    lp.set_enabled(pairs)
    for (i, n), count in sorted(lp.floor_counts(lp.instances()).items()):
        placement.admit(i, n, count)
    fill_greedily(placement, score=DEFAULT_SCORE, deadline=deadline, new_layers=full)
    if full:
        while improve_instances(placement, deadline=deadline) and time.monotonic() < deadline:
            fill_greedily(placement, score=DEFAULT_SCORE, deadline=deadline)
    return placement.served_rps


def round_once(
    problem: MicroserviceProblem,
    index: FormulationIndex,
    values: dict[str, dict],
    rng: np.random.Generator,
    density: float,
) -> Placement:
    """One randomised rounding of the LP values with its repair (module docstring); layers only."""
    deployed, store, borrow, served = (
        values["deployed"],
        values["store"],
        values["borrow"],
        values["served"],
    )
    draws = rng.random(len(index.pairs))
    kept = [
        pair
        for pair, u in zip(index.pairs, draws, strict=True)
        if u < min(1.0, density * deployed[pair])
    ]
    kept.sort(key=lambda pair: (-served[pair] / max(problem.image_bytes(pair[0]), 1), pair))
    placement = Placement(problem)
    for i, n in kept:
        prefer: dict[str, int] = {}
        for unit in index.service_units[i]:
            sources = [(n, store.get((unit, n), 0.0))]
            sources += [(m, borrow.get((unit, n, m), 0.0)) for m in problem.neighbours[n]]
            weights = np.array([max(w, 0.0) for _, w in sources])
            total = weights.sum()
            if total <= 1e-9:
                continue
            source = sources[int(rng.choice(len(sources), p=weights / total))][0]
            for digest in index.unit_layers[unit]:
                prefer[digest] = source
        plan = placement.layer_plan(i, n, 0, prefer) or placement.layer_plan(i, n, 0)
        if plan is not None:
            placement.apply(i, n, 0, plan)
    return placement


def _values(milp: MilpModel) -> dict[str, dict]:
    """LP values by variable family, plus the served requests/s of every pair."""
    served: dict[tuple[int, int], float] = {}
    for (i, _, n), var in milp.flow.items():
        served[(i, n)] = served.get((i, n), 0.0) + (var.value() or 0.0)
    return {
        "deployed": {key: var.value() or 0.0 for key, var in milp.deployed.items()},
        "store": {key: var.value() or 0.0 for key, var in milp.store.items()},
        "borrow": {key: var.value() or 0.0 for key, var in milp.borrow.items()},
        "served": {pair: served.get(pair, 0.0) for pair in milp.deployed},
    }


@register_solver(
    "lp_round",
    kind="microservice",
    role=Role.APPROXIMATION,
    needs=("pulp", "highspy"),
    auto_rank=10,
    description="LP relaxation, randomised rounding of deployments and layer sources, repair, fill-up",
    extra_options={
        "rounds": "number of seeded rounding rounds (default 20)",
        "fill_up": "make more pairs deployable in the best round by LP gain per byte (default true)",
        "fill_up_evaluations": "most throughput-LP solves of the fill-up (default 150)",
    },
)
def solve_lp_round(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Round the LP relaxation several times, keep the best repaired plan, fill it up."""
    rounds = int(options.option("rounds", 20))
    evaluations = int(options.option("fill_up_evaluations", 150))
    if rounds < 1:
        raise BadInput("options.rounds", f"must be at least 1, got {rounds}")
    index = formulation_index(problem, merge_layers=True)
    if not index.pairs:
        return empty_output(problem)
    clock = [time.monotonic()]
    milp = build_milp(problem, relax=True, index=index, tighten=False)
    outcome = solve_milp(milp.model, options)
    if not outcome.has_solution or outcome.objective is None:
        raise RuntimeError(f"the LP relaxation ended with status {outcome.status}")
    lp_bound = outcome.objective
    values = _values(milp)
    clock.append(time.monotonic())
    deadline = time.monotonic() + options.remaining()
    rng = np.random.default_rng(options.seed)
    best: tuple[float, Placement] | None = None  # (served, layers)
    done = 0
    with ThroughputLP(problem, index) as lp:
        for k in range(rounds):
            if k > 0 and time.monotonic() >= deadline:
                break
            layers = round_once(problem, index, values, rng, DENSITIES[k % len(DENSITIES)])
            served = allocate(layers.layers_only(), lp, full=False, deadline=deadline)
            done += 1
            if best is None or served > best[0] + 1e-9:
                best = (served, layers)
        assert best is not None
        clock.append(time.monotonic())
        rounded, layers = best
        full = layers.layers_only()
        served = allocate(full, lp, deadline=deadline)
        clock.append(time.monotonic())
        filled = False
        if options.option("fill_up", True) and time.monotonic() < deadline:
            grown = layers.layers_only()
            lp.set_enabled([pair for pair in lp.pairs if grown.deployable(*pair)])
            grow_deployments(grown, lp, deadline=deadline, max_evaluations=evaluations)
            regrown = grown.layers_only()
            if allocate(regrown, lp, deadline=deadline) > served + 1e-9:
                full, filled = regrown, True
    clock.append(time.monotonic())
    phases = ("lp", "rounds", "allocation", "fill_up")
    output = solver_output(
        problem,
        full.instances,
        full.stored,
        full.borrowed,
        SolveStatus.FEASIBLE,
        lp_bound,
        {
            "rounds": done,
            "lp_objective": lp_bound,
            "best_round_rps": rounded,
            "allocated_rps": served,
            "fill_up_improved": filled,
            "phase_seconds": {
                name: round(b - a, 3) for name, a, b in zip(phases, clock, clock[1:], strict=False)
            },
        },
    )
    output.metrics["lp_gap"] = relative_gap(output.objective, lp_bound)
    return output
