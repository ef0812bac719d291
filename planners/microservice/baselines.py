"""Literature baselines for microservice placement.

All three place instances into a :class:`~.placement.Placement`, so their plans
are valid under the model's semantics (layers stored once per server, budgets
respected), and route demand by maximum flow at the end. None borrows layers.

``image_locality``
    The default Kubernetes scheduler, one pod (instance) at a time. Demands are
    taken in decreasing rate; ``ceil(rate / service_rate_rps)`` replicas of the
    service are placed for each, each on the best-scoring node of the region's
    reach (the region's server and its neighbours) that has the compute and
    room for the image's missing layers. The score is the sum, with weight 1
    each as in the default profile, of

    * ImageLocality (kube-scheduler ``imagelocality`` plugin): if the node
      already has the image (every layer stored), ``size * nodes_with_image /
      nodes``; the sum is clamped to [23 MiB, 1000 MiB] and scaled to 0..100;
    * NodeResourcesFit, LeastAllocated strategy: ``(capacity - requested) * 100
      / capacity`` with the new pod counted, on compute only (memory is not
      modelled).

    Ties go to the first node in reach order (kube-scheduler picks randomly).
``lr_scheduler``
    Layer-aware scoring in the style of LRScheduler (Tang et al., 2025;
    reconstruction, the paper's formulas are not available to us): the same
    pod-by-pod loop, scored by ``(1 - u) * layer_score + least_allocated`` with
    ``layer_score = 100 * bytes of the image's layers already on the node /
    image bytes`` and ``u`` the node's compute utilisation after placing the
    pod, so layer sharing weighs more on idle nodes.
``layer_oblivious``
    The greedy of :mod:`.greedy` (same score, same swap improvement) under
    layer-oblivious storage accounting: a deployment charges its whole image
    size against the server's storage and registry budget, as if images shared
    no layers -- once per (service, server) by default, or once per instance
    with option ``charge="instance"``. The plan still stores each layer once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ...models.microservice import MicroserviceProblem
from ...models.result import Role
from ...solvers.options import Option, SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .greedy import DEFAULT_SCORE, SCORES, fill_greedily
from .local_search import improve_instances
from .placement import LayerPlan, Placement, solver_output

__all__ = [
    "image_locality_score",
    "least_allocated_score",
    "lr_scheduler_score",
    "place_pod_by_pod",
    "solve_image_locality",
    "solve_layer_oblivious",
    "solve_lr_scheduler",
]

MIB = 1024 * 1024
#: kube-scheduler ImageLocality thresholds (bytes).
MIN_THRESHOLD = 23 * MIB
MAX_CONTAINER_THRESHOLD = 1000 * MIB
#: kube-scheduler's MaxNodeScore.
MAX_NODE_SCORE = 100

NodeScore = Callable[[Placement, int, int], float]


def _has_image(placement: Placement, service: int, server: int) -> bool:
    return all(d in placement.stored[server] for d in placement.problem.services[service].layers)


def image_locality_score(placement: Placement, service: int, server: int) -> float:
    """kube-scheduler ImageLocality score (0..100) of ``server`` for one pod of ``service``."""
    problem = placement.problem
    total_nodes = len(problem.servers)
    summed = 0
    if _has_image(placement, service, server):
        with_image = sum(1 for n in range(total_nodes) if _has_image(placement, service, n))
        summed = int(problem.image_bytes(service) * with_image / total_nodes)
    clamped = min(max(summed, MIN_THRESHOLD), MAX_CONTAINER_THRESHOLD)  # one container per pod
    return MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) // (MAX_CONTAINER_THRESHOLD - MIN_THRESHOLD)


def least_allocated_score(placement: Placement, service: int, server: int) -> float:
    """NodeResourcesFit LeastAllocated score (0..100) on compute, with the pod placed."""
    capacity = placement.problem.servers[server].compute_capacity
    requested = (
        placement.compute_used[server] + placement.problem.services[service].compute_per_instance
    )
    if capacity <= 0:
        return 0
    return int((capacity - requested) * MAX_NODE_SCORE // capacity)


def lr_scheduler_score(placement: Placement, service: int, server: int) -> float:
    """LRScheduler-style score: utilisation-weighted layer score plus LeastAllocated."""
    problem = placement.problem
    image = problem.image_bytes(service)
    present = sum(
        problem.layer_size[d]
        for d in problem.services[service].layers
        if d in placement.stored[server]
    )
    layer_score = MAX_NODE_SCORE * present / image if image > 0 else MAX_NODE_SCORE
    capacity = problem.servers[server].compute_capacity
    used = placement.compute_used[server] + problem.services[service].compute_per_instance
    utilisation = min(used / capacity, 1.0) if capacity > 0 else 1.0
    return (1.0 - utilisation) * layer_score + least_allocated_score(placement, service, server)


def _kube_score(placement: Placement, service: int, server: int) -> float:
    return image_locality_score(placement, service, server) + least_allocated_score(
        placement, service, server
    )


def place_pod_by_pod(
    problem: MicroserviceProblem, score: NodeScore, *, deadline: float = math.inf
) -> Placement:
    """The pod-by-pod loop of the scheduler baselines (module docstring).

    Parameters
    ----------
    problem:
        The problem.
    score:
        Node score of one pod, larger is better.
    deadline:
        ``time.monotonic()`` value after which no more pods are placed.

    Returns
    -------
    Placement
        Instances and stored layers (no borrowing).
    """
    placement = Placement(problem, borrowing=False)
    demands = sorted(
        (d for d in problem.demands if d.rate_rps > 0),
        key=lambda d: (-d.rate_rps, d.service, d.region),
    )
    for demand in demands:
        i, region = demand.service, demand.region
        replicas = math.ceil(demand.rate_rps / problem.services[i].service_rate_rps - 1e-9)
        for _ in range(replicas):
            if time.monotonic() >= deadline:
                return placement
            best: tuple[float, int, LayerPlan] | None = None
            for n in problem.reach(region):
                if placement.compute_room(i, n) < 1:
                    continue
                plan = placement.layer_plan(i, n, 1)
                if plan is None:
                    continue
                value = score(placement, i, n)
                if best is None or value > best[0]:
                    best = (value, n, plan)
            if best is None:
                break  # no node fits: the rest of this demand goes to the cloud
            placement.apply(i, best[1], 1, best[2])
    return placement


def _output(problem: MicroserviceProblem, placement: Placement, **metrics: object) -> SolverOutput:
    return solver_output(
        problem, placement.instances, placement.stored, placement.borrowed, metrics=metrics
    )


@register_solver(
    "image_locality",
    kind="microservice",
    role=Role.BASELINE,
    description="Kubernetes default scheduler: ImageLocality + LeastAllocated, pod by pod, no borrowing",
)
def solve_image_locality(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Place replicas pod by pod with kube-scheduler's ImageLocality and LeastAllocated scores."""
    deadline = time.monotonic() + options.remaining()
    return _output(problem, place_pod_by_pod(problem, _kube_score, deadline=deadline))


@register_solver(
    "lr_scheduler",
    kind="microservice",
    role=Role.BASELINE,
    description="LRScheduler-style layer-aware scoring (reconstruction), pod by pod, no borrowing",
)
def solve_lr_scheduler(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Place replicas pod by pod by layer bytes already on the node, weighted by idleness."""
    deadline = time.monotonic() + options.remaining()
    return _output(problem, place_pod_by_pod(problem, lr_scheduler_score, deadline=deadline))


@register_solver(
    "layer_oblivious",
    kind="microservice",
    role=Role.BASELINE,
    description="The greedy with layer-oblivious storage accounting (whole images, no sharing)",
    extra_options={
        "charge": Option(
            "'image' (default: once per service and server) or 'instance' (once per instance)",
            choices=("image", "instance"),
        ),
        "score": Option("greedy score, as for 'greedy'", choices=SCORES),
    },
)
def solve_layer_oblivious(problem: MicroserviceProblem, options: SolveOptions) -> SolverOutput:
    """Greedy placement that charges every deployment its whole image size."""
    charge = options.option("charge", "image")
    score = options.option("score", DEFAULT_SCORE)
    deadline = time.monotonic() + options.remaining()
    placement = Placement(
        problem, borrowing=False, layer_sharing=False, charge_per_instance=charge == "instance"
    )
    fill_greedily(placement, score=score, deadline=deadline)
    while improve_instances(placement, deadline=deadline) and time.monotonic() < deadline:
        fill_greedily(placement, score=score, deadline=deadline)
    return _output(problem, placement, charge=charge, charged_bytes=sum(placement.charged))
