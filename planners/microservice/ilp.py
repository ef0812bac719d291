"""Exact ILP of layer-aware microservice placement (PuLP; HiGHS by default, CBC on request).

Formulation (index sets in :mod:`.formulation`; ``S_l`` layer bytes, ``mu_i``
requests/s per instance, ``c_i`` millicores per instance, ``C_n`` compute
capacity, ``B_n`` what ``n`` may store (storage capped by its registry budget),
``W_nm`` the link budget ``bandwidth * T``, ``D_ir`` demand):

=========================  ======================================================
variable                   meaning
=========================  ======================================================
``x[i,n]`` integer         instances of ``i`` on ``n``, ``0 <= x <= cap[i,n]``
``d[i,n]`` binary          ``i`` is deployed on ``n``
``s[l,n]`` binary          ``n`` stores layer ``l``
``b[l,n,m]`` binary        ``n`` borrows ``l`` from neighbour ``m``
``f[i,r,n] >= 0``          requests/s of ``i`` from region ``r`` served on ``n``
=========================  ======================================================

maximise ``sum f`` subject to

* ``x[i,n] <= cap[i,n] * d[i,n]``;
* coverage: ``d[i,n] <= s[l,n] + sum_m b[l,n,m]`` for every layer ``l`` of ``i``;
* lending: ``b[l,n,m] <= s[l,m]``;
* storage and registry: ``sum_l S_l s[l,n] <= B_n``;
* links: ``sum_l S_l (b[l,n,m] + b[l,m,n]) <= W_nm``;
* compute: ``sum_i c_i x[i,n] <= C_n``;
* demand: ``sum_n f[i,r,n] <= D_ir``; service: ``sum_r f[i,r,n] <= mu_i x[i,n]``;
* ``f[i,r,n] <= D_ir d[i,n]`` (valid, tightens the LP relaxation);
* instance rounding (valid inequalities, :func:`_rounding_cut`): whenever
  served flow ``F`` is carried by an integer number ``X`` of instances of
  ``mu`` requests/s and comes from at most ``D`` requests/s of demand,
  ``F <= mu q + (D - mu q)(X - q)`` with ``q = floor(D / mu)``, the convex hull
  of ``{X integer >= 0, F <= min(mu X, D)}``. Written for every service
  (``F`` its total served flow, ``X`` all its instances, ``D`` its total
  demand), every demand ``(i, r)`` (``X`` the instances of ``i`` in reach of
  ``r``) and every pair ``(i, n)`` (``D`` the demand ``n`` can reach).

Why the rounding rows (our diagnosis, on Docker Hub instances drawn with
held-out seeds): without them the LP relaxation equals the closed-form
compute bound of :mod:`.bounds` (6 servers x 15 services: 5264.0 requests/s
against 5176.2 for the best plan), and the MILP with *continuous* instance
counts but binary layers and deployments reaches that bound too (proved in
under a second). Storage and borrowing are therefore not what the relaxation
misses: it is that integer instances cannot serve exactly the demand. The
per-service rows move the root bound to 5183.6 (gap to the best plan 0.14 %
instead of 1.7 %).

Byte constraints are written in MB (1e6 bytes) for numerical scaling. The plan
is read back from the solution, checked exactly on integer bytes (a violation
from solver tolerances is repaired by replaying the deployments through
:class:`~.placement.Placement`), routed by maximum flow and trimmed.

HiGHS stops at a relative MIP gap of 1e-6 (:data:`~distplan.solvers.milp.MIP_REL_GAP`),
so "optimal" means within 0.0001 % of the reported bound; the bound itself is
HiGHS's proven dual bound.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import pulp

from ...models.microservice import MicroservicePlan, MicroserviceProblem
from ...models.result import Role, SolveStatus
from ...solvers.milp import BuildTimeout, check_deadline, checked, solve_milp
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .formulation import FormulationIndex, formulation_index
from .placement import Placement, budget_violations, link_key, solver_output
from .warm_start import HINT_OPTIONS, backend_options, heuristic_start

__all__ = ["MilpModel", "build_milp", "read_placement", "replay", "solve_ilp", "start_values"]

logger = logging.getLogger(__name__)

#: Bytes per unit of the byte constraints (MB).
BYTES_PER_UNIT = 1e6


@dataclass
class MilpModel:
    """A PuLP model of the placement and its variables, keyed like :class:`FormulationIndex`."""

    model: pulp.LpProblem
    index: FormulationIndex
    instances: dict[tuple[int, int], pulp.LpVariable]
    deployed: dict[tuple[int, int], pulp.LpVariable]
    store: dict[tuple[str, int], pulp.LpVariable]
    borrow: dict[tuple[str, int, int], pulp.LpVariable]
    flow: dict[tuple[int, int, int], pulp.LpVariable]


def build_milp(
    problem: MicroserviceProblem,
    *,
    relax: bool = False,
    index: FormulationIndex | None = None,
    tighten: bool = True,
    rounding_cuts: str = "all",
    deadline: float = math.inf,
) -> MilpModel:
    """Build the ILP (module docstring), or its LP relaxation when ``relax``.

    Parameters
    ----------
    problem:
        The problem.
    relax:
        Make every variable continuous (the LP relaxation, an upper bound).
    index:
        Precomputed index sets (default: computed here).
    tighten:
        Add the valid inequalities ``f[i,r,n] <= D_ir d[i,n]``. They barely move
        the LP bound on the shipped instances but make the LP several times
        slower, so LP rounding leaves them out.
    rounding_cuts:
        Which instance-rounding inequalities (module docstring) to add:
        ``"all"`` (per service, demand and pair), ``"service"`` (per service
        only: the ones that lift the relaxation off the compute-only bound) or
        ``"none"``.
    deadline:
        ``time.monotonic()`` value after which building stops.

    Returns
    -------
    MilpModel
        The model and its variables.

    Raises
    ------
    BuildTimeout
        When ``deadline`` passes while building.
    """
    index = index or formulation_index(problem)
    integer = pulp.LpContinuous if relax else pulp.LpInteger
    binary = pulp.LpContinuous if relax else pulp.LpBinary
    sizes = index.unit_size
    layer_id = {unit: k for k, unit in enumerate(sorted(sizes))}
    model = pulp.LpProblem(f"microservice_{'lp' if relax else 'ilp'}", pulp.LpMaximize)

    x = {
        (i, n): pulp.LpVariable(f"x_{i}_{n}", 0, index.cap[(i, n)], integer)
        for i, n in checked(index.pairs, deadline)
    }
    d = {
        (i, n): pulp.LpVariable(f"d_{i}_{n}", 0, 1, binary)
        for i, n in checked(index.pairs, deadline)
    }
    s = {
        (layer, n): pulp.LpVariable(f"s_{layer_id[layer]}_{n}", 0, 1, binary)
        for layer, n in checked(index.store, deadline)
    }
    b = {
        (layer, n, m): pulp.LpVariable(f"b_{layer_id[layer]}_{n}_{m}", 0, 1, binary)
        for layer, n, m in checked(index.borrow, deadline)
    }
    f = {
        (i, r, n): pulp.LpVariable(f"f_{i}_{r}_{n}", 0)
        for i, r, n in checked(index.flows, deadline)
    }
    check_deadline(deadline)

    model += pulp.lpSum(f.values())

    lenders: dict[tuple[str, int], list[pulp.LpVariable]] = {}
    for (layer, n, m), var in checked(b.items(), deadline):
        lenders.setdefault((layer, n), []).append(var)
        model += var <= s[(layer, m)], f"lend_{layer_id[layer]}_{n}_{m}"
    for (i, n), deployed in checked(d.items(), deadline):
        model += x[(i, n)] <= index.cap[(i, n)] * deployed, f"deploy_{i}_{n}"
        for layer in index.service_units[i]:
            sources = lenders.get((layer, n), [])
            if (layer, n) in s:
                sources = [s[(layer, n)], *sources]
            model += deployed <= pulp.lpSum(sources), f"cover_{i}_{n}_{layer_id[layer]}"
    check_deadline(deadline)

    stored_on: dict[int, list[tuple[pulp.LpVariable, float]]] = {}
    for (layer, n), var in s.items():
        stored_on.setdefault(n, []).append((var, sizes[layer] / BYTES_PER_UNIT))
    for n, terms in stored_on.items():
        model += (
            pulp.LpAffineExpression(terms) <= problem.storable_bytes(n) / BYTES_PER_UNIT,
            f"storage_{n}",
        )
    over_link: dict[tuple[int, int], list[tuple[pulp.LpVariable, float]]] = {}
    for (layer, n, m), var in b.items():
        over_link.setdefault(link_key(n, m), []).append((var, sizes[layer] / BYTES_PER_UNIT))
    for (a, c), terms in over_link.items():
        model += (
            pulp.LpAffineExpression(terms) <= index.links[(a, c)] / BYTES_PER_UNIT,
            f"link_{a}_{c}",
        )

    check_deadline(deadline)
    on_server: dict[int, list[tuple[pulp.LpVariable, float]]] = {}
    for (i, n), var in x.items():
        on_server.setdefault(n, []).append((var, problem.services[i].compute_per_instance))
    for n, terms in on_server.items():
        model += (
            pulp.LpAffineExpression(terms) <= problem.servers[n].compute_capacity,
            f"compute_{n}",
        )

    from_region: dict[tuple[int, int], list[pulp.LpVariable]] = {}
    to_server: dict[tuple[int, int], list[pulp.LpVariable]] = {}
    for (i, r, n), var in checked(f.items(), deadline):
        from_region.setdefault((i, r), []).append(var)
        to_server.setdefault((i, n), []).append(var)
        if tighten:
            model += var <= index.demand[(i, r)] * d[(i, n)], f"useful_{i}_{r}_{n}"
    check_deadline(deadline)
    for (i, r), terms in from_region.items():
        model += pulp.lpSum(terms) <= index.demand[(i, r)], f"demand_{i}_{r}"
        if rounding_cuts == "all":
            hosts = [x[(i, n)] for n in problem.reach(r) if (i, n) in x]
            cut = _rounding_cut(
                pulp.lpSum(terms), hosts, problem.services[i].service_rate_rps, index.demand[(i, r)]
            )
            if cut is not None:
                model += cut, f"round_region_{i}_{r}"
    for (i, n), terms in to_server.items():
        rate = problem.services[i].service_rate_rps
        model += pulp.lpSum(terms) <= rate * x[(i, n)], f"serve_{i}_{n}"
        if rounding_cuts == "all":
            reach = sum(index.demand.get((i, r), 0.0) for r in problem.reach(n))
            cut = _rounding_cut(pulp.lpSum(terms), [x[(i, n)]], rate, reach)
            if cut is not None:
                model += cut, f"round_pair_{i}_{n}"
    if rounding_cuts != "none":
        for i, spec in enumerate(problem.services):
            servers = [n for (j, n) in to_server if j == i]
            total = sum(v for (j, _), v in index.demand.items() if j == i)
            served = pulp.lpSum(t for n in servers for t in to_server[(i, n)])
            cut = _rounding_cut(served, [x[(i, n)] for n in servers], spec.service_rate_rps, total)
            if cut is not None:
                model += cut, f"round_service_{i}"
    return MilpModel(model, index, x, d, s, b, f)


def _rounding_cut(
    served: pulp.LpAffineExpression, counts: list[pulp.LpVariable], rate: float, demand: float
) -> pulp.LpConstraint | None:
    """Instance-rounding inequality ``served <= rate q + rest (sum counts - q)``, or None if redundant.

    ``served`` requests/s are carried by ``sum counts`` instances of ``rate``
    requests/s each and come from at most ``demand`` requests/s, so
    ``served <= min(rate X, demand)`` with ``X = sum counts`` an integer. With
    ``q = floor(demand / rate)`` and ``rest = demand - rate q``, the line
    through ``(q, rate q)`` and ``(q + 1, demand)`` is the convex hull of that
    set (module docstring); it cuts off the relaxation's fractional instance
    counts that serve exactly the demand. Redundant when ``rest = 0``.
    """
    whole = math.floor(demand / rate + 1e-9)
    rest = demand - rate * whole
    if rest <= 1e-9 * max(1.0, demand) or not counts:
        return None
    return served <= rate * whole + rest * (pulp.lpSum(counts) - whole)


def read_placement(
    problem: MicroserviceProblem, milp: MilpModel
) -> tuple[list[list[int]], list[set[str]], list[dict[str, int]]]:
    """Instances, stored layers and borrows of a solved (integer) model."""
    n_servers = len(problem.servers)
    instances = [[0] * n_servers for _ in problem.services]
    for (i, n), var in milp.instances.items():
        instances[i][n] = max(0, round(var.value() or 0.0))
    members = milp.index.unit_layers
    stored: list[set[str]] = [set() for _ in range(n_servers)]
    for (unit, n), var in milp.store.items():
        if (var.value() or 0.0) > 0.5:
            stored[n].update(members[unit])
    borrowed: list[dict[str, int]] = [{} for _ in range(n_servers)]
    for (unit, n, m), var in milp.borrow.items():
        if (var.value() or 0.0) > 0.5:
            for layer in members[unit]:
                if layer not in stored[n] and layer in stored[m]:
                    borrowed[n].setdefault(layer, m)
    return instances, stored, borrowed


def replay(
    problem: MicroserviceProblem,
    instances: list[list[int]],
    stored: list[set[str]],
    borrowed: list[dict[str, int]],
) -> Placement:
    """Rebuild a placement through :class:`Placement`, keeping what fits.

    Deployments are admitted largest service rate x instances first, each layer
    preferring the source the solution chose; used when a solution read back
    from floating point breaks a budget by a few bytes.
    """
    placement = Placement(problem)
    order = sorted(
        ((i, n) for i, row in enumerate(instances) for n, count in enumerate(row) if count > 0),
        key=lambda pair: (
            -instances[pair[0]][pair[1]] * problem.services[pair[0]].service_rate_rps,
            pair,
        ),
    )
    for i, n in order:
        prefer = {
            layer: (n if layer in stored[n] else borrowed[n].get(layer, n))
            for layer in problem.services[i].layers
        }
        placement.admit(i, n, instances[i][n], prefer)
    return placement


def start_values(milp: MilpModel, plan: MicroservicePlan) -> dict[pulp.LpVariable, float] | None:
    """The model's variable values for a plan (a MIP start), or None if the plan leaves the index sets.

    Instances, deployments, stored and borrowed layers and routed flows are
    read from the plan; every other variable is 0.
    """
    values: dict[pulp.LpVariable, float] = dict.fromkeys(milp.model.variables(), 0.0)
    for i, row in enumerate(plan.instances):
        for n, count in enumerate(row):
            if count > 0:
                if (i, n) not in milp.instances or count > milp.index.cap[(i, n)]:
                    return None
                values[milp.instances[(i, n)]] = float(count)
                values[milp.deployed[(i, n)]] = 1.0
    for n, digests in enumerate(plan.stored_layers):
        for digest in digests:
            var = milp.store.get((digest, n))
            if var is None:
                return None
            values[var] = 1.0
    for n, borrows in enumerate(plan.borrowed_layers):
        for borrow in borrows:
            var = milp.borrow.get((borrow.layer, n, borrow.from_server))
            if var is None:
                return None
            values[var] = 1.0
    for route in plan.routes:
        var = milp.flow.get((route.service, route.region, route.server))
        if var is None:
            return None
        values[var] = route.rate_rps
    return values


def _empty_output(problem: MicroserviceProblem) -> SolverOutput:
    """The optimal plan when no instance can serve anything: deploy nothing."""
    n_servers = len(problem.servers)
    return solver_output(
        problem,
        [[0] * n_servers for _ in problem.services],
        [set() for _ in range(n_servers)],
        [{} for _ in range(n_servers)],
        status=SolveStatus.OPTIMAL,
        bound=0.0,
        metrics={"variables": 0, "constraints": 0},
    )


@register_solver(
    "ilp",
    deterministic=False,
    kind="microservice",
    role=Role.EXACT,
    needs=("pulp", "highspy"),
    description="Exact ILP (PuLP; HiGHS with a MIP start, or CBC with backend='cbc')",
    extra_options={
        "backend": Option("'highs' (default) or 'cbc'", choices=("highs", "cbc")),
        **HINT_OPTIONS,
    },
)
def solve_ilp(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Solve the ILP of the module docstring to optimality or to the time limit.

    The heuristic start (:mod:`.warm_start`, at most ``hint_share`` of the
    time) is passed to the backend as a MIP start, so the ILP's incumbent is
    never worse than it. Model building counts against the limit; when the
    limit passes while building, or the backend returns no better plan, the
    start plan is returned (status ``time_limit``, ``metrics["plan_from"]``)
    with whatever bound the ILP proved. HiGHS stops a small reserve before
    the limit (:func:`~.warm_start.backend_options`) to read and route the plan.
    """
    index = formulation_index(problem)
    if not index.pairs:
        return _empty_output(problem)
    deadline = time.monotonic() + options.remaining()
    fallback = heuristic_start(problem, options)
    start = None if fallback is None else fallback.plan
    try:
        milp = build_milp(problem, index=index, deadline=deadline)
    except BuildTimeout:
        if fallback is None:
            return SolverOutput(SolveStatus.NO_SOLUTION, metrics={"plan_from": "none"})
        fallback.metrics["plan_from"] = "the start plan (ILP not built within the time limit)"
        return fallback
    size = {"variables": len(milp.model.variables()), "constraints": len(milp.model.constraints)}
    warm = None if start is None else start_values(milp, start)
    outcome = solve_milp(milp.model, backend_options(options), start=warm)
    metrics: dict[str, object] = {
        **size,
        "backend": outcome.backend,
        "milp_objective": outcome.objective,
        "mip_start": warm is not None,
    }
    if outcome.status is SolveStatus.INFEASIBLE:  # cannot happen: deploying nothing is feasible
        raise RuntimeError("the microservice ILP was reported infeasible")
    output = None
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
        output = solver_output(problem, instances, stored, borrowed, status, outcome.bound, metrics)
    if fallback is None:
        return output or SolverOutput(SolveStatus.NO_SOLUTION, metrics=metrics)
    if output is not None and (output.objective or 0.0) >= (fallback.objective or 0.0) - 1e-9:
        return output
    fallback.metrics.update(metrics)
    fallback.metrics["plan_from"] = "the start plan (better than the ILP incumbent)"
    if outcome.bound is not None and outcome.bound >= (fallback.objective or 0.0):
        fallback.bound = outcome.bound
    return fallback
