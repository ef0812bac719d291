"""Simulator, part 2: the all-reduce algorithms a stage's replicas may run.

Both algorithms are written as bulk-synchronous *steps*; a step is a list of
``(sender, receiver, bytes)`` between positions of the stage's replica list.
The rule that picks one (the cheaper on the idle network, ties to the ring) is
in :func:`choose_allreduce`; the semantics are in :mod:`distplan.models.pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["Step", "choose_allreduce", "ring_steps", "server_groups", "two_level_steps"]

#: One step: ``(sender position, receiver position, bytes)`` transfers that run together.
Step = list[tuple[int, int, float]]


def server_groups(servers: Sequence[str]) -> list[list[int]]:
    """Replica positions grouped by server, servers in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for position, server in enumerate(servers):
        groups.setdefault(server, []).append(position)
    return list(groups.values())


def _ring(members: list[int], nbytes: float, steps: int) -> list[Step]:
    """``steps`` ring steps over ``members``: each sends ``nbytes`` to the next one around."""
    r = len(members)
    return [[(members[p], members[(p + 1) % r], nbytes) for p in range(r)] for _ in range(steps)]


def ring_steps(servers: Sequence[str], parameter_bytes: float) -> list[Step]:
    """Ring all-reduce: ``2 (R - 1)`` steps of ``P / R``, replicas ordered server by server."""
    order = [p for group in server_groups(servers) for p in group]
    r = len(order)
    return _ring(order, parameter_bytes / r, 2 * (r - 1)) if r > 1 else []


def _merge(parallel: list[list[Step]]) -> list[Step]:
    """Run several step lists side by side: step ``j`` is the union of their ``j``-th steps."""
    out: list[Step] = []
    for steps in parallel:
        for j, step in enumerate(steps):
            if j == len(out):
                out.append([])
            out[j].extend(step)
    return out


def two_level_steps(servers: Sequence[str], parameter_bytes: float) -> list[Step] | None:
    """Hierarchical all-reduce (intra-server reduce, ring among leaders, intra-server broadcast).

    None when it does not apply (one server, or one replica per server).
    """
    groups = server_groups(servers)
    if len(groups) < 2 or all(len(g) == 1 for g in groups):
        return None
    p = parameter_bytes
    local = [g for g in groups if len(g) > 1]
    reduce_scatter = _merge([_ring(g, p / len(g), len(g) - 1) for g in local])
    gather: Step = [(member, g[0], p / len(g)) for g in local for member in g[1:]]
    leaders = [g[0] for g in groups]
    leader_ring = _ring(leaders, p / len(leaders), 2 * (len(leaders) - 1))
    scatter: Step = [(g[0], member, p / len(g)) for g in local for member in g[1:]]
    all_gather = _merge([_ring(g, p / len(g), len(g) - 1) for g in local])
    return reduce_scatter + [gather] + leader_ring + [scatter] + all_gather


def choose_allreduce(
    servers: Sequence[str],
    parameter_bytes: float,
    step_s: Callable[[Step], float],
) -> tuple[str, list[Step]]:
    """The cheaper of ring and two-level by ``step_s`` summed over steps; ties go to the ring.

    Parameters
    ----------
    servers
        The server of every replica, in plan order.
    parameter_bytes
        The stage's gradient bytes ``P``.
    step_s
        Estimated seconds of one step on the idle network.

    Returns
    -------
    tuple[str, list[Step]]
        ``("ring" | "two-level", steps)``.
    """
    ring = ring_steps(servers, parameter_bytes)
    two_level = two_level_steps(servers, parameter_bytes)
    if two_level is None:
        return "ring", ring
    if sum(map(step_s, two_level)) < sum(map(step_s, ring)):
        return "two-level", two_level
    return "ring", ring
