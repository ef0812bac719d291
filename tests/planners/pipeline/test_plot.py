"""Tests of the pipeline Gantt chart: its bars are the simulator's replay, its end the evaluator's objective."""

from __future__ import annotations

from pathlib import Path

import pytest

import distplan
from distplan.planners.pipeline.plot import draw_gantt, gantt_rows, plot_pipeline
from distplan.planners.pipeline.simulator import evaluate_plan, simulate

pytest.importorskip("matplotlib")

INSTANCE = (
    Path(__file__).resolve().parents[3] / "instances" / "pipeline" / "alexnet__2x4-10gbe__k4.json"
)


@pytest.fixture(scope="module")
def solved():
    """PipeDream's plan (a replicated first stage, so there are all-reduce steps) on a two-server cluster."""
    problem = distplan.load_instance(INSTANCE)
    return problem, distplan.solve(problem, "pipedream_dp", time_limit=10)


def bars(figure, label: str) -> list[tuple[float, float, float]]:
    """(row centre, left, width) of every bar of ``label`` in the chart."""
    (container,) = [c for c in figure.axes[0].containers if c.get_label() == label]
    return [(p.get_y() + p.get_height() / 2, p.get_x(), p.get_width()) for p in container.patches]


def test_one_row_per_used_gpu_in_stage_order(solved) -> None:
    """Rows are the plan's GPUs ordered by stage, with stage boundaries between stages."""
    problem, result = solved
    rows, _ = gantt_rows(problem, result.plan)
    expected = [gpu for gpus in result.plan.gpus_of_stage for gpu in sorted(gpus)]
    assert [row.gpu for row in rows] == expected
    figure = draw_gantt(problem, result.plan)
    labels = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    assert labels == [f"GPU {row.gpu} {row.name} | stage {row.stages[0]}" for row in rows]
    boundaries = [
        line
        for line in figure.axes[0].lines
        if line.get_ydata()[0] == line.get_ydata()[-1] and line.get_linestyle() == "-"
    ]
    assert len(boundaries) == len(result.plan.gpus_of_stage) - 1


def test_compute_bars_are_the_simulated_tasks(solved) -> None:
    """Every forward/backward bar sits on its GPU's row with the simulated start and duration."""
    problem, result = solved
    trace = simulate(problem, result.plan, record=True)
    rows, _ = gantt_rows(problem, result.plan)
    row_of_gpu = {row.gpu: y for y, row in enumerate(rows)}
    figure = draw_gantt(problem, result.plan)
    for phase, label in (("F", "forward"), ("B", "backward")):
        expected = sorted(
            (row_of_gpu[t.gpu], t.start_s, t.end_s - t.start_s)
            for t in trace.tasks
            if t.phase == phase
        )
        drawn = sorted((round(y), left, width) for y, left, width in bars(figure, label))
        assert [row for row, _, _ in drawn] == [row for row, _, _ in expected]
        assert [v for _, *times in drawn for v in times] == pytest.approx(
            [v for _, *times in expected for v in times]
        )
        assert len(drawn) == problem.microbatches * sum(len(g) for g in result.plan.gpus_of_stage)


def test_transfers_and_allreduce_are_drawn_and_end_at_the_evaluators_objective(solved) -> None:
    """Communication and all-reduce bars match the trace; the last bar ends at the evaluated iteration time."""
    problem, result = solved
    trace = simulate(problem, result.plan, record=True)
    figure = draw_gantt(problem, result.plan)
    communication, allreduce = bars(figure, "communication"), bars(figure, "all-reduce")
    assert len(communication) == sum(1 for t in trace.transfers if t.kind != "allreduce")
    assert len(allreduce) == sum(1 for t in trace.transfers if t.kind == "allreduce") > 0
    every = [
        b
        for label in ("forward", "backward", "communication", "all-reduce")
        for b in bars(figure, label)
    ]
    iteration_s = evaluate_plan(problem, result.plan).objective
    assert max(left + width for _, left, width in every) == pytest.approx(iteration_s)
    assert result.objective == pytest.approx(iteration_s)


def test_plot_hook_writes_a_png(solved, tmp_path: Path) -> None:
    """The kind's plot hook writes a non-empty PNG file."""
    problem, result = solved
    path = tmp_path / "gantt.png"
    plot_pipeline(problem, result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
