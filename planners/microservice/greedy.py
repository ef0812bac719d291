"""Greedy layer-aware placement by marginal served throughput per newly stored byte.

Reconstruction in the spirit of Gu et al. (INFOCOM 2021, intra-server layer
sharing; INFOCOM 2022, with inter-server borrowing); their algorithm's details
are not available to us. Starting from a (possibly non-empty)
:class:`~.placement.Placement`, repeat:

1. for every demanded service ``i`` and server ``n`` that can serve some of its
   regions, let ``A`` be the extra requests/s ``n`` could take (the augmentable
   flow of :class:`~.routing.ServiceFlow`) and ``k = min(room, ceil(A / mu_i))``
   the instances that would take it (``room``: what ``n``'s compute still fits);
   the gain is ``min(k * mu_i, A)``, exact for the maximum flow;
2. the bytes it costs are the layers of ``i`` that ``n`` does not have yet:
   layers stored on ``n``, or stored on a neighbour with link budget left, are
   free (borrowing spends the link budget instead); a layer that fits neither
   on ``n`` nor in a neighbour's store may be stored on a neighbour and
   borrowed from it (:meth:`~.placement.Placement.layer_plan`);
3. deploy the candidate with the best score and update flows and budgets;

until no candidate gains anything or fits. Then swap moves
(:func:`~.local_search.improve_instances`) and greedy passes alternate until
neither improves (option ``improve``). Scores (option ``score``):

``"per_resource"`` (default)
    gain / (newly stored bytes / storage budget of ``n`` + compute / compute
    capacity of ``n``): marginal throughput per share of the server's storage
    and compute it uses.
``"per_byte"``
    gain / newly stored bytes (the literal per-byte rule); a candidate needing
    no new bytes ranks above all others, by gain per millicore. It ignores
    compute, so on the shipped instances (compute-bound, storage for a fifth to
    a half of the demanded images) services with small images take the compute
    first and it serves 4-25 % less than ``"per_resource"``.

``greedy_intra`` is the same without borrowing (INFOCOM 2021 setting).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ...models.microservice import MicroserviceProblem
from ...models.result import Role
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .bounds import can_host
from .placement import LayerPlan, Placement, solver_output

__all__ = [
    "SCORES",
    "fill_greedily",
    "greedy_placement",
    "solve_greedy",
    "solve_greedy_intra",
]

SCORES = ("per_byte", "per_resource")
DEFAULT_SCORE = "per_resource"


@dataclass(frozen=True)
class _Candidate:
    """One scored move: deploy ``count`` instances of ``service`` on ``server``."""

    score: tuple[float, float]
    service: int
    server: int
    count: int
    gain: float
    plan: LayerPlan


def _score(
    placement: Placement,
    service: int,
    server: int,
    count: int,
    gain: float,
    plan: LayerPlan,
    rule: str,
) -> tuple[float, float]:
    """Ranking key of a candidate, larger is better (see the module docstring)."""
    problem = placement.problem
    compute = count * problem.services[service].compute_per_instance
    if rule == "per_resource":
        storage = max(placement.storage_limit[server], 1.0)
        capacity = problem.servers[server].compute_capacity
        return (gain / (plan.new_bytes / storage + compute / capacity), 0.0)
    if plan.new_bytes == 0:
        return (math.inf, gain / compute)
    return (gain / plan.new_bytes, 0.0)


def _rank(move: _Candidate) -> tuple[tuple[float, float], int, int]:
    """Total order of moves: score, then lowest service, then lowest server index."""
    return (move.score, -move.service, -move.server)


def _candidate(
    placement: Placement, service: int, server: int, augmentable: float, rule: str
) -> _Candidate | None:
    """The move for ``(service, server)`` on the current state, or None when it gains nothing or does not fit."""
    if augmentable <= 1e-9:
        return None
    room = placement.compute_room(service, server)
    if room <= 0:
        return None
    rate = placement.problem.services[service].service_rate_rps
    count = min(room, math.ceil(augmentable / rate - 1e-9))
    plan = placement.layer_plan(service, server, count)
    if plan is None:
        return None
    gain = min(count * rate, augmentable)
    return _Candidate(
        _score(placement, service, server, count, gain, plan, rule),
        service,
        server,
        count,
        gain,
        plan,
    )


def fill_greedily(
    placement: Placement,
    *,
    score: str = DEFAULT_SCORE,
    deadline: float = math.inf,
    new_layers: bool = True,
) -> int:
    """Add instances to ``placement`` greedily until nothing gains or fits.

    Parameters
    ----------
    placement:
        The state to extend in place (may already hold instances).
    score:
        ``"per_resource"`` or ``"per_byte"`` (module docstring).
    new_layers:
        Whether moves may store or borrow more layers; when False, only
        services whose layers a server already has get more instances there.
    deadline:
        ``time.monotonic()`` value after which to stop early.

    Returns
    -------
    int
        The number of moves made.

    Raises
    ------
    ValueError
        On an unknown ``score``.
    """
    if score not in SCORES:
        raise ValueError(f"score: unknown greedy score {score!r}; valid: {', '.join(SCORES)}")
    problem = placement.problem
    neighbours = problem.neighbours
    pairs: dict[int, list[int]] = {}  # service -> servers worth considering
    by_server: dict[int, list[int]] = {}
    for i, flow in placement.flows.items():
        servers = [
            n
            for n in range(len(problem.servers))
            if flow.reaches(n)
            and (placement.deployable(i, n) if not new_layers else can_host(problem, i, n))
        ]
        pairs[i] = servers
        for n in servers:
            by_server.setdefault(n, []).append(i)
    augmentable: dict[tuple[int, int], float] = {}
    cache: dict[tuple[int, int], _Candidate | None] = {}
    dirty = {(i, n) for i, servers in pairs.items() for n in servers}
    moves = 0
    while time.monotonic() < deadline:
        for key in dirty:
            i, n = key
            if key not in augmentable:
                augmentable[key] = placement.flows[i].augmentable(n)
            cache[key] = _candidate(placement, i, n, augmentable[key], score)
        dirty = set()
        best: _Candidate | None = None
        for move in cache.values():
            if move is not None and (best is None or _rank(move) > _rank(best)):
                best = move
        if best is None:
            break
        i, n = best.service, best.server
        placement.apply(i, n, best.count, best.plan)
        moves += 1
        for m in pairs[i]:  # service i's flow changed
            augmentable.pop((i, m), None)
            dirty.add((i, m))
        touched = {n, *best.plan.stores, *(lender for _, lender in best.plan.borrows)}
        for m in list(touched):
            if m in best.plan.stores:  # new layers stored on m: its neighbours may borrow them
                touched.update(neighbours[m])
        for m in touched:
            dirty.update((j, m) for j in by_server.get(m, ()))
    return moves


def greedy_placement(
    problem: MicroserviceProblem, options: SolveOptions, *, borrowing: bool = True
) -> Placement:
    """The plan of the registered greedy: fill greedily, then swap-improve and refill until stable."""
    from .local_search import improve_instances

    score = options.option("score", DEFAULT_SCORE)
    deadline = time.monotonic() + options.remaining()
    placement = Placement(problem, borrowing=borrowing)
    fill_greedily(placement, score=score, deadline=deadline)
    if options.option("improve", True):
        while improve_instances(placement, deadline=deadline) and time.monotonic() < deadline:
            fill_greedily(placement, score=score, deadline=deadline)
    return placement


def _solve(problem: MicroserviceProblem, options: SolveOptions, borrowing: bool) -> SolverOutput:
    placement = greedy_placement(problem, options, borrowing=borrowing)
    return solver_output(
        problem,
        placement.instances,
        placement.stored,
        placement.borrowed,
        metrics={"score": options.option("score", DEFAULT_SCORE), "borrowing": borrowing},
    )


_OPTIONS = {
    "score": Option(
        f"how moves are ranked: {' or '.join(repr(s) for s in SCORES)} (default {DEFAULT_SCORE!r})",
        choices=SCORES,
    ),
    "improve": Option(
        "swap-improve the instance mix after the greedy pass (default true)", types=("bool",)
    ),
}


@register_solver(
    "greedy",
    kind="microservice",
    role=Role.HEURISTIC,
    auto_rank=20,
    description="Greedy by marginal served requests/s per newly stored byte, with inter-server borrowing",
    extra_options=_OPTIONS,
)
def solve_greedy(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Greedy layer-aware placement with intra- and inter-server layer sharing."""
    return _solve(problem, options, borrowing=True)


@register_solver(
    "greedy_intra",
    kind="microservice",
    role=Role.HEURISTIC,
    description="Greedy by marginal served requests/s per newly stored byte, intra-server sharing only",
    extra_options=_OPTIONS,
)
def solve_greedy_intra(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Greedy layer-aware placement with intra-server layer sharing only (no borrowing)."""
    return _solve(problem, options, borrowing=False)
