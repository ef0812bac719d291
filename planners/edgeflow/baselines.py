"""Literature baselines, each run as its authors would on the same devices and network.

* ``single-device``: the whole model on one device (the best of all devices,
  counting the transfer of the input to it and of the result back).
* ``neurosurgeon`` (Kang et al., ASPLOS 2017): one cut in the layer order; the
  prefix runs on the input device, the suffix on one helper; the best cut and
  helper by predicted latency.
* ``dads`` (Hu et al., INFOCOM 2019): the DAG cut between the input device and
  one helper by a minimum s-t cut (networkx) whose capacities are the seconds of
  computing a layer on each side and of sending a layer's output once; the best
  helper is kept.
* ``modnn`` (Mao et al., DATE 2017): every splittable layer split equally over all
  devices; whole-only layers on the fastest device.
* ``coedge`` (Zeng et al., ToN 2021): every splittable layer split in proportion
  to device speed (communication ignored when sharing); whole-only layers on the
  fastest device.
* ``heft`` (Topcuoglu et al., TPDS 2002): list scheduling of whole layers by
  upward rank (mean compute + mean transfer), each on the device giving the
  earliest estimated finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import networkx as nx

from ...models.edgeflow import EdgeflowPlan, EdgeflowProblem
from ...models.result import Role, SolveStatus
from ...solvers.options import SolveOptions, SolverOutput
from ...solvers.registry import register_solver
from .builder import Part, PlanBuilder, build_plan, memory_overflow, parts_from_counts, whole
from .replay import plan_latency
from .shares import largest_remainder

__all__ = ["dads_parts", "heft_plan", "neurosurgeon_parts", "split_parts"]

Assignment = dict[str, list[Part]]


def _mean_rate(problem: EdgeflowProblem) -> float:
    """Mean bottleneck bytes/s over ordered device pairs (inf with one device)."""
    rates = [
        problem.network.route(a.name, b.name).bottleneck_bytes_per_s  # type: ignore[union-attr]
        for a in problem.devices
        for b in problem.devices
        if a.name != b.name
    ]
    return sum(rates) / len(rates) if rates else float("inf")


def _fastest(problem: EdgeflowProblem) -> str:
    return max(problem.devices, key=lambda d: d.flops_per_s).name


def _pinned_or(problem: EdgeflowProblem, layer: str, device: str) -> list[Part]:
    return whole(problem, layer, problem.pinned_device(layer) or device)


def _best(
    problem: EdgeflowProblem, assignments: Iterable[Assignment], options: SolveOptions
) -> tuple[EdgeflowPlan, bool]:
    """The assignment whose plan fits memory with the lowest latency (first on ties), and
    whether the time limit cut the enumeration (after at least one assignment)."""
    best: tuple[bool, float, EdgeflowPlan] | None = None
    for parts in assignments:
        if best is not None and options.expired():
            return best[2], True
        plan, _ = build_plan(problem, parts)
        key = (memory_overflow(problem, plan) is not None, plan_latency(problem, plan))
        if best is None or key < best[:2]:
            best = (*key, plan)
    assert best is not None
    return best[2], False


def single_device_parts(problem: EdgeflowProblem, device: str) -> Assignment:
    """Every layer on ``device`` (pins and the input tensor stay where they must)."""
    return {layer.name: _pinned_or(problem, layer.name, device) for layer in problem.layers}


def split_parts(problem: EdgeflowProblem, weights: dict[str, float]) -> Assignment:
    """Splittable layers split over the devices in proportion to ``weights``; the rest on the fastest."""
    names = [d.name for d in problem.devices]
    fastest = _fastest(problem)
    out: Assignment = {}
    for layer in problem.layers:
        if problem.pinned_device(layer.name) is not None or not layer.splittable:
            out[layer.name] = _pinned_or(problem, layer.name, fastest)
            continue
        counts = largest_remainder([weights[d] for d in names], layer.out_rows)
        out[layer.name] = parts_from_counts(names, counts)
    return out


def neurosurgeon_parts(problem: EdgeflowProblem, helper: str, cut: int) -> Assignment:
    """The first ``cut`` layers (topological order) on the input device, the rest on ``helper``."""
    order = problem.topological_names
    return {
        name: _pinned_or(problem, name, problem.input_device if k < cut else helper)
        for k, name in enumerate(order)
    }


def dads_parts(problem: EdgeflowProblem, helper: str) -> Assignment:
    """DADS minimum s-t cut between the input device (source side) and ``helper`` (sink side)."""
    if helper == problem.input_device:
        return single_device_parts(problem, helper)
    local, remote = problem.device_by_name[problem.input_device], problem.device_by_name[helper]
    route = problem.network.route(local.name, helper)
    assert route is not None
    graph = nx.DiGraph()
    for layer in problem.layers:
        node = ("layer", layer.name)
        pin = problem.pinned_device(layer.name)
        # Cutting source -> v puts v remote (pays remote time); v -> sink puts it local.
        graph.add_edge(
            "local",
            node,
            capacity=float("inf") if pin == local.name else layer.work_flops / remote.flops_per_s,
        )
        graph.add_edge(
            node,
            "remote",
            capacity=float("inf") if pin == helper else layer.work_flops / local.flops_per_s,
        )
        consumers = problem.consumers[layer.name]
        if consumers:
            relay = ("sent", layer.name)
            graph.add_edge(node, relay, capacity=route.transfer_s(layer.out_bytes))
            for consumer in consumers:
                graph.add_edge(relay, ("layer", consumer), capacity=float("inf"))
                # Data flows one way only (local -> remote), as in DADS.
                graph.add_edge(("layer", consumer), node, capacity=float("inf"))
    _, (local_side, _) = nx.minimum_cut(graph, "local", "remote")
    return {
        layer.name: _pinned_or(
            problem, layer.name, local.name if ("layer", layer.name) in local_side else helper
        )
        for layer in problem.layers
    }


def heft_plan(problem: EdgeflowProblem) -> tuple[EdgeflowPlan, float]:
    """HEFT on whole layers: upward-rank order, earliest estimated finish device."""
    mean_speed = sum(d.flops_per_s for d in problem.devices) / len(problem.devices)
    rate = _mean_rate(problem)
    rank: dict[str, float] = {}
    for name in reversed(problem.topological_names):
        layer = problem.layer_by_name[name]
        tail = max((layer.out_bytes / rate + rank[c] for c in problem.consumers[name]), default=0.0)
        rank[name] = layer.work_flops / mean_speed + tail
    position = {name: k for k, name in enumerate(problem.topological_names)}
    order = sorted(problem.topological_names, key=lambda n: (-rank[n], position[n]))
    builder = PlanBuilder(problem)
    for name in order:
        pin = problem.pinned_device(name)
        devices = [pin] if pin is not None else [d.name for d in problem.devices]
        trials = [builder.trial(name, whole(problem, name, d)) for d in devices]
        builder.commit(min(trials, key=lambda t: t.finish_s))
    latency = builder.deliver_outputs()
    return builder.plan(), latency


def _output(problem: EdgeflowProblem, plan: EdgeflowPlan, cut: bool = False) -> SolverOutput:
    overflow = memory_overflow(problem, plan)
    if overflow is not None:  # the baselines ignore memory, as their authors' systems do
        return SolverOutput(SolveStatus.NO_SOLUTION, metrics={"reason": overflow})
    status = SolveStatus.TIME_LIMIT if cut else SolveStatus.FEASIBLE
    return SolverOutput(status, plan=plan, objective=plan_latency(problem, plan))


def _baseline(
    name: str, description: str
) -> Callable[[Callable[..., SolverOutput]], Callable[..., SolverOutput]]:
    return register_solver(name, kind="edgeflow", role=Role.BASELINE, description=description)


@_baseline("single-device", "best single device (whole model on one device)")
def solve_single_device(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """The whole model on the device with the lowest latency."""
    plan, cut = _best(
        problem, (single_device_parts(problem, d.name) for d in problem.devices), options
    )
    return _output(problem, plan, cut)


@_baseline("neurosurgeon", "Neurosurgeon: one cut between the input device and one helper")
def solve_neurosurgeon(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """Every cut point and every helper; the lowest latency."""
    helpers = [d.name for d in problem.devices if d.name != problem.input_device] or [
        problem.input_device
    ]
    cuts = range(1, len(problem.layers) + 1)
    plan, cut = _best(
        problem, (neurosurgeon_parts(problem, h, c) for h in helpers for c in cuts), options
    )
    return _output(problem, plan, cut)


@_baseline("dads", "DADS: min-cut of the DAG between the input device and one helper")
def solve_dads(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """The DADS min cut for every helper; the lowest latency."""
    helpers = [d.name for d in problem.devices if d.name != problem.input_device] or [
        problem.input_device
    ]
    plan, cut = _best(problem, (dads_parts(problem, h) for h in helpers), options)
    return _output(problem, plan, cut)


@_baseline("modnn", "MoDNN: every splittable layer split equally over all devices")
def solve_modnn(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """Equal row split per layer."""
    plan, latency = build_plan(
        problem, split_parts(problem, {d.name: 1.0 for d in problem.devices})
    )
    return _output(problem, plan)


@_baseline("coedge", "CoEdge: every splittable layer split in proportion to device speed")
def solve_coedge(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """Capability-proportional row split per layer."""
    weights = {d.name: d.flops_per_s for d in problem.devices}
    plan, latency = build_plan(problem, split_parts(problem, weights))
    return _output(problem, plan)


@_baseline("heft", "HEFT list scheduling of whole layers")
def solve_heft(problem: EdgeflowProblem, options: SolveOptions) -> SolverOutput:
    """Upward-rank list scheduling."""
    plan, latency = heft_plan(problem)
    return _output(problem, plan)
