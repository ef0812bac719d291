"""Exact CP-SAT model of layer-aware microservice placement (OR-Tools).

The variables and constraints are those of the ILP (:mod:`.ilp`), over the same
index sets (:mod:`.formulation`), with its instance-rounding inequalities per
service and per demand (exact on the integer data). CP-SAT needs integer data; it is scaled so
that the integer model has exactly the plans and the optimum of the true one
whenever the data allows it (**exact rational scaling**):

* bytes: layer sizes are whole bytes; they are divided by ``g``, the gcd of
  all layer sizes, and every budget ``B`` (storage, registry, link; a real
  number of bytes) becomes ``floor(B / g)``. A sum of sizes is a multiple of
  ``g``, so it is at most ``B`` exactly when its scaled value is at most
  ``floor(B / g)``: always exact.
* compute: every ``compute_per_instance`` is multiplied by the smallest power
  of ten ``10^k`` (``k <= 6``) that makes all of them integers, capacities ``C``
  become ``floor(C 10^k)``: exact by the same argument.
* flows: demands and per-instance rates are multiplied by the smallest ``10^k``
  (``k <= 6``) that makes all of them integers. With the instances fixed the
  routing is a maximum flow with integer capacities, which has an integral
  optimum, so integer flows lose nothing.

"Integers" allows an error of 1e-6 plus a few float ulps of the scaled value
(floats such as 0.1 are not exact binary fractions), far inside the
evaluator's tolerance (1e-6 absolute on every budget). The
shipped and imported instances (whole bytes, millicores in steps of 50, rates
and demands in steps of 0.1) always scale exactly: the solver is then exact,
its proven bound is the model's, and ``optimal`` means proven optimal.

When some compute or flow value needs more than six decimals, the solver falls
back to two approximate models (``metrics["exact_data"]`` is False): the
*inner* model rounds per-instance needs and rates the safe way (needs up,
capacities, demands and rates down, in thousandths) so that every plan it
accepts is truly feasible; the *outer* model rounds the other way and so
relaxes the true problem, and its proven bound is reported as ``bound`` (the
inner model's bound is only ``metrics["rounded_model_bound"]``). A fallback run
is never labelled optimal by the solver itself.

The model starts from the best heuristic plan as a hint (option ``hint``:
``"lp_round"``, ``"greedy"`` or ``"none"``), computed in at most
``hint_share`` (default 0.25) of the time limit; the returned plan is the
better of CP-SAT's and the hint. Model building counts against the limit and
stops when it passes (the hint is then returned, status ``time_limit``). The
plan is read from the solution and routed again on the true data by maximum
flow (:mod:`.routing`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...models.microservice import MicroservicePlan, MicroserviceProblem
from ...models.result import Role, SolveStatus
from ...solvers.cpsat import solve_cpsat
from ...solvers.lazy import lazy_module
from ...solvers.milp import BuildTimeout, check_deadline, checked
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .formulation import FormulationIndex, formulation_index
from .placement import budget_violations, empty_output, link_key, solver_output
from .warm_start import HINT_OPTIONS, backend_options, heuristic_start

if TYPE_CHECKING:
    from ortools.sat.python import cp_model
else:
    cp_model = lazy_module("ortools.sat.python.cp_model", "ortools")


__all__ = [
    "SOLVER_NAME",
    "CpModel",
    "Scaling",
    "build_cp_model",
    "exact_scale",
    "scaling_of",
    "solve_cp",
]

#: Units per millicore and per request/s of the approximate (inner/outer) models.
COMPUTE_SCALE = 1000
FLOW_SCALE = 1000
#: Most decimals exact scaling accepts, and its relative tolerance.
MAX_DECIMALS = 6
_INTEGER_TOL = 1e-9
#: Absolute tolerance of a scaled value counted as an integer (plus a few float ulps).
_INTEGER_ABS_TOL = 1e-6


def exact_scale(values: list[float], max_decimals: int = MAX_DECIMALS) -> int | None:
    """The smallest ``10^k`` (``k <= max_decimals``) making every value an integer, or None.

    A scaled value counts as an integer within 1e-6 plus eight float ulps of it
    (what rounding a decimal to binary floating point can leave).

    Examples
    --------
    >>> exact_scale([250.0, 12.5, 0.1])
    10
    >>> exact_scale([1 / 3]) is None
    True
    """
    for k in range(max_decimals + 1):
        scale = 10**k
        if all(
            abs(v * scale - round(v * scale)) <= _INTEGER_ABS_TOL + 8 * math.ulp(v * scale)
            for v in values
        ):
            return scale
    return None


@dataclass(frozen=True)
class Scaling:
    """How the data becomes integers (module docstring).

    Attributes
    ----------
    byte_unit:
        Bytes per unit of the byte constraints (gcd of the layer sizes).
    compute_scale, flow_scale:
        Units per millicore and per request/s.
    exact:
        Whether compute and flows scaled exactly (bytes always do).
    """

    byte_unit: int
    compute_scale: int
    flow_scale: int
    exact: bool


def scaling_of(problem: MicroserviceProblem) -> Scaling:
    """Exact scaling of the problem's data when possible, else the approximate scales."""
    byte_unit = 0
    for layer in problem.layers:
        byte_unit = math.gcd(byte_unit, layer.size_bytes)
    compute = exact_scale([spec.compute_per_instance for spec in problem.services])
    flow = exact_scale(
        [spec.service_rate_rps for spec in problem.services] + [d.rate_rps for d in problem.demands]
    )
    exact = compute is not None and flow is not None
    return Scaling(
        max(byte_unit, 1),
        compute if exact and compute is not None else COMPUTE_SCALE,
        flow if exact and flow is not None else FLOW_SCALE,
        exact,
    )


@dataclass
class CpModel:
    """A CP-SAT model of the placement and its variables."""

    model: cp_model.CpModel
    index: FormulationIndex
    scaling: Scaling
    instances: dict[tuple[int, int], cp_model.IntVar]
    deployed: dict[tuple[int, int], cp_model.IntVar]
    store: dict[tuple[str, int], cp_model.IntVar]
    borrow: dict[tuple[str, int, int], cp_model.IntVar]
    flow: dict[tuple[int, int, int], cp_model.IntVar]


def _weighted(terms: list[tuple[int, cp_model.IntVar]]) -> cp_model.LinearExprT:
    """The linear expression ``sum coefficient * variable``."""
    return cp_model.LinearExpr.weighted_sum([v for _, v in terms], [c for c, _ in terms])


def build_cp_model(
    problem: MicroserviceProblem,
    *,
    outer: bool = False,
    index: FormulationIndex | None = None,
    scaling: Scaling | None = None,
    deadline: float = math.inf,
) -> CpModel:
    """Build the CP-SAT model (module docstring).

    Parameters
    ----------
    problem:
        The problem.
    outer:
        Only with inexact scaling: round the data so that the model relaxes
        the true problem (for a bound) instead of restricting it (for plans).
    index:
        Precomputed index sets (default: computed here).
    scaling:
        Precomputed scaling (default: :func:`scaling_of`).
    deadline:
        ``time.monotonic()`` value after which building stops.

    Returns
    -------
    CpModel
        The model and its variables; the objective is the served requests/s
        times ``scaling.flow_scale``.

    Raises
    ------
    BuildTimeout
        When ``deadline`` passes while building.
    """
    index = index or formulation_index(problem)
    scaling = scaling or scaling_of(problem)
    up, down = (math.floor, math.ceil) if outer and not scaling.exact else (math.ceil, math.floor)
    byte_unit = scaling.byte_unit
    sizes = {unit: size // byte_unit for unit, size in index.unit_size.items()}
    model = cp_model.CpModel()

    def need(millicores: float) -> int:
        value = millicores * scaling.compute_scale
        return int(round(value)) if scaling.exact else int(up(round(value, 6)))

    def have(millicores: float) -> int:
        value = millicores * scaling.compute_scale
        if scaling.exact:
            return int(math.floor(value * (1 + _INTEGER_TOL)))
        return int(down(round(value, 6)))

    def rate(rps: float) -> int:
        value = rps * scaling.flow_scale
        return int(round(value)) if scaling.exact else int(down(round(value, 6)))

    def budget(bytes_: float) -> int:
        return int(math.floor(bytes_)) // byte_unit

    x, d = {}, {}
    for i, n in checked(index.pairs, deadline):
        cap = index.cap[(i, n)]  # more instances serve nothing, in every rounding
        x[(i, n)] = model.new_int_var(0, cap, f"x_{i}_{n}")
        d[(i, n)] = model.new_bool_var(f"d_{i}_{n}")
        model.add(x[(i, n)] <= cap * d[(i, n)])
    check_deadline(deadline)
    layer_id = {unit: k for k, unit in enumerate(sorted(sizes))}
    s = {(digest, n): model.new_bool_var(f"s_{layer_id[digest]}_{n}") for digest, n in index.store}
    b = {
        (digest, n, m): model.new_bool_var(f"b_{layer_id[digest]}_{n}_{m}")
        for digest, n, m in index.borrow
    }
    demand = {key: rate(value) for key, value in index.demand.items()}
    f = {
        (i, r, n): model.new_int_var(0, demand[(i, r)], f"f_{i}_{r}_{n}")
        for i, r, n in checked(index.flows, deadline)
    }
    check_deadline(deadline)

    lenders: dict[tuple[str, int], list[cp_model.IntVar]] = {}
    for (digest, n, m), var in b.items():
        lenders.setdefault((digest, n), []).append(var)
        model.add_implication(var, s[(digest, m)])
    for (i, n), deployed in checked(d.items(), deadline):
        for digest in index.service_units[i]:
            sources = list(lenders.get((digest, n), []))
            if (digest, n) in s:
                sources.append(s[(digest, n)])
            model.add_bool_or(sources).only_enforce_if(deployed)
    check_deadline(deadline)
    stored_on: dict[int, list[tuple[int, cp_model.IntVar]]] = {}
    for (digest, n), var in s.items():
        stored_on.setdefault(n, []).append((sizes[digest], var))
    for n, terms in stored_on.items():
        model.add(_weighted(terms) <= budget(problem.storable_bytes(n)))
    over_link: dict[tuple[int, int], list[tuple[int, cp_model.IntVar]]] = {}
    for (digest, n, m), var in b.items():
        over_link.setdefault(link_key(n, m), []).append((sizes[digest], var))
    for key, terms in over_link.items():
        model.add(_weighted(terms) <= budget(index.links[key]))
    on_server: dict[int, list[tuple[int, cp_model.IntVar]]] = {}
    for (i, n), var in x.items():
        on_server.setdefault(n, []).append((need(problem.services[i].compute_per_instance), var))
    for n, terms in on_server.items():
        model.add(_weighted(terms) <= have(problem.servers[n].compute_capacity))
    check_deadline(deadline)
    from_region: dict[tuple[int, int], list[cp_model.IntVar]] = {}
    to_server: dict[tuple[int, int], list[cp_model.IntVar]] = {}
    for (i, r, n), var in checked(f.items(), deadline):
        from_region.setdefault((i, r), []).append(var)
        to_server.setdefault((i, n), []).append(var)
        model.add(var <= demand[(i, r)] * d[(i, n)])
    for key, into in from_region.items():
        model.add(cp_model.LinearExpr.sum(into) <= demand[key])
    for (i, n), into in to_server.items():
        model.add(
            cp_model.LinearExpr.sum(into) <= rate(problem.services[i].service_rate_rps) * x[(i, n)]
        )
    # instance-rounding inequalities of the ILP (:func:`~.ilp.build_milp`), on integer data
    by_service: dict[int, list[tuple[int, int]]] = {}
    for i, r in from_region:
        by_service.setdefault(i, []).append((i, r))
    for i, keys in sorted(by_service.items()):
        mu = rate(problem.services[i].service_rate_rps)
        for group in [[key] for key in keys] + [keys]:
            flows = [var for key in group for var in from_region[key]]
            hosts = sorted({n for _, r in group for n in problem.reach(r) if (i, n) in x})
            total = sum(demand[key] for key in group)
            whole, rest = divmod(total, mu) if mu > 0 else (0, 0)
            if rest > 0 and hosts:
                count = cp_model.LinearExpr.sum([x[(i, n)] for n in hosts])
                model.add(cp_model.LinearExpr.sum(flows) <= mu * whole + rest * (count - whole))
    model.maximize(cp_model.LinearExpr.sum(list(f.values())))
    return CpModel(model, index, scaling, x, d, s, b, f)


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
        value = routed.get(key, 0.0) * cp.scaling.flow_scale
        exact = cp.scaling.exact
        cp.model.add_hint(var, max(0, round(value) if exact else math.floor(value) - 1))


def _layers_of(plan: MicroservicePlan) -> tuple[list[set[str]], list[dict[str, int]]]:
    """Stored digests and the lender of each borrowed digest, per server."""
    stored = [set(layers) for layers in plan.stored_layers]
    borrowed = [{b.layer: b.from_server for b in borrows} for borrows in plan.borrowed_layers]
    return stored, borrowed


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
    deterministic=False,
    kind="microservice",
    role=Role.EXACT,
    needs=("ortools",),
    description="Exact CP-SAT model on exactly scaled integer data (bytes / gcd, decimal scaling)",
    extra_options={
        "outer_bound": Option(
            "only for data that does not scale exactly: solve the outer (relaxed) model "
            "after the inner one for a valid bound (default true)",
            types=("bool",),
        ),
        **HINT_OPTIONS,
        "inner_share": Option(
            "share of the time left for the inner model when both run (default 0.7)",
            types=("float",),
            minimum=1e-9,
            maximum=1.0,
        ),
    },
)
def solve_cp(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Solve the exactly scaled CP-SAT model (or inner and outer models), from a heuristic hint."""
    index = formulation_index(problem)
    if not index.pairs:
        return empty_output(problem)
    scaling = scaling_of(problem)
    deadline = time.monotonic() + options.remaining()
    metrics: dict[str, object] = {"exact_data": scaling.exact}
    hint_output = heuristic_start(problem, options)
    start = None if hint_output is None else hint_output.plan
    try:
        inner = build_cp_model(problem, index=index, scaling=scaling, deadline=deadline)
    except BuildTimeout:
        return _best_of(
            None, hint_output, "the hint (CP-SAT model not built within the time limit)"
        )
    if start is not None:
        _hint(inner, start)
    with_outer = bool(options.option("outer_bound", True)) and not scaling.exact
    remaining = backend_options(options).remaining()
    share = float(options.option("inner_share", 0.7)) if with_outer else 1.0
    inner_options = options if math.isinf(remaining) else options.within(remaining * share)
    outcome = solve_cpsat(inner.model, inner_options)
    if not outcome.has_solution:
        if outcome.status is SolveStatus.INFEASIBLE:  # cannot happen: deploying nothing is feasible
            raise RuntimeError("the microservice CP-SAT model was reported infeasible")
        return _best_of(None, hint_output, "the hint (no CP-SAT solution within the time limit)")
    scale = scaling.flow_scale
    instances, stored, borrowed = _read(problem, inner, outcome.solver)
    broken = budget_violations(problem, instances, stored, borrowed)
    if broken:  # the scaling makes this impossible; keep the safety net honest
        raise RuntimeError(f"CP-SAT plan breaks budgets: {broken[:3]}")
    bound = None
    if scaling.exact:
        bound = None if outcome.bound is None else outcome.bound / scale
        status = outcome.status
    else:
        metrics["rounded_model_bound"] = None if outcome.bound is None else outcome.bound / scale
        metrics["rounded_model_optimal"] = outcome.status is SolveStatus.OPTIMAL
        if with_outer and options.remaining() > 0:
            bound = _outer_bound(problem, index, scaling, inner, outcome.solver, options, deadline)
        status = (
            SolveStatus.TIME_LIMIT
            if outcome.status is SolveStatus.TIME_LIMIT
            else SolveStatus.FEASIBLE
        )
    metrics["cpsat_objective"] = None if outcome.objective is None else outcome.objective / scale
    output = solver_output(problem, instances, stored, borrowed, status, bound, metrics)
    return _best_of(output, hint_output, "the hint (better than CP-SAT's plan at the time limit)")


def _outer_bound(
    problem: MicroserviceProblem,
    index: FormulationIndex,
    scaling: Scaling,
    inner: CpModel,
    solver: cp_model.CpSolver,
    options: SolveOptions,
    deadline: float,
) -> float | None:
    """The proven bound of the outer model (inexact scaling only), requests/s, or None."""
    try:
        outer = build_cp_model(problem, outer=True, index=index, scaling=scaling, deadline=deadline)
    except BuildTimeout:
        return None
    # The inner solution is feasible for the outer model: start from it.
    _hint_from(outer, inner, solver)
    outcome = solve_cpsat(outer.model, backend_options(options))
    if not outcome.has_solution or outcome.bound is None:  # no solution: no meaningful bound
        return None
    return outcome.bound / scaling.flow_scale


def _best_of(output: SolverOutput | None, hint: SolverOutput | None, why: str) -> SolverOutput:
    """CP-SAT's output, or the hint's plan (with CP-SAT's bound) when it serves more."""
    if hint is None:
        return output or SolverOutput(SolveStatus.NO_SOLUTION)
    if output is not None and (output.objective or 0.0) >= (hint.objective or 0.0) - 1e-9:
        return output
    hint.metrics["plan_from"] = why
    if output is not None:
        hint.bound = output.bound
        hint.metrics.update(output.metrics)
        hint.metrics["plan_from"] = why
    return hint
