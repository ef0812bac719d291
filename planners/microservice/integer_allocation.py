"""Integer instance counts and routing for a given set of deployable pairs (a small MILP).

Once the layers are placed, what remains is to choose integer instance counts
on the deployable ``(service i, server n)`` pairs and route the demand:

    maximise   sum f[i,r,n]
    subject to sum_n f[i,r,n]   <= D_ir            (demand of i in region r)
               sum_r f[i,r,n]   <= mu_i x[i,n]     (instances serve mu_i each)
               sum_i c_i x[i,n] <= C_n             (compute, millicores)
               x[i,n] integer in [0, cap[i,n]], f >= 0,

plus the instance-rounding rows of :mod:`.instance_rounding` per demand, per
pair and per service (valid for every integer point, so they only tighten the
relaxation). :func:`allocation_rows` writes these rows; the exact ILP
(:func:`~.ilp.build_milp`) writes the same rows over its own variables.

Over *every* candidate pair of :func:`~.formulation.formulation_index` (storage,
registry and link budgets dropped), the MILP is a relaxation of the placement
problem: every plan's instance counts (trimmed to ``cap``, which loses nothing)
and routes are feasible for it. Its proven dual bound is therefore an upper
bound on the optimum, and :mod:`.lp_rounding` reports it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pulp

from ...models.microservice import MicroserviceProblem
from ...models.result import SolveStatus
from ...solvers.milp import check_deadline, checked, solve_milp
from ...solvers.options import SolveOptions
from .formulation import FormulationIndex
from .instance_rounding import rounding_line

__all__ = ["AllocationModel", "AllocationOutcome", "allocation_rows"]

Pair = tuple[int, int]


def _rounding_cut(
    served: pulp.LpAffineExpression, counts: list[pulp.LpVariable], rate: float, demand: float
) -> pulp.LpConstraint | None:
    """Instance-rounding inequality ``served <= rate q + rest (sum counts - q)``, or None if redundant.

    ``served`` requests/s are carried by ``sum counts`` instances of ``rate``
    requests/s each and come from at most ``demand`` requests/s
    (:func:`~.instance_rounding.rounding_line` gives the line and its proof).
    """
    line = rounding_line(rate, demand)
    if line is None or not counts:
        return None
    rest, intercept = line
    return served <= intercept + rest * pulp.lpSum(counts)


def allocation_rows(
    model: pulp.LpProblem,
    problem: MicroserviceProblem,
    index: FormulationIndex,
    instances: Mapping[Pair, pulp.LpVariable],
    flows: Mapping[tuple[int, int, int], pulp.LpVariable],
    *,
    rounding_cuts: str = "all",
    deadline: float = math.inf,
) -> None:
    """Add the compute, demand and service rows and the instance-rounding rows to ``model``.

    Parameters
    ----------
    model:
        The PuLP model to extend.
    problem, index:
        The problem and its index sets (demands, reach).
    instances:
        ``x[i,n]`` by pair; ``flows`` must only name pairs of ``instances``.
    flows:
        ``f[i,r,n]``, requests/s.
    rounding_cuts:
        ``"all"`` (per demand, pair and service), ``"service"`` (per service
        only) or ``"none"``.
    deadline:
        ``time.monotonic()`` value after which building stops
        (:class:`~distplan.solvers.milp.BuildTimeout`).
    """
    on_server: dict[int, list[tuple[pulp.LpVariable, float]]] = {}
    for (i, n), var in instances.items():
        on_server.setdefault(n, []).append((var, problem.services[i].compute_per_instance))
    for n, terms in on_server.items():
        model += (
            pulp.LpAffineExpression(terms) <= problem.servers[n].compute_capacity,
            f"compute_{n}",
        )
    from_region: dict[Pair, list[pulp.LpVariable]] = {}
    to_server: dict[Pair, list[pulp.LpVariable]] = {}
    for (i, r, n), var in checked(flows.items(), deadline):
        from_region.setdefault((i, r), []).append(var)
        to_server.setdefault((i, n), []).append(var)
    check_deadline(deadline)
    for (i, r), terms in from_region.items():
        model += pulp.lpSum(terms) <= index.demand[(i, r)], f"demand_{i}_{r}"
        if rounding_cuts == "all":
            hosts = [instances[(i, n)] for n in problem.reach(r) if (i, n) in instances]
            cut = _rounding_cut(
                pulp.lpSum(terms), hosts, problem.services[i].service_rate_rps, index.demand[(i, r)]
            )
            if cut is not None:
                model += cut, f"round_region_{i}_{r}"
    check_deadline(deadline)
    for (i, n), terms in to_server.items():
        rate = problem.services[i].service_rate_rps
        model += pulp.lpSum(terms) <= rate * instances[(i, n)], f"serve_{i}_{n}"
        if rounding_cuts == "all":
            reach = sum(index.demand.get((i, r), 0.0) for r in problem.reach(n))
            cut = _rounding_cut(pulp.lpSum(terms), [instances[(i, n)]], rate, reach)
            if cut is not None:
                model += cut, f"round_pair_{i}_{n}"
    if rounding_cuts == "none":
        return
    servers_of: dict[int, list[int]] = {}
    for i, n in to_server:
        servers_of.setdefault(i, []).append(n)
    total: dict[int, float] = {}
    for (i, _), rate in index.demand.items():
        total[i] = total.get(i, 0.0) + rate
    for i, servers in sorted(servers_of.items()):
        spec = problem.services[i]
        served = pulp.lpSum(t for n in servers for t in to_server[(i, n)])
        counts = [instances[(i, n)] for n in servers]
        cut = _rounding_cut(served, counts, spec.service_rate_rps, total[i])
        if cut is not None:
            model += cut, f"round_service_{i}"


@dataclass
class AllocationOutcome:
    """Result of :func:`solve_allocation`.

    Attributes
    ----------
    status:
        The MILP's status (``optimal``, ``time_limit`` when a time or node
        limit stopped it, ``no_solution``).
    counts:
        Positive integer instance counts by pair of the incumbent (empty without one).
    served:
        Requests/s the incumbent's flows serve on each pair.
    objective:
        The incumbent's served requests/s, or None.
    bound:
        HiGHS's proven dual bound, requests/s, or None.
    """

    status: SolveStatus
    counts: dict[Pair, int] = field(default_factory=dict)
    served: dict[Pair, float] = field(default_factory=dict)
    objective: float | None = None
    bound: float | None = None


class AllocationModel:
    """The MILP of the module docstring over a set of pairs, kept to be solved several ways.

    Parameters
    ----------
    problem, index:
        The problem and its index sets; pairs outside ``index.pairs`` are ignored.
    pairs:
        The deployable pairs.
    deadline:
        ``time.monotonic()`` value after which building stops
        (:class:`~distplan.solvers.milp.BuildTimeout`).
    """

    def __init__(
        self,
        problem: MicroserviceProblem,
        index: FormulationIndex,
        pairs: Iterable[Pair],
        deadline: float = math.inf,
    ) -> None:
        chosen = sorted(set(pairs).intersection(index.pairs))
        self.cap = {pair: index.cap[pair] for pair in chosen}
        self.model = pulp.LpProblem("microservice_allocation", pulp.LpMaximize)
        self.instances = {
            (i, n): pulp.LpVariable(f"x_{i}_{n}", 0, index.cap[(i, n)], pulp.LpInteger)
            for i, n in chosen
        }
        self.flows = {
            (i, r, n): pulp.LpVariable(f"f_{i}_{r}_{n}", 0)
            for i, r, n in checked(index.flows, deadline)
            if (i, n) in self.instances
        }
        self.model += pulp.lpSum(self.flows.values())
        allocation_rows(self.model, problem, index, self.instances, self.flows, deadline=deadline)
        self.deployed: dict[Pair, pulp.LpVariable] = {}
        self.exclusions = 0

    def exclude(self, together: Iterable[Pair]) -> None:
        """Forbid deploying all of ``together`` at once: ``sum d[i,n] <= |together| - 1``.

        ``d[i,n]`` is a binary with ``x[i,n] <= cap[i,n] d[i,n]``, created on
        first use. Valid for the placement problem (so the model stays a
        relaxation and its bound stays proven) whenever no plan can hold or
        borrow the layers of every deployment in ``together`` at once within
        the storage, registry and link budgets -- which the caller establishes
        exactly (:mod:`.relaxed_bound` asks the ILP).
        """
        chosen = sorted(set(together).intersection(self.instances))
        for pair in chosen:
            if pair not in self.deployed:
                flag = pulp.LpVariable(f"d_{pair[0]}_{pair[1]}", 0, 1, pulp.LpBinary)
                self.deployed[pair] = flag
                self.model += (
                    self.instances[pair] <= self.cap[pair] * flag,
                    f"deploy_{pair[0]}_{pair[1]}",
                )
        self.exclusions += 1
        self.model += (
            pulp.lpSum(self.deployed[pair] for pair in chosen) <= len(chosen) - 1,
            f"exclude_{self.exclusions}",
        )

    def relaxation(self, options: SolveOptions) -> tuple[float | None, dict[Pair, float]]:
        """The LP relaxation: its optimum (None unless proven optimal) and instance counts.

        Over every candidate pair it is an upper bound on the placement's
        optimum (module docstring).
        """
        if not self.instances:
            return 0.0, {}
        integer = [*self.instances.values(), *self.deployed.values()]
        kinds = [var.cat for var in integer]
        for var in integer:
            var.cat = pulp.LpContinuous
        try:
            outcome = solve_milp(self.model, options, "highs")
        finally:
            for var, kind in zip(integer, kinds, strict=True):
                var.cat = kind
        if outcome.status is not SolveStatus.OPTIMAL:
            return None, {}
        return outcome.objective, {pair: var.value() or 0.0 for pair, var in self.instances.items()}

    def solve(
        self,
        options: SolveOptions,
        *,
        start: Mapping[Pair, int] | None = None,
        window: Mapping[Pair, tuple[int, int]] | None = None,
        max_nodes: int | None = None,
    ) -> AllocationOutcome:
        """Solve the MILP (HiGHS), or its restriction to a window of instance counts.

        Parameters
        ----------
        options:
            Time limit, seed and threads.
        start:
            Instance counts of a feasible allocation (a MIP start; HiGHS
            completes the flows).
        window:
            ``(low, high)`` instance counts allowed per pair (a restriction: the
            outcome's bound is then a bound on the restriction only); pairs
            not named keep ``[0, cap]``.
        max_nodes:
            Most branch-and-bound nodes (a deterministic work limit).

        Returns
        -------
        AllocationOutcome
            The incumbent's counts and flows, its value and the proven bound
            of the (restricted) MILP.
        """
        if not self.instances:
            return AllocationOutcome(SolveStatus.OPTIMAL, objective=0.0, bound=0.0)
        for pair, var in self.instances.items():
            low, high = (window or {}).get(pair, (0, self.cap[pair]))
            var.lowBound, var.upBound = max(0, low), min(self.cap[pair], high)
        warm = None
        if start:
            warm = {
                self.instances[pair]: float(min(count, self.cap[pair]))
                for pair, count in start.items()
                if pair in self.instances
            }
            for var in self.instances.values():
                warm.setdefault(var, 0.0)
        extra = {} if max_nodes is None else {"mip_max_nodes": int(max_nodes)}
        try:
            outcome = solve_milp(self.model, options, "highs", start=warm, highs_options=extra)
        finally:
            for pair, var in self.instances.items():
                var.lowBound, var.upBound = 0, self.cap[pair]
        if not outcome.has_solution:
            return AllocationOutcome(outcome.status, bound=outcome.bound)
        counts = {pair: round(var.value() or 0.0) for pair, var in self.instances.items()}
        served: dict[Pair, float] = {}
        for (i, _, n), var in self.flows.items():
            served[(i, n)] = served.get((i, n), 0.0) + (var.value() or 0.0)
        return AllocationOutcome(
            outcome.status,
            counts={pair: count for pair, count in counts.items() if count > 0},
            served=served,
            objective=outcome.objective,
            bound=outcome.bound,
        )
