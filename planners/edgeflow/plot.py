"""Device timeline of an edgeflow plan, drawn from the independent simulator's replay.

One row per device that runs units: its execution units as bars labelled
``layer[rows]`` (text only on bars wide enough to hold it). Below them
one row per network resource that carries transfers: a shared medium (e.g. the
WLAN) for routes through one, else each directed link of the route (``dev0 ->
switch``), with the transfers as bars labelled by layer. The inference latency
is a dashed vertical line. Every time comes from
:func:`~distplan.planners.edgeflow.evaluator.simulate` with ``record=True``,
never from a solver's estimate.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...models.edgeflow import EdgeflowPlan, EdgeflowProblem
from ...models.errors import BadInput
from ...solvers.plotting import new_figure, save_figure
from .evaluator import simulate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["TimelineBar", "TimelineRow", "draw_timeline", "plot_edgeflow", "timeline_rows"]

#: Legend label and colour of the unit bars and of the transfer bars.
UNIT_LABEL, UNIT_COLOUR = "execution unit", "tab:blue"
TRANSFER_LABEL, TRANSFER_COLOUR = "transfer", "tab:green"
#: A bar carries its text only when it is at least this fraction of the latency wide per character.
LABEL_FRACTION_PER_CHAR = 0.006


@dataclass(frozen=True)
class TimelineBar:
    """One bar: what it is (``layer[rows]``), start and end in seconds."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class TimelineRow:
    """One row: a device (``kind == "device"``) or a network resource (``"medium"``, ``"link"``)."""

    name: str
    kind: str
    bars: tuple[TimelineBar, ...]


def _rows_text(problem: EdgeflowProblem, layer: str, start: int, stop: int) -> str:
    if (start, stop) == (0, problem.layer_by_name[layer].out_rows):
        return layer
    return f"{layer}[{start}:{stop}]"


def _resource_name(problem: EdgeflowProblem, resource: str) -> tuple[str, str]:
    """Readable name and kind (``medium`` or ``link``) of a route resource ``link:<i>`` / ``node:<n>``."""
    family, _, key = resource.partition(":")
    if family == "node":
        return key, "medium"
    link = problem.network.directed_links[int(key)]
    return f"{link.source} -> {link.target}", "link"


def timeline_rows(problem: EdgeflowProblem, plan: EdgeflowPlan) -> tuple[list[TimelineRow], float]:
    """Rows of the timeline and the inference latency (seconds), from the simulator's replay.

    Device rows come first in the problem's device order (devices without
    units are left out), then media, then links, each in order of first use.
    A transfer through a shared medium is drawn on the medium's row (its links
    are held for the same interval); one without a medium on each link it holds.

    Raises
    ------
    BadInput
        When the simulator rejects the plan (the violations are named).
    """
    evaluation = simulate(problem, plan, record=True)
    if not evaluation.feasible or evaluation.objective is None:
        raise BadInput(
            "RESULT",
            "plan: cannot draw a plan the evaluator rejects: "
            + "; ".join(evaluation.violations[:3]),
        )
    units: dict[str, list[TimelineBar]] = defaultdict(list)
    for record in evaluation.metrics["unit_times"]:
        text = _rows_text(problem, record["layer"], record["row_start"], record["row_stop"])
        units[record["device"]].append(TimelineBar(text, record["start_s"], record["end_s"]))
    network: dict[tuple[str, str], list[TimelineBar]] = {}
    for record in evaluation.metrics["transfer_times"]:
        resources = record["resources"]
        media = [r for r in resources if r.startswith("node:")]
        text = _rows_text(problem, record["layer"], record["row_start"], record["row_stop"])
        for resource in media or resources:
            key = _resource_name(problem, resource)
            network.setdefault(key, []).append(
                TimelineBar(text, record["start_s"], record["end_s"])
            )
    rows = [
        TimelineRow(device.name, "device", tuple(sorted(units[device.name], key=_bar_key)))
        for device in problem.devices
        if units[device.name]
    ]
    for kind in ("medium", "link"):
        rows += [
            TimelineRow(name, kind, tuple(sorted(bars, key=_bar_key)))
            for (name, of_kind), bars in network.items()
            if of_kind == kind
        ]
    return rows, evaluation.objective


def _bar_key(bar: TimelineBar) -> tuple[float, float, str]:
    return bar.start_s, bar.end_s, bar.text


def draw_timeline(problem: EdgeflowProblem, plan: EdgeflowPlan) -> Figure:
    """The timeline as a matplotlib figure; unit and transfer bars are two containers
    labelled :data:`UNIT_LABEL` and :data:`TRANSFER_LABEL`."""
    rows, latency_s = timeline_rows(problem, plan)
    figure = new_figure(12.0, 1.2 + 0.5 * len(rows))
    ax = figure.add_subplot()
    for label, colour, kinds in (
        (UNIT_LABEL, UNIT_COLOUR, ("device",)),
        (TRANSFER_LABEL, TRANSFER_COLOUR, ("medium", "link")),
    ):
        placed = [(y, bar) for y, row in enumerate(rows) if row.kind in kinds for bar in row.bars]
        if not placed:
            continue
        ax.barh(
            [y for y, _ in placed],
            [bar.end_s - bar.start_s for _, bar in placed],
            left=[bar.start_s for _, bar in placed],
            height=0.6,
            color=colour,
            label=label,
            edgecolor="white",
            linewidth=0.5,
        )
        for y, bar in placed:
            if bar.end_s - bar.start_s >= LABEL_FRACTION_PER_CHAR * len(bar.text) * latency_s:
                ax.text(
                    (bar.start_s + bar.end_s) / 2,
                    y,
                    bar.text,
                    ha="center",
                    va="center",
                    fontsize="x-small",
                    clip_on=True,
                )
    devices = sum(1 for row in rows if row.kind == "device")
    if 0 < devices < len(rows):
        ax.axhline(devices - 0.5, color="black", linewidth=0.8)
    ax.axvline(latency_s, color="black", linestyle="--", linewidth=1.0)
    ax.set_yticks(range(len(rows)), [f"{row.name} ({row.kind})" for row in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("time since the input is available (s)")
    ax.set_title(f"{problem.name}: latency {latency_s:.6g} s (simulated)")
    figure.legend(loc="outside lower center", ncol=2, fontsize="small")
    return figure


def plot_edgeflow(problem: EdgeflowProblem, result: Any, path: Path) -> None:
    """The kind's ``plot`` hook: the device timeline of ``result.plan`` as a PNG at ``path``."""
    save_figure(draw_timeline(problem, result.plan), path)
