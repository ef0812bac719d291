"""Gantt chart of a pipeline plan, drawn from the simulator's replay.

One row per GPU the plan uses (ordered by stage, then GPUs that only relay
transfers), forward and backward compute
as full-height bars, activation/gradient transfers and all-reduce ring steps as
thin bars under the sending GPU's compute, stage boundaries as horizontal
lines, and the simulated iteration time as a dashed vertical line. Every time
comes from :func:`~distplan.planners.pipeline.simulator.simulate`, the same
replay the evaluator runs, never from a solver.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...models.errors import BadInput
from ...models.pipeline import PipelinePlan, PipelineProblem
from ...solvers.plotting import new_figure, save_figure
from .simulator import simulate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["BAR_LABELS", "GanttRow", "draw_gantt", "gantt_rows", "plot_pipeline"]

#: Legend label and colour of every bar family.
BAR_LABELS = {
    "F": ("forward", "tab:blue"),
    "B": ("backward", "tab:orange"),
    "activation": ("communication", "tab:green"),
    "gradient": ("communication", "tab:green"),
    "allreduce": ("all-reduce", "tab:red"),
}
#: Height of a compute bar and of a transfer bar, in row units.
COMPUTE_HEIGHT, TRANSFER_HEIGHT = 0.6, 0.2


@dataclass(frozen=True)
class GanttRow:
    """One GPU's row: its stages and its bars as (label, start seconds, duration seconds)."""

    gpu: int
    name: str
    stages: tuple[int, ...]
    compute: tuple[tuple[str, float, float], ...]
    transfers: tuple[tuple[str, float, float], ...]


def gantt_rows(problem: PipelineProblem, plan: PipelinePlan) -> tuple[list[GanttRow], float]:
    """Rows of the Gantt chart and the iteration time (seconds), from the simulator's replay.

    Raises
    ------
    BadInput
        When the plan cannot be replayed (structural errors) or deadlocks.
    """
    trace = simulate(problem, plan, record=True)
    if trace.iteration_s is None:
        raise BadInput("RESULT", f"plan: cannot draw a deadlocked plan: {trace.deadlock}")
    stages_of_gpu: dict[int, set[int]] = defaultdict(set)
    for stage, gpus in enumerate(plan.gpus_of_stage):
        for gpu in gpus:
            stages_of_gpu[gpu].add(stage)
    compute: dict[int, list[tuple[str, float, float]]] = defaultdict(list)
    for task in trace.tasks:
        compute[task.gpu].append(
            (BAR_LABELS[task.phase][0], task.start_s, task.end_s - task.start_s)
        )
    sends: dict[int, list[tuple[str, float, float]]] = defaultdict(list)
    for transfer in trace.transfers:
        sends[transfer.src_gpu].append(
            (BAR_LABELS[transfer.kind][0], transfer.start_s, transfer.end_s - transfer.start_s)
        )
    for gpu in sends:
        stages_of_gpu.setdefault(gpu, set())  # a GPU that only relays transfers gets a row too
    order = sorted(
        stages_of_gpu,
        key=lambda gpu: (min(stages_of_gpu[gpu], default=len(plan.gpus_of_stage)), gpu),
    )
    rows = [
        GanttRow(
            gpu=gpu,
            name=problem.cluster.gpus[gpu].name,
            stages=tuple(sorted(stages_of_gpu[gpu])),
            compute=tuple(compute[gpu]),
            transfers=tuple(sends[gpu]),
        )
        for gpu in order
    ]
    return rows, trace.iteration_s


def draw_gantt(problem: PipelineProblem, plan: PipelinePlan) -> Figure:
    """The Gantt chart as a matplotlib figure; bars are grouped in containers labelled as in :data:`BAR_LABELS`."""
    rows, iteration_s = gantt_rows(problem, plan)
    figure = new_figure(10.0, 1.0 + 0.45 * len(rows))
    ax = figure.add_subplot()
    colours = {label: colour for label, colour in BAR_LABELS.values()}
    bars: dict[str, tuple[list[float], list[float], list[float], float]] = {}
    for y, row in enumerate(rows):
        for label, start, width in row.compute:
            entry = bars.setdefault(label, ([], [], [], COMPUTE_HEIGHT))
            entry[0].append(y - 0.1)
            entry[1].append(start)
            entry[2].append(width)
        for label, start, width in row.transfers:
            entry = bars.setdefault(label, ([], [], [], TRANSFER_HEIGHT))
            entry[0].append(y + 0.3)
            entry[1].append(start)
            entry[2].append(width)
    for label in ("forward", "backward", "communication", "all-reduce"):
        if label in bars:
            ys, lefts, widths, height = bars[label]
            ax.barh(
                ys,
                widths,
                left=lefts,
                height=height,
                color=colours[label],
                label=label,
                edgecolor="white",
                linewidth=0.5,
            )
    for y in range(1, len(rows)):
        if rows[y].stages != rows[y - 1].stages:
            ax.axhline(y - 0.5, color="black", linewidth=0.8)
    ax.axvline(iteration_s, color="black", linestyle="--", linewidth=1.0)
    ax.set_yticks(range(len(rows)), [_row_label(row) for row in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("time within the iteration (s)")
    ax.set_title(
        f"{problem.name}: {plan.schedule} schedule, iteration {iteration_s:.6g} s (simulated)"
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize="small")
    return figure


def _row_label(row: GanttRow) -> str:
    if not row.stages:
        return f"GPU {row.gpu} {row.name} | relay"
    stages = ",".join(str(s) for s in row.stages)
    return f"GPU {row.gpu} {row.name} | stage {stages}"


def plot_pipeline(problem: PipelineProblem, result: Any, path: Path) -> None:
    """The kind's ``plot`` hook: the Gantt chart of ``result.plan`` as a PNG at ``path``."""
    save_figure(draw_gantt(problem, result.plan), path)
