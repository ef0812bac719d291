"""Literature baselines of the ``dssync`` kind, each a plan of the same kind.

* ``ring_rank``: one global ring in the order the workers are listed (the rank
  order a launcher or scheduler hands out), every iteration.
* ``ring_rack``: one global ring, rack by rack, every iteration.
* ``hierarchical``: 2-D all-reduce every iteration (rack rings, a ring of rack
  leaders, rack broadcast), as NCCL's tree/2-D or Horovod's hierarchical mode.
* ``periodic``: rack all-reduce every iteration and a global (rack-ordered)
  all-reduce every ``H``-th iteration, ``H`` in {2, 4, 8} picked by simulation
  (local-SGD / hierarchical periodic averaging).
* ``random_groups``: capacity-blind random equal groups, re-drawn every iteration
  (Prague's partial all-reduce, WAGMA's group averaging), group size in
  {2, 4, 8} picked by simulation.
* ``gossip``: random pairs every iteration (a random perfect matching, as in
  gossip / AD-PSGD style pairwise averaging).

Random schedules repeat with a period of :data:`RANDOM_PERIOD` partitions drawn
from ``options.seed``. Choices "by simulation" are each baseline's best
configuration, scored by the independent evaluator.
"""

from __future__ import annotations

import numpy as np

from ...models.dssync import DssyncProblem
from ...models.result import Role
from ...solvers.options import SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .schedules import (
    Candidate,
    global_partition,
    pick_by_simulation,
    rack_partition,
    random_equal_partition,
)

#: Partitions per period of the random baselines.
RANDOM_PERIOD = 32
PERIODIC_H = (2, 4, 8)
RANDOM_GROUP_SIZES = (2, 4, 8)


@register_solver("ring_rank", kind="dssync", role=Role.BASELINE)
def ring_rank(problem: DssyncProblem, options: SolveOptions) -> SolverOutput:
    """One global ring in listed (rank) order every iteration."""
    names = [w.name for w in problem.workers]
    return pick_by_simulation(problem, [Candidate("ring in rank order", [[names]])], options)


@register_solver("ring_rack", kind="dssync", role=Role.BASELINE)
def ring_rack(problem: DssyncProblem, options: SolveOptions) -> SolverOutput:
    """One global rack-ordered ring every iteration."""
    return pick_by_simulation(
        problem, [Candidate("ring in rack order", [global_partition(problem)])], options
    )


@register_solver("hierarchical", kind="dssync", role=Role.BASELINE)
def hierarchical(problem: DssyncProblem, options: SolveOptions) -> SolverOutput:
    """2-D hierarchical all-reduce (rack rings, leader ring, rack broadcast) every iteration."""
    candidate = Candidate("hierarchical", [global_partition(problem)], "hierarchical")
    return pick_by_simulation(problem, [candidate], options)


@register_solver("periodic", kind="dssync", role=Role.BASELINE)
def periodic(problem: DssyncProblem, options: SolveOptions) -> SolverOutput:
    """Rack all-reduce every iteration, global all-reduce every H-th (H by simulation)."""
    racks, everyone = rack_partition(problem), global_partition(problem)
    candidates = [Candidate(f"H={h}", [racks] * (h - 1) + [everyone]) for h in PERIODIC_H]
    return pick_by_simulation(problem, candidates, options)


@register_solver("random_groups", kind="dssync", role=Role.BASELINE)
def random_groups(problem: DssyncProblem, options: SolveOptions) -> SolverOutput:
    """Capacity-blind random equal groups every iteration (size by simulation)."""
    names = [w.name for w in problem.workers]
    candidates = []
    for size in RANDOM_GROUP_SIZES:
        if size > len(names) and size != RANDOM_GROUP_SIZES[0]:
            continue
        rng = np.random.default_rng([options.seed, size])
        partitions = [random_equal_partition(names, size, rng) for _ in range(RANDOM_PERIOD)]
        candidates.append(Candidate(f"groups of {size}", partitions))
    return pick_by_simulation(problem, candidates, options)


@register_solver("gossip", kind="dssync", role=Role.BASELINE)
def gossip(problem: DssyncProblem, options: SolveOptions) -> SolverOutput:
    """Random pairs (a random perfect matching) every iteration."""
    names = [w.name for w in problem.workers]
    rng = np.random.default_rng([options.seed, 1_000])
    partitions = [random_equal_partition(names, 2, rng) for _ in range(RANDOM_PERIOD)]
    return pick_by_simulation(problem, [Candidate("random pairs", partitions)], options)
