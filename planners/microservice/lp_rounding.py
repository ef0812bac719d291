"""LP rounding: randomised rounding of the ILP's relaxation, repair, fill-up.

Guarantee: none a priori. The rounding is randomised and its repair may drop
deployments, and nothing bounds that loss; the only guarantee is a posteriori:
when the LP is solved to optimality its optimum is a proven upper bound, so
``bound`` brackets the plan and ``metrics["lp_gap"]`` states how far the plan
may be from the optimum on this instance.

Time limit: model building and the LP count against it. When the LP is not
solved to optimality in time (or its building is cut off), the LP values are
not used -- a cut-off LP proves nothing and its point may be all zeros -- and
the greedy plan (:func:`~.greedy.greedy_placement`, in the time left) is
returned with status ``time_limit``, no bound of its own and
``metrics["plan_from"]`` saying so.

Work at scale (option defaults; every cut is in work units, not seconds, so
the plan does not depend on the clock when the limit is not reached):

* ``lp_method="auto"``: HiGHS's simplex when the LP has at most
  :data:`SIMPLEX_MAX_COLUMNS` columns, else its interior point method with
  crossover, several times faster on large models (30 servers x 136
  services, ~32,000 columns: 3-5 s instead of 10-19 s). The simplex's vertex
  optimum rounds to better plans on small models (1-2 % on 6 x 15).
* ``rounds`` and ``fill_up_evaluations`` default to 20 and 150 up to
  :data:`FULL_WORK_PAIRS` candidate (service, server) pairs, and shrink in
  proportion above it (at least 3 and 30).

1. Solve the LP relaxation of the ILP (:func:`~.ilp.build_milp` with every
   variable continuous) over merged layer units and without the optional
   tightening rows and instance-rounding inequalities (they lower the bound a
   lot on large instances -- 27,678 to 22,667 requests/s on 30 x 136 -- but
   make the LP several times slower, and on small instances their LP rounds
   to slightly worse plans; :mod:`.formulation`, :func:`~.ilp.build_milp`).
   Its optimum is a valid upper bound on the served requests/s, reported as
   ``bound`` with ``metrics["lp_gap"]`` the plan's relative gap to it.
   (Without the rounding rows it equals the closed-form compute bound on the
   Docker Hub instances; :mod:`.ilp` says why.)
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
from ...solvers.milp import BuildTimeout, solve_milp
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .allocation import ThroughputLP
from .formulation import FormulationIndex, formulation_index
from .greedy import DEFAULT_SCORE, fill_greedily, greedy_placement
from .growth import grow_deployments
from .ilp import MilpModel, build_milp
from .local_search import improve_instances
from .placement import Placement, empty_output, solver_output

__all__ = ["DENSITIES", "allocate", "round_once", "solve_lp_round"]

#: LPs with more columns are solved by interior point rather than simplex.
SIMPLEX_MAX_COLUMNS = 20_000
#: Candidate pairs up to which the default rounds and fill-up evaluations apply in full.
FULL_WORK_PAIRS = 1_000
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


def _greedy_fallback(problem: MicroserviceProblem, options: SolveOptions, why: str) -> SolverOutput:
    """The greedy plan in the time left, when the LP is not solved in time (module docstring)."""
    placement = greedy_placement(problem, options)
    return solver_output(
        problem,
        placement.instances,
        placement.stored,
        placement.borrowed,
        SolveStatus.TIME_LIMIT,
        None,
        {"plan_from": f"greedy ({why})"},
    )


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
    deterministic=False,
    kind="microservice",
    role=Role.APPROXIMATION,
    needs=("pulp", "highspy"),
    auto_rank=10,
    description="LP relaxation, randomised rounding of deployments and layer sources, repair, fill-up",
    extra_options={
        "rounds": Option(
            "number of seeded rounding rounds (default 20, fewer on large instances)",
            types=("int",),
            minimum=1,
        ),
        "fill_up": Option(
            "make more pairs deployable in the best round by LP gain per byte (default true)",
            types=("bool",),
        ),
        "fill_up_evaluations": Option(
            "most throughput-LP solves of the fill-up (default 150, fewer on large instances)",
            types=("int",),
            minimum=0,
        ),
        "lp_method": Option(
            "HiGHS LP algorithm: 'auto' (default), 'simplex', 'ipm', 'ipm_no_crossover' or 'pdlp'",
            choices=("auto", "simplex", "ipm", "ipm_no_crossover", "pdlp"),
        ),
    },
)
def solve_lp_round(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Round the LP relaxation several times, keep the best repaired plan, fill it up."""
    index = formulation_index(problem, merge_layers=True)
    if not index.pairs:
        return empty_output(problem)
    work = min(1.0, FULL_WORK_PAIRS / len(index.pairs))
    rounds = int(options.option("rounds", max(3, round(20 * work))))
    evaluations = int(options.option("fill_up_evaluations", max(30, round(150 * work))))
    if rounds < 1:
        raise BadInput("options.rounds", f"must be at least 1, got {rounds}")
    clock = [time.monotonic()]
    deadline = time.monotonic() + options.remaining()
    try:
        milp = build_milp(
            problem,
            relax=True,
            index=index,
            tighten=False,
            rounding_cuts="none",
            deadline=deadline,
        )
        method = options.option("lp_method", "auto")
        if method == "auto":
            columns = len(milp.model.variables())
            method = "simplex" if columns <= SIMPLEX_MAX_COLUMNS else "ipm"
        outcome = solve_milp(milp.model, options, lp_method=method)
    except BuildTimeout:
        return _greedy_fallback(problem, options, "LP not built within the time limit")
    if outcome.status is not SolveStatus.OPTIMAL or outcome.objective is None:
        return _greedy_fallback(problem, options, f"LP ended with status {outcome.status}")
    lp_bound = outcome.objective
    values = _values(milp)
    clock.append(time.monotonic())
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
