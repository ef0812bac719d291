"""``lp_round``: relax and fix -- LP of the storage-relaxed integer allocation, rounding, layers, re-allocation.

(Registered as ``lp_round`` for continuity. The randomised rounding of the
placement LP it replaces served 4-6 % less than the best proven bound on the
held-out Docker Hub instances: that LP serves demand exactly with fractional
instance counts, so its deployments round badly.)

Why: on the Docker Hub instances storage and borrowing barely bind, integer
instance counts do (:mod:`.ilp` has the diagnosis). So deployments are chosen
on the problem without storage, where integrality is kept, and only then fitted
into the storage, registry and link budgets.

1. **Relaxation** -- the LP relaxation of the integer allocation
   (:class:`~.integer_allocation.AllocationModel`) over every candidate pair:
   storage, registry and link budgets dropped, instance-rounding rows kept.
   Its optimum is a proven upper bound on the optimum
   (:mod:`.integer_allocation` says why), reported as ``bound``
   (:func:`distplan.solve` also merges the closed-form bound of
   :mod:`.bounds`). On the held-out 14 x 60 instance it equals the root LP of
   the full ILP (14998.6 requests/s).
2. **Rounding** -- the same MILP restricted to instance counts between the
   floor and the ceiling of the LP's (the RENS neighbourhood of Berthold,
   "RENS -- the optimal rounding", Math. Prog. Comp. 2014, set up by hand
   because HiGHS spends seconds on root cuts of the full MILP first: 30 x 136,
   a 22,235 requests/s rounding in under 2 s instead of 22,112 after 9 s),
   stopped after ``relaxed_nodes`` branch-and-bound nodes.
3. **Deployment choice** -- the rounded deployments, by decreasing served
   requests/s, get their layers through :meth:`~.placement.Placement.layer_plan`
   (stored or borrowed where they still fit; a deployment that fits nowhere is
   dropped); then every other candidate pair, by decreasing demand in its
   reach, gets its layers if they still fit, so the fill-up may use it. The
   rounded counts are admitted.
4. **Fill** -- the greedy fill-up (:func:`~.greedy.fill_greedily`) alternates
   with swap moves (:func:`~.local_search.improve_instances`) until neither
   changes anything.

(A further step, the integer allocation over the deployable pairs from the
rounded counts, was measured and dropped: it never served more than the
rounded counts did and cost 2-3 s at 30 x 136.)

Guarantee: none a priori (step 3 may drop deployments; step 2 searches a
restricted neighbourhood and stops at a node limit). A posteriori, ``bound``
brackets the plan and ``metrics["bound_gap"]`` says how far the plan may be
from the optimum on this instance (held-out Docker Hub instances, 1 thread:
benchmarks/microservice.py, table ``heldout``).

Time: steps 1-2 plan to use at most ``work_seconds`` (default 8 s) or the
time limit when smaller, the LP up to half of it. Model building counts. When
the LP is not solved in its share, the fill-up allocates alone (status
``time_limit``, no LP bound); the plan is always valid.

Deterministic per seed when the rounding ends by its node limit (the usual
case: the work limit is a node count); a time share that stops it first makes
the plan depend on the clock.
"""

from __future__ import annotations

import math
import time

from ...models.microservice import MicroserviceProblem
from ...models.result import Role, SolveStatus, relative_gap
from ...solvers.milp import BuildTimeout
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .formulation import FormulationIndex, formulation_index
from .greedy import DEFAULT_SCORE, fill_greedily
from .integer_allocation import AllocationModel, AllocationOutcome, Pair
from .local_search import improve_instances
from .placement import Placement, empty_output, solver_output

__all__ = ["choose_layers", "fit_allocation", "solve_lp_round"]

#: Default branch-and-bound node limit of the rounding sub-MILP.
RELAXED_NODES = 20
#: Default seconds the LP and the rounding plan to use (the LP up to half).
WORK_SECONDS = 8.0


def choose_layers(
    problem: MicroserviceProblem, index: FormulationIndex, relaxed: AllocationOutcome
) -> Placement:
    """Step 2 of the module docstring: layers for the relaxation's deployments, then for any pair.

    Returns
    -------
    Placement
        Stored and borrowed layers, no instances.
    """
    placement = Placement(problem)
    reach: dict[Pair, float] = {}
    for (i, r), rate in index.demand.items():
        for n in problem.reach(r):
            reach[(i, n)] = reach.get((i, n), 0.0) + rate
    chosen = sorted(relaxed.counts, key=lambda pair: (-relaxed.served.get(pair, 0.0), pair))
    rest = sorted(
        (pair for pair in index.pairs if pair not in relaxed.counts),
        key=lambda pair: (-reach.get(pair, 0.0), pair),
    )
    for i, n in [*chosen, *rest]:
        if placement.deployable(i, n):
            continue
        plan = placement.layer_plan(i, n, 0)
        if plan is not None:
            placement.apply(i, n, 0, plan)
    return placement


def fit_allocation(
    problem: MicroserviceProblem,
    index: FormulationIndex,
    allocation: AllocationOutcome,
    *,
    deadline: float = math.inf,
) -> Placement:
    """A valid placement from a storage-relaxed allocation: steps 3 and 4 of the module docstring.

    Parameters
    ----------
    problem, index:
        The problem and its index sets.
    allocation:
        Instance counts and served flows over candidate pairs (budgets ignored).
    deadline:
        ``time.monotonic()`` value after which the fill-up stops.

    Returns
    -------
    Placement
        Layers for the deployments that fit, their counts, filled up.
    """
    placement = choose_layers(problem, index, allocation)
    for (i, n), count in sorted(allocation.counts.items()):
        placement.admit(i, n, count)
    fill_greedily(placement, score=DEFAULT_SCORE, deadline=deadline)
    while improve_instances(placement, deadline=deadline) and time.monotonic() < deadline:
        fill_greedily(placement, score=DEFAULT_SCORE, deadline=deadline)
    return placement


def _rounding_window(values: dict[Pair, float]) -> dict[Pair, tuple[int, int]]:
    """Instance counts between the floor and the ceiling of the LP's (1e-6 slack)."""
    return {
        pair: (math.floor(value + 1e-6), math.ceil(value - 1e-6)) for pair, value in values.items()
    }


@register_solver(
    "lp_round",
    deterministic=False,
    kind="microservice",
    role=Role.APPROXIMATION,
    needs=("pulp", "highspy"),
    auto_rank=10,
    description="Relax and fix: LP of the storage-relaxed integer allocation, RENS rounding, "
    "layers fitted, greedy fill-up",
    extra_options={
        "relaxed_nodes": Option(
            f"node limit of the rounding sub-MILP (default {RELAXED_NODES})",
            types=("int",),
            minimum=1,
        ),
        "work_seconds": Option(
            f"most seconds the LP and the rounding plan to use (default {WORK_SECONDS:g}; "
            "the time limit still applies)",
            types=("float",),
            minimum=1e-9,
        ),
    },
)
def solve_lp_round(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Relax and fix (module docstring)."""
    index = formulation_index(problem, merge_layers=True)
    if not index.pairs:
        return empty_output(problem)
    relaxed_nodes = int(options.option("relaxed_nodes", RELAXED_NODES))
    work = float(options.option("work_seconds", WORK_SECONDS))
    deadline = time.monotonic() + options.remaining()
    budget_end = time.monotonic() + min(work, options.remaining())
    clock = [time.monotonic()]

    def share(fraction: float) -> SolveOptions:
        return options.within(max(0.0, fraction * (budget_end - time.monotonic())))

    try:
        model = AllocationModel(problem, index, index.pairs, deadline=budget_end)
        lp_bound, values = model.relaxation(share(0.5))
        clock.append(time.monotonic())
        rounded = (
            model.solve(share(1.0), window=_rounding_window(values), max_nodes=relaxed_nodes)
            if lp_bound is not None
            else AllocationOutcome(SolveStatus.NO_SOLUTION)
        )
    except BuildTimeout:
        lp_bound, rounded = None, AllocationOutcome(SolveStatus.NO_SOLUTION)
    clock.append(time.monotonic())
    placement = fit_allocation(problem, index, rounded, deadline=deadline)
    clock.append(time.monotonic())
    notes: dict[str, object] = (
        {"lp_objective": lp_bound}
        if lp_bound is not None
        else {"plan_from": "greedy fill-up alone (the LP was not solved within the time limit)"}
    )
    phases = ("lp", "rounding", "layers_and_fill_up")
    output = solver_output(
        problem,
        placement.instances,
        placement.stored,
        placement.borrowed,
        SolveStatus.TIME_LIMIT if lp_bound is None or options.expired() else SolveStatus.FEASIBLE,
        lp_bound,
        {
            **notes,
            "rounded_objective": rounded.objective,
            "rounded_status": str(rounded.status),
            "phase_seconds": {
                name: round(b - a, 3) for name, a, b in zip(phases, clock, clock[1:], strict=False)
            },
        },
    )
    output.metrics["bound_gap"] = relative_gap(output.objective, lp_bound)
    return output
