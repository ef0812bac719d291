"""Exact CP-SAT model of layer-aware microservice placement (OR-Tools).

The variables and constraints are those of the ILP (:mod:`.ilp`), over the same
index sets (:mod:`.formulation`), with integer data:

* layer sizes in KiB rounded **up**, and storage, registry and link budgets in
  KiB rounded **down** (when every layer size is a multiple of a larger unit,
  e.g. whole MB in hand-made instances, that unit is used instead, so sizes are
  exact);
* compute in thousandths of a millicore: per-instance needs rounded up,
  capacities rounded down;
* flows in milli-requests/s (integers): demands and per-instance rates rounded
  down.

This *inner* model is a restriction of the true problem: every plan it accepts
is truly feasible, but its optimum may lie slightly below the true optimum, so
its proven bound is a bound on the rounded model only. It is reported as
``metrics["rounded_model_bound"]`` (requests/s), never as ``bound``.

A bound valid for the true problem comes from the *outer* model, rounded the
other way (sizes down, budgets up, compute needs down and capacities up, demands
and rates up): every true plan maps to one of its solutions (with the instances
fixed, a flow network with integer capacities has an integral maximum flow at
least the true one), so its proven bound / 1000 bounds the true optimum. It is
solved after the inner model when the option ``outer_bound`` is on (default),
with the time left; its bound is reported as ``bound``.

The inner model starts from LP rounding's plan as a hint (option ``hint``:
``"lp_round"``, ``"greedy"`` or ``"none"``); its time counts against the limit. The
plan is read from the inner solution and routed again on the true data by
maximum flow (:mod:`.routing`).
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass

from ortools.sat.python import cp_model

from ...models.errors import BadInput
from ...models.microservice import MicroservicePlan, MicroserviceProblem
from ...models.result import Role, SolveStatus
from ...solvers.cpsat import solve_cpsat
from ...solvers.options import SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .formulation import FormulationIndex, formulation_index
from .placement import budget_violations, empty_output, link_key, solver_output

__all__ = ["SOLVER_NAME", "CpModel", "build_cp_model", "solve_cp"]

#: Bytes per unit of the byte constraints, at least (KiB).
BYTES_PER_UNIT = 1024
#: Units per millicore and per request/s.
COMPUTE_SCALE = 1000
FLOW_SCALE = 1000


@dataclass
class CpModel:
    """A CP-SAT model of the placement and its variables."""

    model: cp_model.CpModel
    index: FormulationIndex
    instances: dict[tuple[int, int], cp_model.IntVar]
    deployed: dict[tuple[int, int], cp_model.IntVar]
    store: dict[tuple[str, int], cp_model.IntVar]
    borrow: dict[tuple[str, int, int], cp_model.IntVar]
    flow: dict[tuple[int, int, int], cp_model.IntVar]


def _weighted(terms: list[tuple[int, cp_model.IntVar]]) -> cp_model.LinearExprT:
    """The linear expression ``sum coefficient * variable``."""
    return cp_model.LinearExpr.weighted_sum([v for _, v in terms], [c for c, _ in terms])


def byte_unit_of(problem: MicroserviceProblem) -> int:
    """Bytes per unit of the byte constraints: the gcd of the layer sizes if at least a KiB, else a KiB."""
    common = 0
    for layer in problem.layers:
        common = math.gcd(common, layer.size_bytes)
    return common if common >= BYTES_PER_UNIT else BYTES_PER_UNIT


def build_cp_model(
    problem: MicroserviceProblem, *, outer: bool = False, index: FormulationIndex | None = None
) -> CpModel:
    """Build the inner (default) or outer CP-SAT model (module docstring).

    Parameters
    ----------
    problem:
        The problem.
    outer:
        Round the data so that the model relaxes the true problem (for a bound)
        instead of restricting it (for plans).
    index:
        Precomputed index sets (default: computed here).

    Returns
    -------
    CpModel
        The model and its variables; the objective is the served milli-requests/s.
    """
    index = index or formulation_index(problem)
    up, down = (math.floor, math.ceil) if outer else (math.ceil, math.floor)
    byte_unit = byte_unit_of(problem)
    sizes = {unit: up(size / byte_unit) for unit, size in index.unit_size.items()}
    model = cp_model.CpModel()

    def need(millicores: float) -> int:
        return int(up(round(millicores * COMPUTE_SCALE, 6)))

    def have(millicores: float) -> int:
        return int(down(round(millicores * COMPUTE_SCALE, 6)))

    def rate(rps: float) -> int:
        return int(down(round(rps * FLOW_SCALE, 6)))

    x, d = {}, {}
    for i, n in index.pairs:
        cap = index.cap[(i, n)]  # more instances serve nothing, in both roundings
        x[(i, n)] = model.new_int_var(0, cap, f"x_{i}_{n}")
        d[(i, n)] = model.new_bool_var(f"d_{i}_{n}")
        model.add(x[(i, n)] <= cap * d[(i, n)])
    layer_id = {unit: k for k, unit in enumerate(sorted(sizes))}
    s = {(digest, n): model.new_bool_var(f"s_{layer_id[digest]}_{n}") for digest, n in index.store}
    b = {
        (digest, n, m): model.new_bool_var(f"b_{layer_id[digest]}_{n}_{m}")
        for digest, n, m in index.borrow
    }
    demand = {key: rate(value) for key, value in index.demand.items()}
    f = {
        (i, r, n): model.new_int_var(0, demand[(i, r)], f"f_{i}_{r}_{n}") for i, r, n in index.flows
    }

    lenders: dict[tuple[str, int], list[cp_model.IntVar]] = {}
    for (digest, n, m), var in b.items():
        lenders.setdefault((digest, n), []).append(var)
        model.add_implication(var, s[(digest, m)])
    for (i, n), deployed in d.items():
        for digest in index.service_units[i]:
            sources = list(lenders.get((digest, n), []))
            if (digest, n) in s:
                sources.append(s[(digest, n)])
            model.add_bool_or(sources).only_enforce_if(deployed)
    stored_on: dict[int, list[tuple[int, cp_model.IntVar]]] = {}
    for (digest, n), var in s.items():
        stored_on.setdefault(n, []).append((sizes[digest], var))
    for n, terms in stored_on.items():
        model.add(_weighted(terms) <= int(down(problem.storable_bytes(n) / byte_unit)))
    over_link: dict[tuple[int, int], list[tuple[int, cp_model.IntVar]]] = {}
    for (digest, n, m), var in b.items():
        over_link.setdefault(link_key(n, m), []).append((sizes[digest], var))
    for key, terms in over_link.items():
        model.add(_weighted(terms) <= int(down(index.links[key] / byte_unit)))
    on_server: dict[int, list[tuple[int, cp_model.IntVar]]] = {}
    for (i, n), var in x.items():
        on_server.setdefault(n, []).append((need(problem.services[i].compute_per_instance), var))
    for n, terms in on_server.items():
        model.add(_weighted(terms) <= have(problem.servers[n].compute_capacity))
    from_region: dict[tuple[int, int], list[cp_model.IntVar]] = {}
    to_server: dict[tuple[int, int], list[cp_model.IntVar]] = {}
    for (i, r, n), var in f.items():
        from_region.setdefault((i, r), []).append(var)
        to_server.setdefault((i, n), []).append(var)
        model.add(var <= demand[(i, r)] * d[(i, n)])
    for key, into in from_region.items():
        model.add(cp_model.LinearExpr.sum(into) <= demand[key])
    for (i, n), into in to_server.items():
        model.add(
            cp_model.LinearExpr.sum(into) <= rate(problem.services[i].service_rate_rps) * x[(i, n)]
        )
    model.maximize(cp_model.LinearExpr.sum(list(f.values())))
    return CpModel(model, index, x, d, s, b, f)


def _hint(cp: CpModel, plan: MicroservicePlan) -> None:
    """Hint the model with a plan's instances, layers and routes."""
    for (i, n), var in cp.instances.items():
        cp.model.add_hint(var, plan.instances[i][n])
        cp.model.add_hint(cp.deployed[(i, n)], int(plan.instances[i][n] > 0))
    stored, borrowed = _layers_of(plan)
    for (digest, n), var in cp.store.items():
        cp.model.add_hint(var, int(digest in stored[n]))
    for (digest, n, m), var in cp.borrow.items():
        cp.model.add_hint(var, int(borrowed[n].get(digest) == m))
    routed = {(route.service, route.region, route.server): route.rate_rps for route in plan.routes}
    for key, var in cp.flow.items():
        cp.model.add_hint(var, max(0, math.floor(routed.get(key, 0.0) * FLOW_SCALE) - 1))


def _layers_of(plan: MicroservicePlan) -> tuple[list[set[str]], list[dict[str, int]]]:
    """Stored digests and the lender of each borrowed digest, per server."""
    stored = [set(layers) for layers in plan.stored_layers]
    borrowed = [{b.layer: b.from_server for b in borrows} for borrows in plan.borrowed_layers]
    return stored, borrowed


def _start_plan(problem: MicroserviceProblem, options: SolveOptions) -> MicroservicePlan | None:
    """The plan to start from (option ``hint``): LP rounding's, the greedy's, or none."""
    hint = options.option("hint", "lp_round")
    if hint in (False, None, "none"):
        return None
    if hint not in ("lp_round", "greedy", True):
        raise BadInput("options.hint", f"must be 'lp_round', 'greedy' or 'none', got {hint!r}")
    if hint == "lp_round" and all(importlib.util.find_spec(m) for m in ("pulp", "highspy")):
        from .lp_rounding import solve_lp_round

        start = solve_lp_round(problem, options)
        if start.plan is not None:
            return start.plan
    from .greedy import greedy_placement

    return greedy_placement(problem, options).plan()[0]


def _hint_from(target: CpModel, source: CpModel, solver: cp_model.CpSolver) -> None:
    """Hint ``target`` with ``source``'s solution, variable by variable (same index sets)."""
    for family in ("instances", "deployed", "store", "borrow", "flow"):
        values = getattr(source, family)
        for key, var in getattr(target, family).items():
            if key in values:
                target.model.add_hint(var, solver.value(values[key]))


def _read(
    problem: MicroserviceProblem, cp: CpModel, solver: cp_model.CpSolver
) -> tuple[list[list[int]], list[set[str]], list[dict[str, int]]]:
    """Instances, stored layers and borrows of a solved model."""
    n_servers = len(problem.servers)
    instances = [[0] * n_servers for _ in problem.services]
    for (i, n), var in cp.instances.items():
        instances[i][n] = int(solver.value(var))
    members = cp.index.unit_layers
    stored: list[set[str]] = [set() for _ in range(n_servers)]
    for (unit, n), var in cp.store.items():
        if solver.value(var):
            stored[n].update(members[unit])
    borrowed: list[dict[str, int]] = [{} for _ in range(n_servers)]
    for (unit, n, m), var in cp.borrow.items():
        if solver.value(var):
            for digest in members[unit]:
                if digest not in stored[n]:
                    borrowed[n].setdefault(digest, m)
    return instances, stored, borrowed


#: Registered name. The registry keys solvers by name across kinds and the pipeline
#: kind already registers "cpsat", so this one carries a suffix.
SOLVER_NAME = "cpsat"


@register_solver(
    SOLVER_NAME,
    kind="microservice",
    role=Role.EXACT,
    needs=("ortools",),
    description="Exact CP-SAT model on integer data (KiB, milli-requests/s) with a valid outer bound",
    extra_options={
        "outer_bound": "solve the outer (relaxed) model after the inner one for a valid bound (default true)",
        "hint": "plan to start from: 'lp_round' (default), 'greedy' or 'none'",
        "inner_share": "share of the time limit for the inner model when both run (default 0.7)",
    },
)
def solve_cp(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Solve the inner CP-SAT model for a plan, then the outer one for a valid bound."""
    index = formulation_index(problem)
    if not index.pairs:
        return empty_output(problem)
    with_outer = bool(options.option("outer_bound", True))
    inner = build_cp_model(problem, index=index)
    metrics: dict[str, object] = {}
    start = _start_plan(problem, options)
    if start is not None:
        _hint(inner, start)
    remaining = options.remaining()
    share = float(options.option("inner_share", 0.7)) if with_outer else 1.0
    inner_options = options if math.isinf(remaining) else _limited(options, remaining * share)
    outcome = solve_cpsat(inner.model, inner_options)
    if not outcome.has_solution:
        if outcome.status is SolveStatus.INFEASIBLE:  # cannot happen: deploying nothing is feasible
            raise RuntimeError("the microservice CP-SAT model was reported infeasible")
        if start is None:
            return SolverOutput(SolveStatus.NO_SOLUTION, metrics=metrics)
        metrics["plan_from"] = "the hint (no CP-SAT solution within the time limit)"
        stored, borrowed = _layers_of(start)
        return solver_output(
            problem, start.instances, stored, borrowed, SolveStatus.TIME_LIMIT, None, metrics
        )
    metrics["rounded_model_bound"] = _rps(outcome.bound)
    metrics["rounded_model_objective"] = _rps(outcome.objective)
    metrics["rounded_model_optimal"] = outcome.status is SolveStatus.OPTIMAL
    instances, stored, borrowed = _read(problem, inner, outcome.solver)
    broken = budget_violations(problem, instances, stored, borrowed)
    if broken:  # the rounding makes this impossible; keep the safety net honest
        raise RuntimeError(f"CP-SAT plan breaks budgets: {broken[:3]}")
    bound = None
    if with_outer and options.remaining() > 0:
        outer = build_cp_model(problem, outer=True, index=index)
        # The inner solution is feasible for the outer model: start from it.
        _hint_from(outer, inner, outcome.solver)
        outer_outcome = solve_cpsat(outer.model, options)
        metrics["outer_model_status"] = str(outer_outcome.status)
        if outer_outcome.has_solution:  # without a solution CP-SAT's bound may not be meaningful
            bound = _rps(outer_outcome.bound)
    status = (
        SolveStatus.TIME_LIMIT if outcome.status is SolveStatus.TIME_LIMIT else SolveStatus.FEASIBLE
    )
    return solver_output(problem, instances, stored, borrowed, status, bound, metrics)


def _rps(milli: float | None) -> float | None:
    return None if milli is None else milli / FLOW_SCALE


def _limited(options: SolveOptions, seconds: float) -> SolveOptions:
    """``options`` with the time limit cut to ``seconds`` from now."""
    return SolveOptions(
        time_limit=seconds,
        seed=options.seed,
        threads=options.threads,
        extra=options.extra,
        started_at=time.monotonic(),
    )
