"""Turn row assignments into an executable plan, estimating times as layers are placed.

Every ``edgeflow`` solver decides, layer by layer, which device computes which
rows; :class:`PlanBuilder` derives the rest of the executable form (input
requirements from the receptive field, which copy of each row to fetch, the
forwarding tables, deliveries to the output device) and keeps a solver-side
estimate of when each unit and transfer happens. The estimate reserves route
resources in placement order (the simulator serves them in issue order), so it
is the solvers' own model; plans are always scored by the independent simulator.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from ...models.edgeflow import (
    DeviceProgram,
    EdgeflowPlan,
    EdgeflowProblem,
    ExecutionUnit,
    ForwardEntry,
    InputRequirement,
    required_rows,
)

__all__ = ["Part", "PlanBuilder", "Trial"]


@dataclass(frozen=True)
class Part:
    """Rows ``[start, stop)`` of a layer computed on ``device``."""

    device: str
    start: int
    stop: int


@dataclass
class _Unit:
    layer: str
    device: str
    start: int
    stop: int
    finish_s: float
    inputs: list[tuple[str, int, int, str]] = field(default_factory=list)  # layer, rows, source
    forward: list[tuple[int, int, str]] = field(default_factory=list)  # rows, target


@dataclass
class Trial:
    """The estimated outcome of placing one layer (not yet committed)."""

    layer: str
    finish_s: float
    bytes_moved: float
    units: list[_Unit]
    device_free: dict[str, float]
    resource_free: dict[str, float]  # every resource (few: links and media)
    sent: MutableMapping[
        tuple[str, int, int, str, str], float
    ]  # only the transfers this trial adds
    new_forwards: list[tuple[_Unit, tuple[int, int, str]]]


class PlanBuilder:
    """Places layers in a topological order and assembles the executable plan.

    Parameters
    ----------
    problem
        The instance.
    """

    def __init__(self, problem: EdgeflowProblem) -> None:
        self.problem = problem
        self.device_free: dict[str, float] = {d.name: 0.0 for d in problem.devices}
        self.resource_free: dict[str, float] = {}
        self.sent: (
            dict[tuple[str, int, int, str, str], float]
            | ChainMap[tuple[str, int, int, str, str], float]
        ) = {}
        self.pieces: dict[str, list[_Unit]] = {}
        self.programs: dict[str, list[_Unit]] = {d.name: [] for d in problem.devices}
        self.bytes_moved = 0.0
        self.routes: dict[tuple[str, str], tuple[tuple[str, ...], float, float]] = {}
        self.weights: dict[str, dict[str, float]] = {}  # device -> layer -> weight bytes held
        self.source_cache: dict[
            tuple[int, str, int, int], tuple[list[_Unit], list[tuple[_Unit, int, int]]]
        ] = {}

    def _route(self, source: str, target: str) -> tuple[tuple[str, ...], float, float]:
        """Resources, bottleneck bytes/s and latency (seconds) of the route ``source -> target``."""
        key = (source, target)
        if key not in self.routes:
            route = self.problem.network.route(source, target)
            assert route is not None  # the problem validator checked every device pair
            self.routes[key] = (route.resources, route.bottleneck_bytes_per_s, route.latency_s)
        return self.routes[key]

    def layer_finish_s(self, layer: str) -> float:
        """Estimated time at which the last unit of a placed layer finishes (seconds)."""
        return max(unit.finish_s for unit in self.pieces[layer])

    def _sources(self, producer: str, device: str, a: int, b: int) -> list[tuple[_Unit, int, int]]:
        """Which placed units supply rows ``[a, b)`` of ``producer`` to ``device``: own copies first."""
        pieces = self.pieces[producer]
        return self._choose_sources(pieces, device, a, b)

    @staticmethod
    def _choose_sources(
        pieces: list[_Unit], device: str, a: int, b: int
    ) -> list[tuple[_Unit, int, int]]:
        out: list[tuple[_Unit, int, int]] = []
        position = a
        while position < b:
            holding = [u for u in pieces if u.start <= position < u.stop]
            own = [u for u in holding if u.device == device]
            if own:
                chosen = max(own, key=lambda u: u.stop)
                stop = min(b, chosen.stop)
            else:
                chosen = min(holding, key=lambda u: (u.finish_s, -u.stop))
                stop = min(b, chosen.stop)
                later_own = [
                    u.start for u in pieces if u.device == device and position < u.start < stop
                ]
                stop = min([stop, *later_own])
            out.append((chosen, position, stop))
            position = stop
        return out

    def fits(self, layer_name: str, devices: list[str]) -> bool:
        """Whether ``devices`` can also hold the weights of ``layer_name`` (bytes)."""
        weight = self.problem.layer_by_name[layer_name].weight_bytes
        for device in devices:
            memory = self.problem.device_by_name[device].memory_bytes
            held = self.weights.get(device, {})
            if (
                memory is not None
                and layer_name not in held
                and sum(held.values()) + weight > memory
            ):
                return False
        return True

    def trial(self, layer_name: str, parts: list[Part]) -> Trial:
        """Estimate placing ``layer_name`` as ``parts`` without committing it."""
        problem = self.problem
        layer = problem.layer_by_name[layer_name]
        device_free = dict(self.device_free)
        resource_free = dict(self.resource_free)
        known = self.sent
        sent: dict[tuple[str, int, int, str, str], float] = {}
        new_forwards: list[tuple[_Unit, tuple[int, int, str]]] = []
        units: list[_Unit] = []
        moved = 0.0
        for part in parts:
            speed = problem.device_by_name[part.device]
            ready = 0.0
            inputs: list[tuple[str, int, int, str]] = []
            for producer_name in layer.inputs:
                producer = problem.layer_by_name[producer_name]
                a, b = required_rows(layer, producer, part.start, part.stop)
                if a >= b:
                    continue
                for source, s, e in self._sources(producer_name, part.device, a, b):
                    inputs.append((producer_name, s, e, source.device))
                    if source.device == part.device:
                        ready = max(ready, source.finish_s)
                        continue
                    key = (producer_name, s, e, source.device, part.device)
                    arrival = sent.get(key)
                    if arrival is None:
                        arrival = known.get(key)
                    if arrival is None:
                        nbytes = (e - s) * producer.bytes_per_row
                        resources, bottleneck, latency = self._route(source.device, part.device)
                        begin = max(
                            [source.finish_s] + [resource_free.get(r, 0.0) for r in resources]
                        )
                        end = begin + nbytes / bottleneck
                        for resource in resources:
                            resource_free[resource] = end
                        arrival = end + latency if nbytes > 0 else source.finish_s
                        sent[key] = arrival
                        moved += nbytes
                        new_forwards.append((source, (s, e, part.device)))
                    ready = max(ready, arrival)
            duration = (
                speed.overhead_s
                + layer.flops_per_row * (part.stop - part.start) / speed.flops_per_s
            )
            finish = max(device_free[part.device], ready) + duration
            device_free[part.device] = finish
            units.append(_Unit(layer_name, part.device, part.start, part.stop, finish, inputs))
        finish_s = max(unit.finish_s for unit in units)
        return Trial(
            layer_name,
            finish_s,
            moved,
            units,
            device_free,
            resource_free,
            sent,
            new_forwards,
        )

    def commit(self, trial: Trial, record: bool = True) -> None:
        """Apply a trial; with ``record`` its units join the programs and its transfers the forwarding tables."""
        self.device_free = trial.device_free
        self.resource_free = trial.resource_free
        self.sent.update(trial.sent)
        self.bytes_moved += trial.bytes_moved
        self.pieces[trial.layer] = trial.units
        weight = self.problem.layer_by_name[trial.layer].weight_bytes
        for unit in trial.units:
            self.weights.setdefault(unit.device, {})[trial.layer] = weight
        if record:
            for source, entry in trial.new_forwards:
                source.forward.append(entry)
            for unit in trial.units:
                self.programs[unit.device].append(unit)

    def shadow(self) -> PlanBuilder:
        """A copy for look-ahead: commits to it (with ``record=False``) leave this builder untouched."""
        copy = PlanBuilder.__new__(PlanBuilder)
        copy.problem = self.problem
        copy.device_free = dict(self.device_free)
        copy.resource_free = dict(self.resource_free)
        copy.sent = ChainMap({}, self.sent)
        copy.pieces = dict(self.pieces)
        copy.programs = {}
        copy.bytes_moved = self.bytes_moved
        copy.routes = self.routes
        copy.weights = {device: dict(held) for device, held in self.weights.items()}
        return copy

    def place(self, layer_name: str, parts: list[Part]) -> float:
        """Place and commit; returns the layer's estimated finish time (seconds)."""
        trial = self.trial(layer_name, parts)
        self.commit(trial)
        return trial.finish_s

    def deliver_outputs(self) -> float:
        """Forward every output row not computed on the output device; the estimated latency (seconds)."""
        problem = self.problem
        target = problem.output_device
        latency = 0.0
        for name in problem.output_layers:
            layer = problem.layer_by_name[name]
            here = [u for u in self.pieces[name] if u.device == target]
            if any(u.start == 0 and u.stop == layer.out_rows for u in here):
                latency = max(latency, max(u.finish_s for u in here))
                continue
            for unit in sorted(self.pieces[name], key=lambda u: (u.finish_s, u.start)):
                if unit.device == target:
                    latency = max(latency, unit.finish_s)
                    continue
                nbytes = (unit.stop - unit.start) * layer.bytes_per_row
                resources, bottleneck, route_latency = self._route(unit.device, target)
                begin = max([unit.finish_s] + [self.resource_free.get(r, 0.0) for r in resources])
                end = begin + nbytes / bottleneck
                for resource in resources:
                    self.resource_free[resource] = end
                self.bytes_moved += nbytes
                unit.forward.append((unit.start, unit.stop, target))
                latency = max(latency, end + route_latency if nbytes > 0 else unit.finish_s)
        return latency

    def plan(self) -> EdgeflowPlan:
        """The executable plan: every device's units in placement order."""
        programs = []
        for device in self.problem.devices:
            units = [
                ExecutionUnit(
                    layer=u.layer,
                    row_start=u.start,
                    row_stop=u.stop,
                    inputs=[
                        InputRequirement(layer=n, row_start=a, row_stop=b, source=d)
                        for n, a, b, d in u.inputs
                    ],
                    forward=[
                        ForwardEntry(row_start=a, row_stop=b, target=d) for a, b, d in u.forward
                    ],
                )
                for u in self.programs[device.name]
            ]
            programs.append(DeviceProgram(device=device.name, units=units))
        return EdgeflowPlan(programs=programs)


def build_plan(
    problem: EdgeflowProblem, parts_of_layer: dict[str, list[Part]], order: list[str] | None = None
) -> tuple[EdgeflowPlan, float]:
    """The executable plan for a fixed row assignment, and its estimated latency (seconds).

    ``order`` is the placement order (a topological order; default the problem's).
    """
    builder = PlanBuilder(problem)
    for name in order or problem.topological_names:
        builder.place(name, parts_of_layer[name])
    latency = builder.deliver_outputs()
    return builder.plan(), latency


def memory_overflow(problem: EdgeflowProblem, plan: EdgeflowPlan) -> str | None:
    """Why ``plan`` does not fit the devices' memory (weights of every layer a device computes), or None."""
    for program in plan.programs:
        memory = problem.device_by_name[program.device].memory_bytes
        layers = {unit.layer for unit in program.units}
        need = sum(problem.layer_by_name[name].weight_bytes for name in layers)
        if memory is not None and need > memory:
            return f"the plan needs {need:.6g} bytes of weights on {program.device!r}, which holds {memory:.6g}"
    return None


def parts_from_counts(devices: list[str], counts: list[int]) -> list[Part]:
    """Contiguous row ranges: ``counts[k]`` rows to ``devices[k]``, in that order (zero counts skipped)."""
    parts = []
    position = 0
    for device, count in zip(devices, counts, strict=True):
        if count > 0:
            parts.append(Part(device, position, position + count))
            position += count
    return parts


def whole(problem: EdgeflowProblem, layer: str, device: str) -> list[Part]:
    """All rows of ``layer`` on ``device``."""
    return [Part(device, 0, problem.layer_by_name[layer].out_rows)]
