"""The registered ``ilp`` solver: heuristic start, storage-relaxed MILP with exact layer checks, then the ILP.

The formulation is in :mod:`.ilp`; :func:`solve_ilp` says how the stages share
the time limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import pulp

from ...models.microservice import MicroserviceProblem
from ...models.result import Role, SolveStatus
from ...solvers.milp import MIP_REL_GAP, BuildTimeout, solve_milp
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .formulation import formulation_index
from .ilp import MilpModel, build_milp, read_placement, replay, start_values
from .placement import budget_violations, empty_output, solver_output
from .relaxed_bound import Check, Verdict, meets_bound, solve_storage_relaxed
from .warm_start import HINT_OPTIONS, backend_options, heuristic_start

__all__ = ["solve_ilp"]

logger = logging.getLogger(__name__)


@register_solver(
    "ilp",
    deterministic=False,
    kind="microservice",
    role=Role.EXACT,
    needs=("pulp", "highspy"),
    description="Exact ILP (PuLP; HiGHS with a MIP start, or CBC with backend='cbc'), "
    "after the storage-relaxed MILP's bound and plan",
    extra_options={
        "backend": Option("'highs' (default) or 'cbc'", choices=("highs", "cbc")),
        "relaxed_share": Option(
            "share of the time left for the storage-relaxed MILP "
            "(HiGHS; default 0.7, 0 with backend='cbc'; 0 skips it)",
            types=("float",),
            minimum=0.0,
            maximum=1.0,
        ),
        **HINT_OPTIONS,
    },
)
def solve_ilp(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Solve the ILP of the module docstring to optimality or to the time limit.

    1. The heuristic start (:mod:`.warm_start`, at most ``hint_share`` of the
       time).
    2. The ILP is built; then the storage-relaxed MILP (:mod:`.relaxed_bound`,
       at most ``relaxed_share`` of the time left, from the start's counts),
       whose optimal allocations are checked on the ILP with their
       deployments forced and cut off by conflict sets when their layers
       cannot fit. Its proven bound bounds the ILP; its best plan is the new
       start when better. When that plan attains the bound it is optimal and
       the ILP is not run.
    3. The ILP, from the best plan as a MIP start, in the time left; its
       incumbent is never worse than the start. Model building counts against
       the limit; when the limit passes while building, or the backend returns
       no better plan, the start plan is returned (``metrics["plan_from"]``)
       with whatever bound was proved. HiGHS stops a small reserve before the
       limit (:func:`~.warm_start.backend_options`) to read and route the plan.

    The reported bound is the smaller of the ILP's and the relaxed MILP's
    proven bounds; :func:`distplan.solve` marks the result optimal when the
    plan meets it.
    """
    index = formulation_index(problem)
    if not index.pairs:
        empty = empty_output(problem)
        empty.metrics.update(variables=0, constraints=0)
        return empty
    deadline = time.monotonic() + options.remaining()
    fallback = heuristic_start(problem, options)
    highs = options.option("backend", "highs") == "highs"
    share = float(options.option("relaxed_share", 0.7 if highs else 0.0))
    try:
        milp = build_milp(problem, index=index, deadline=deadline)
    except BuildTimeout:
        if fallback is None:
            return SolverOutput(SolveStatus.NO_SOLUTION, metrics={"plan_from": "none"})
        fallback.metrics["plan_from"] = "the start plan (ILP not built within the time limit)"
        return fallback
    relaxed_bound = None
    exclusions = 0
    if share > 0 and not options.expired():
        stage = options.within(share * options.remaining())
        relaxed = solve_storage_relaxed(
            problem,
            index,
            stage,
            None if fallback is None else fallback.plan,
            check=_layer_check(problem, milp, stage),
        )
        relaxed_bound, exclusions = relaxed.bound, relaxed.exclusions
        if relaxed.plan is not None and (
            fallback is None or (relaxed.plan.objective or 0.0) > (fallback.objective or 0.0)
        ):
            fallback = relaxed.plan
            fallback.status = SolveStatus.TIME_LIMIT
            fallback.metrics["plan_from"] = "the storage-relaxed MILP's plan"
        if fallback is not None and relaxed_bound is not None:
            fallback.bound = relaxed_bound
            fallback.metrics.update(relaxed_bound=relaxed_bound, exclusions=exclusions)
            if meets_bound(fallback.objective, relaxed_bound):
                fallback.status = SolveStatus.OPTIMAL
                fallback.metrics["plan_from"] = (
                    "proven optimal by the storage-relaxed MILP (the ILP was not run)"
                )
                return fallback
    start = None if fallback is None else fallback.plan
    if relaxed_bound is not None:  # proven: lets HiGHS stop when its incumbent meets it
        milp.model += (
            pulp.lpSum(milp.flow.values()) <= relaxed_bound + MIP_REL_GAP * max(1.0, relaxed_bound),
            "relaxed_bound",
        )
    size = {"variables": len(milp.model.variables()), "constraints": len(milp.model.constraints)}
    warm = None if start is None else start_values(milp, start)
    outcome = solve_milp(milp.model, backend_options(options), start=warm)
    metrics: dict[str, object] = {
        **size,
        "backend": outcome.backend,
        "milp_objective": outcome.objective,
        "milp_bound": outcome.bound,
        "relaxed_bound": relaxed_bound,
        "exclusions": exclusions,
        "mip_start": warm is not None,
    }
    if outcome.status is SolveStatus.INFEASIBLE:  # cannot happen: deploying nothing is feasible
        raise RuntimeError("the microservice ILP was reported infeasible")
    bound = min((b for b in (outcome.bound, relaxed_bound) if b is not None), default=None)
    output: SolverOutput | None = None
    if outcome.has_solution:
        instances, stored, borrowed = read_placement(problem, milp)
        broken = budget_violations(problem, instances, stored, borrowed)
        status = outcome.status
        if broken:
            logger.warning(
                "ILP solution breaks %d budget(s); repairing: %s", len(broken), broken[:3]
            )
            placement = replay(problem, instances, stored, borrowed)
            instances, stored, borrowed = placement.instances, placement.stored, placement.borrowed
            metrics["repaired"] = broken
            if status is SolveStatus.OPTIMAL:
                status = SolveStatus.FEASIBLE
        output = solver_output(problem, instances, stored, borrowed, status, bound, metrics)
    if fallback is None:
        return output or SolverOutput(SolveStatus.NO_SOLUTION, metrics=metrics)
    if output is not None and (output.objective or 0.0) >= (fallback.objective or 0.0) - 1e-9:
        return output
    fallback.metrics.update(metrics)
    fallback.metrics["plan_from"] = "the start plan (better than the ILP incumbent)"
    if bound is not None and bound >= (fallback.objective or 0.0):
        fallback.bound = bound
    return fallback


def _layer_check(problem: MicroserviceProblem, milp: MilpModel, options: SolveOptions) -> Check:
    """The exact check of :mod:`.relaxed_bound`: the ILP with deployments (and counts) forced.

    HiGHS stops at its first solution; each check gets at most a tenth of the
    time left in ``options`` (at least 1 s). ``infeasible`` only when HiGHS
    proves the forced ILP infeasible.
    """

    def check(
        deployments: set[tuple[int, int]], counts: Mapping[tuple[int, int], int] | None
    ) -> tuple[Verdict, SolverOutput | None]:
        forced = [milp.deployed[pair] for pair in sorted(deployments)]
        floors = [(milp.instances[pair], count) for pair, count in sorted((counts or {}).items())]
        for var in forced:
            var.lowBound = 1
        for var, count in floors:
            var.lowBound = count
        left = options.remaining()
        try:
            outcome = solve_milp(
                milp.model,
                options.within(min(left, max(1.0, 0.1 * left))),
                "highs",
                highs_options={"mip_max_improving_sols": 1},
            )
        finally:
            for var in [*forced, *(var for var, _ in floors)]:
                var.lowBound = 0
        if outcome.status is SolveStatus.INFEASIBLE:
            return "infeasible", None
        if not outcome.has_solution:
            return "unknown", None
        instances, stored, borrowed = read_placement(problem, milp)
        if budget_violations(problem, instances, stored, borrowed):
            return "unknown", None
        plan = solver_output(problem, instances, stored, borrowed, SolveStatus.FEASIBLE)
        return "fits", plan

    return check
