"""Index sets of the exact formulations (ILP, its LP relaxation, CP-SAT).

Only variables that can matter are created:

* an instance variable for ``(service i, server n)`` only when ``i`` is demanded
  in some region ``n`` can serve (``n`` is the region or a neighbour of it) and
  ``n`` can host ``i`` (:func:`~.bounds.can_host`: compute for one instance, room
  to hold or borrow the image); an instance elsewhere serves nothing;
* ``cap[i, n] = min(floor(C_n / c_i), ceil(D / mu_i))`` bounds its instances,
  with ``D`` the demand of ``i`` that ``n`` can reach (more instances serve
  nothing);
* a store variable for ``(layer l, server n)`` when ``n`` or a neighbour may
  need ``l`` and ``l`` fits in what ``n`` can store;
* a borrow variable ``(l, n, m)`` when ``n`` may need ``l`` and neighbour ``m``
  may store it, with ``l`` no larger than the link's budget;
* a flow variable ``(i, r, n)`` per positive demand and deployable server in
  its reach.

Pairs whose image cannot be completed from these store and borrow variables
(some layer has neither) are dropped.

With ``merge_layers``, layers used by exactly the same set of services are
merged into one *unit* (all layers private to one image become one unit) and the
store and borrow variables are indexed by units. A unit-level solution is a
valid plan (store or borrow all layers of a unit together), so the merged model
is a restriction for plans; its LP relaxation is still a relaxation of the
layer-level ILP (give a unit the size-weighted average of its layers' values:
every constraint is a sum over layers and holds for the average), so its
optimum remains a valid upper bound. Without merging, every unit is one layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...models.microservice import MicroserviceProblem
from .bounds import can_host
from .placement import link_key, max_instances

__all__ = ["FormulationIndex", "formulation_index"]


@dataclass(frozen=True)
class FormulationIndex:
    """What variables the exact models create (module docstring).

    Attributes
    ----------
    pairs:
        ``(service, server)`` pairs that may run instances, sorted.
    cap:
        Most useful instances of each pair.
    needed:
        ``needed[n]``: layers server ``n`` may need for its own pairs.
    store:
        ``(layer, server)`` pairs that may be stored, sorted.
    borrow:
        ``(layer, borrower, lender)`` triples that may be borrowed, sorted.
    flows:
        ``(service, region, server)`` triples that may carry requests, sorted.
    demand:
        Positive demand of each ``(service, region)``, requests/s.
    links:
        Undirected links ``(a, b)`` with ``a < b`` and their budgets, bytes.
    unit_size:
        Bytes of every unit (``needed``, ``store`` and ``borrow`` name units).
    unit_layers:
        Layer digests of every unit.
    service_units:
        Units of every service's image.
    """

    pairs: list[tuple[int, int]]
    cap: dict[tuple[int, int], int]
    needed: list[set[str]]
    store: list[tuple[str, int]]
    borrow: list[tuple[str, int, int]]
    flows: list[tuple[int, int, int]]
    demand: dict[tuple[int, int], float]
    links: dict[tuple[int, int], float]
    unit_size: dict[str, int]
    unit_layers: dict[str, tuple[str, ...]]
    service_units: list[tuple[str, ...]]


def formulation_index(
    problem: MicroserviceProblem, *, merge_layers: bool = False
) -> FormulationIndex:
    """Compute the index sets of the models (see the module docstring)."""
    n_servers = len(problem.servers)
    sizes = problem.layer_size
    window_s = problem.deployment_window_s
    demand = {(d.service, d.region): d.rate_rps for d in problem.demands if d.rate_rps > 0}
    reachable: dict[tuple[int, int], float] = {}
    for (i, r), rate in demand.items():
        for n in problem.reach(r):
            reachable[(i, n)] = reachable.get((i, n), 0.0) + rate
    links = {
        link_key(link.a, link.b): link.bandwidth_bytes_per_s * window_s for link in problem.links
    }
    storable = [problem.storable_bytes(n) for n in range(n_servers)]

    candidates = sorted(pair for pair in reachable if can_host(problem, *pair))
    while True:  # drop pairs whose image cannot be completed; repeat until stable
        needed: list[set[str]] = [set() for _ in range(n_servers)]
        for i, n in candidates:
            needed[n].update(problem.services[i].layers)
        may_store = {
            (d, n)
            for n in range(n_servers)
            for d in needed[n].union(*(needed[m] for m in problem.neighbours[n]))
            if sizes[d] <= storable[n]
        }
        borrow = {
            (d, n, m)
            for n in range(n_servers)
            for d in needed[n]
            for m in problem.neighbours[n]
            if (d, m) in may_store and sizes[d] <= links[link_key(n, m)]
        }
        lenders: dict[tuple[str, int], int] = {}
        for d, n, _ in borrow:
            lenders[(d, n)] = lenders.get((d, n), 0) + 1
        kept = [
            (i, n)
            for i, n in candidates
            if all(
                (d, n) in may_store or lenders.get((d, n), 0) > 0
                for d in problem.services[i].layers
            )
        ]
        if len(kept) == len(candidates):
            break
        candidates = kept

    pair_set = set(candidates)
    cap = {}
    for i, n in candidates:
        spec = problem.services[i]
        useful = math.ceil(reachable[(i, n)] / spec.service_rate_rps - 1e-9)
        cap[(i, n)] = min(
            max_instances(problem.servers[n].compute_capacity, spec.compute_per_instance), useful
        )
    flows = sorted((i, r, n) for (i, r) in demand for n in problem.reach(r) if (i, n) in pair_set)
    if not merge_layers:
        return FormulationIndex(
            pairs=candidates,
            cap=cap,
            needed=needed,
            store=sorted(may_store),
            borrow=sorted(borrow),
            flows=flows,
            demand=demand,
            links=links,
            unit_size=dict(sizes),
            unit_layers={d: (d,) for d in sizes},
            service_units=[tuple(spec.layers) for spec in problem.services],
        )
    users: dict[str, list[int]] = {}
    for i, spec in enumerate(problem.services):
        for d in spec.layers:
            users.setdefault(d, []).append(i)
    unit_of: dict[str, str] = {}
    unit_layers: dict[str, list[str]] = {}
    key_of_users: dict[tuple[int, ...], str] = {}
    for layer in problem.layers:  # units named after their first layer, in problem order
        d = layer.digest
        group = tuple(users.get(d, ()))
        key = key_of_users.setdefault(group, f"unit-{len(key_of_users)}")
        unit_of[d] = key
        unit_layers.setdefault(key, []).append(d)
    service_units = [
        tuple(dict.fromkeys(unit_of[d] for d in spec.layers)) for spec in problem.services
    ]
    return FormulationIndex(
        pairs=candidates,
        cap=cap,
        needed=[{unit_of[d] for d in layers} for layers in needed],
        store=sorted({(unit_of[d], n) for d, n in may_store}),
        borrow=sorted({(unit_of[d], n, m) for d, n, m in borrow}),
        flows=flows,
        demand=demand,
        links=links,
        unit_size={key: sum(sizes[d] for d in members) for key, members in unit_layers.items()},
        unit_layers={key: tuple(members) for key, members in unit_layers.items()},
        service_units=service_units,
    )
