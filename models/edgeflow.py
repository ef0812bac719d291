"""EdgeFlow: one DNN inference split across heterogeneous edge devices (problem and plan).

Reconstruction of the planning problem of Hu & Li, "Distributed Inference with Deep
Learning Models across Heterogeneous Edge Devices" (INFOCOM 2022). The paper's full
text is not available to us: the semantics below are ours, and they are the contract
every ``edgeflow`` solver and the independent simulator
(``planners/edgeflow/evaluator.py``) follow.

Problem
-------
* ``layers`` form a DAG (``inputs`` name the producers). A layer's output has
  ``out_rows`` rows (the height of an NHWC tensor; 1 for a vector) and ``out_bytes``
  bytes, spread evenly over the rows. A layer without inputs is an *input tensor*:
  it has no work and lives on ``input_device``. A layer nothing consumes is an
  *output*: all its rows must reach ``output_device``.
* Computing rows ``[a, b)`` of layer ``L`` costs ``work_flops * (b - a) / out_rows``
  FLOPs. A ``splittable`` layer (convolution, pooling, element-wise, concatenation)
  may be computed by row ranges on several devices; any other layer (fully
  connected, softmax, global pooling) only whole.
* Receptive field: output rows ``[a, b)`` of a splittable layer need rows
  ``[a * stride - pad_top, (b - 1) * stride - pad_top + kernel)`` of every input,
  clipped to ``[0, out_rows of the input)`` (``kernel_rows``, ``stride_rows``,
  ``pad_top_rows``; the defaults 1, 1, 0 mean row ``i`` needs row ``i``). A
  whole-only layer needs every row of every input.
* Devices (``devices``) are compute nodes of ``network`` (:mod:`models.network`,
  the shared network model) with a speed in FLOP/s, a fixed overhead in seconds per
  execution unit, and optionally a memory in bytes that must hold the weights of
  every layer the device computes any rows of.
* ``pins`` maps a layer to the one device that must compute all of it.

Plan (executable form)
----------------------
Per device an ordered list of *execution units*. A unit computes rows
``[row_start, row_stop)`` of one layer; it lists its *input requirements* (rows of
an input layer and the device they come from, possibly itself) and its
*forwarding table* (row ranges of its own output and the device each goes to).
Row ranges of one layer on different devices may overlap (redundant computation,
e.g. halo rows recomputed to fuse layers), but together they cover every row.

Execution semantics (the simulator's rules)
-------------------------------------------
* A device runs its units in list order; a unit starts when the device is free
  and every required row has arrived (rows it requires from itself must have been
  computed by an earlier unit of the same device). It lasts
  ``overhead_s + work_flops * rows / out_rows / flops_per_s`` seconds.
* When a unit finishes it issues its forwarding table in order. Each entry is a
  transfer of ``rows * out_bytes / out_rows`` bytes along ``network.route``.
  Sharing rule: *hold*, first-come first-served. Transfers are served in the order
  they are issued (ties: device order, then unit and entry order); a transfer
  starts when every resource of its route (each directed link and each capacitated
  forwarding node, e.g. the WLAN medium) is free, holds all of them for
  ``bytes / bottleneck`` seconds, and its data arrives ``route.latency_s`` later.
  This serialises a shared medium as CSMA/CA does and matches a no-overlap
  scheduling model. Transfers to oneself are free and instantaneous.
* Every forwarding entry must be matched by exactly one input requirement of the
  target device (same layer, same rows, naming the sender), except entries of an
  output layer sent to ``output_device``, which deliver the result.
* Objective: the latency of one inference in seconds, the time at which every row
  of every output layer is on ``output_device`` (the input is on
  ``input_device`` at time 0). Also reported: bytes moved, per-device busy time.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, model_validator

from .base import PlanBase, ProblemBase, StrictModel
from .graph import topological_order
from .network import Network

__all__ = [
    "DeviceProgram",
    "EdgeCluster",
    "EdgeDevice",
    "EdgeflowPlan",
    "EdgeflowProblem",
    "ExecutionUnit",
    "ForwardEntry",
    "InputRequirement",
    "Layer",
    "required_rows",
]

#: Caps that keep an instance file from asking for absurd work (a typo, not a DNN).
MAX_LAYERS = 5000
MAX_DEVICES = 64
MAX_ROWS = 100_000


class Layer(StrictModel):
    """One operator of the DNN, for a single inference (batch 1)."""

    name: str = Field(min_length=1, max_length=200)
    inputs: list[str] = Field(default_factory=list, description="names of the producer layers")
    work_flops: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="FLOPs of the whole layer"
    )
    out_rows: int = Field(
        default=1, ge=1, le=MAX_ROWS, description="rows (height) of the output tensor"
    )
    out_bytes: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="bytes of the whole output tensor"
    )
    weight_bytes: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="bytes of weights a device computing it holds",
    )
    splittable: bool = Field(
        default=False, description="whether rows may be computed on different devices"
    )
    kernel_rows: int = Field(
        default=1, ge=1, le=1000, description="receptive field height on every input"
    )
    stride_rows: int = Field(
        default=1, ge=1, le=1000, description="input rows advanced per output row"
    )
    pad_top_rows: int = Field(
        default=0, ge=0, le=1000, description="implicit zero rows above every input"
    )

    @property
    def bytes_per_row(self) -> float:
        """Output bytes of one row."""
        return self.out_bytes / self.out_rows

    @property
    def flops_per_row(self) -> float:
        """FLOPs of one output row."""
        return self.work_flops / self.out_rows


def required_rows(layer: Layer, producer: Layer, start: int, stop: int) -> tuple[int, int]:
    """Rows ``[a, b)`` of ``producer`` that rows ``[start, stop)`` of ``layer`` need.

    The receptive field of the module docstring: whole-only layers need every
    row; splittable layers ``[start * stride - pad_top, (stop - 1) * stride -
    pad_top + kernel)`` clipped to the producer's rows. May be empty (``a >= b``)
    when the rows only see padding.
    """
    if not layer.splittable:
        return 0, producer.out_rows
    first = start * layer.stride_rows - layer.pad_top_rows
    last = (stop - 1) * layer.stride_rows - layer.pad_top_rows + layer.kernel_rows
    return max(0, first), min(producer.out_rows, last)


class EdgeDevice(StrictModel):
    """A device that computes: a compute node of the network."""

    name: str = Field(min_length=1, max_length=200)
    flops_per_s: float = Field(gt=0, allow_inf_nan=False, description="effective speed in FLOP/s")
    overhead_s: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="seconds per execution unit"
    )
    memory_bytes: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="bytes for weights; None = unlimited"
    )


class EdgeCluster(StrictModel):
    """The devices and network of an instance, as a preset or a ``--devices`` file holds them."""

    devices: list[EdgeDevice] = Field(min_length=1, max_length=MAX_DEVICES)
    network: Network
    input_device: str
    output_device: str


class EdgeflowProblem(ProblemBase):
    """A DAG-shaped DNN, the devices and network that run it; see the module docstring."""

    kind: Literal["edgeflow"] = "edgeflow"
    layers: list[Layer] = Field(min_length=1, max_length=MAX_LAYERS)
    devices: list[EdgeDevice] = Field(min_length=1, max_length=MAX_DEVICES)
    network: Network
    input_device: str
    output_device: str
    pins: dict[str, str] = Field(
        default_factory=dict, description="layer name -> the device computing all of it"
    )

    @model_validator(mode="after")
    def _check_references(self) -> EdgeflowProblem:
        names: dict[str, int] = {}
        for k, layer in enumerate(self.layers):
            if layer.name in names:
                raise ValueError(f"layers[{k}].name: duplicate layer name {layer.name!r}")
            names[layer.name] = k
        for k, layer in enumerate(self.layers):
            for j, producer in enumerate(layer.inputs):
                if producer not in names:
                    raise ValueError(f"layers[{k}].inputs[{j}]: unknown layer {producer!r}")
                if producer == layer.name:
                    raise ValueError(f"layers[{k}].inputs[{j}]: layer {layer.name!r} feeds itself")
            if len(set(layer.inputs)) != len(layer.inputs):
                raise ValueError(f"layers[{k}].inputs: a producer is listed twice")
            if not layer.inputs and layer.work_flops > 0:
                raise ValueError(
                    f"layers[{k}].work_flops: input tensor {layer.name!r} must have no work"
                )
        edges = [(names[p], names[layer.name]) for layer in self.layers for p in layer.inputs]
        if topological_order(range(len(self.layers)), edges) is None:
            raise ValueError("layers: the inputs form a cycle")
        compute = set(self.network.compute_nodes)
        devices: set[str] = set()
        for k, device in enumerate(self.devices):
            if device.name in devices:
                raise ValueError(f"devices[{k}].name: duplicate device name {device.name!r}")
            if device.name not in compute:
                raise ValueError(f"devices[{k}] references unknown compute node {device.name!r}")
            devices.add(device.name)
        for field in ("input_device", "output_device"):
            if getattr(self, field) not in devices:
                raise ValueError(f"{field}: unknown device {getattr(self, field)!r}")
        for layer_name, pinned in self.pins.items():
            if layer_name not in names:
                raise ValueError(f"pins[{layer_name!r}]: unknown layer")
            if pinned not in devices:
                raise ValueError(f"pins[{layer_name!r}]: unknown device {pinned!r}")
        for a in self.devices:
            for b in self.devices:
                if a.name != b.name and self.network.route(a.name, b.name) is None:
                    raise ValueError(f"network: no route from device {a.name!r} to {b.name!r}")
        return self

    @cached_property
    def layer_by_name(self) -> dict[str, Layer]:
        """Every layer by its name."""
        return {layer.name: layer for layer in self.layers}

    @cached_property
    def device_by_name(self) -> dict[str, EdgeDevice]:
        """Every device by its name."""
        return {device.name: device for device in self.devices}

    @cached_property
    def topological_names(self) -> list[str]:
        """Layer names in the deterministic topological order of :func:`models.graph.topological_order`."""
        index = {layer.name: k for k, layer in enumerate(self.layers)}
        edges = [(index[p], index[layer.name]) for layer in self.layers for p in layer.inputs]
        order = topological_order(range(len(self.layers)), edges)
        assert order is not None  # the validator rejected cycles
        return [self.layers[k].name for k in order]

    @cached_property
    def consumers(self) -> dict[str, list[str]]:
        """For every layer, the layers that read it (in listing order)."""
        out: dict[str, list[str]] = {layer.name: [] for layer in self.layers}
        for layer in self.layers:
            for producer in layer.inputs:
                out[producer].append(layer.name)
        return out

    @cached_property
    def output_layers(self) -> list[str]:
        """Layers nothing consumes: their rows must reach ``output_device``."""
        return [layer.name for layer in self.layers if not self.consumers[layer.name]]

    def pinned_device(self, layer: str) -> str | None:
        """The device that must compute all of ``layer`` (input tensors: ``input_device``)."""
        if not self.layer_by_name[layer].inputs:
            return self.input_device
        return self.pins.get(layer)


class InputRequirement(StrictModel):
    """Rows ``[row_start, row_stop)`` of ``layer`` that a unit needs, and the device they come from."""

    layer: str
    row_start: int = Field(ge=0)
    row_stop: int = Field(ge=1)
    source: str


class ForwardEntry(StrictModel):
    """Rows ``[row_start, row_stop)`` of the unit's output, sent to ``target``."""

    row_start: int = Field(ge=0)
    row_stop: int = Field(ge=1)
    target: str


class ExecutionUnit(StrictModel):
    """Rows ``[row_start, row_stop)`` of one layer computed on one device."""

    layer: str
    row_start: int = Field(ge=0)
    row_stop: int = Field(ge=1)
    inputs: list[InputRequirement] = Field(default_factory=list)
    forward: list[ForwardEntry] = Field(default_factory=list)


class DeviceProgram(StrictModel):
    """The units one device executes, in order."""

    device: str
    units: list[ExecutionUnit] = Field(default_factory=list)


class EdgeflowPlan(PlanBase):
    """Executable plan: per device, its ordered execution units (see the module docstring)."""

    kind: Literal["edgeflow"] = "edgeflow"
    programs: list[DeviceProgram]

    def describe(self, problem: EdgeflowProblem) -> list[str]:
        """Readable lines: per device, its units as ``layer[rows]``."""
        lines = []
        for program in self.programs:
            if not program.units:
                continue
            parts = []
            for unit in program.units:
                layer = problem.layer_by_name.get(unit.layer)
                whole = layer is not None and (unit.row_start, unit.row_stop) == (0, layer.out_rows)
                parts.append(
                    unit.layer if whole else f"{unit.layer}[{unit.row_start}:{unit.row_stop}]"
                )
            shown = ", ".join(parts[:12]) + (
                f", ... ({len(parts)} units)" if len(parts) > 12 else ""
            )
            lines.append(f"{program.device}: {shown}")
        return lines
