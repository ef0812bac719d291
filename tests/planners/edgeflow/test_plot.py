"""Tests of the edgeflow device timeline: its bars are the simulator's replay, never a solver's estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

import distplan
from distplan.models.errors import BadInput
from distplan.planners.edgeflow.builder import Part, build_plan
from distplan.planners.edgeflow.evaluator import simulate
from distplan.planners.edgeflow.examples import chain_layers, tiny_problem
from distplan.planners.edgeflow.plot import (
    TRANSFER_LABEL,
    UNIT_LABEL,
    draw_timeline,
    timeline_rows,
)
from distplan.solvers.plotting import plot_result

from .conftest import plan, unit

pytest.importorskip("matplotlib")


def _chain(shared: bool = True):
    return tiny_problem("chain", chain_layers(), [1e7, 1e7], shared=shared)


def _split_plan():
    """conv split over d0 and d1 (the builder derives the halo rows [1, 4) sent to d1 and d1's half sent back for fc)."""
    parts = {
        "input": [Part("d0", 0, 4)],
        "conv": [Part("d0", 0, 2), Part("d1", 2, 4)],
        "fc": [Part("d0", 0, 1)],
    }
    return build_plan(_chain(), parts)[0]


def _local_plan():
    """Everything on d0: nothing crosses the network."""
    return plan(
        d0=[
            unit("input", 0, 4),
            unit("conv", 0, 4, needs=[("input", 0, 4, "d0")]),
            unit("fc", 0, 1, needs=[("conv", 0, 4, "d0")]),
        ],
        d1=[],
    )


def bars(figure, label: str) -> list[tuple[float, float, float]]:
    """(row centre, left, width) of every bar of ``label`` in the chart; empty when not drawn."""
    containers = [c for c in figure.axes[0].containers if c.get_label() == label]
    return [
        (p.get_y() + p.get_height() / 2, p.get_x(), p.get_width())
        for c in containers
        for p in c.patches
    ]


def test_unit_bars_are_the_simulated_unit_times() -> None:
    """Every execution-unit bar sits on its device's row with the simulator's start and end."""
    problem, split = _chain(), _split_plan()
    records = simulate(problem, split, record=True).metrics["unit_times"]
    rows, _ = timeline_rows(problem, split)
    row_of = {row.name: y for y, row in enumerate(rows)}
    expected = sorted((row_of[r["device"]], r["start_s"], r["end_s"]) for r in records)
    drawn = sorted(
        (round(y), left, left + width)
        for y, left, width in bars(draw_timeline(problem, split), UNIT_LABEL)
    )
    assert [y for y, _, _ in drawn] == [y for y, _, _ in expected]
    assert [t for _, *times in drawn for t in times] == pytest.approx(
        [t for _, *times in expected for t in times]
    )
    # The hand timeline of test_evaluator: d1's conv half starts when rows [1, 4) arrive (3 ms).
    assert (row_of["d1"], 0.003, 0.203) in [
        (y, pytest.approx(a), pytest.approx(b)) for y, a, b in drawn
    ]


def test_transfers_are_drawn_on_the_medium_and_end_before_the_latency() -> None:
    """On a shared medium each transfer is one bar on the medium's row, with the simulator's times."""
    problem, split = _chain(shared=True), _split_plan()
    evaluation = simulate(problem, split, record=True)
    rows, latency_s = timeline_rows(problem, split)
    assert [(row.name, row.kind) for row in rows] == [
        ("d0", "device"),
        ("d1", "device"),
        ("hub", "medium"),
    ]
    drawn = sorted(
        (left, left + width)
        for _, left, width in bars(draw_timeline(problem, split), TRANSFER_LABEL)
    )
    expected = sorted((r["start_s"], r["end_s"]) for r in evaluation.metrics["transfer_times"])
    assert len(drawn) == evaluation.metrics["transfers"] == 2
    assert [t for pair in drawn for t in pair] == pytest.approx(
        [t for pair in expected for t in pair]
    )
    assert latency_s == pytest.approx(evaluation.objective) == pytest.approx(0.305)


def test_transfers_without_a_medium_are_drawn_on_every_link_they_hold() -> None:
    """Through a non-blocking hub a transfer holds the sender's uplink and the receiver's downlink."""
    problem, split = _chain(shared=False), _split_plan()
    rows, _ = timeline_rows(problem, split)
    links = [row for row in rows if row.kind == "link"]
    assert [row.name for row in links] == ["d0 -> hub", "hub -> d1", "d1 -> hub", "hub -> d0"]
    assert all(len(row.bars) == 1 for row in links)
    assert len(bars(draw_timeline(problem, split), TRANSFER_LABEL)) == 4


def test_a_plan_without_transfers_draws_no_transfer_bars() -> None:
    """Everything on one device: device bars only, no network rows and no transfer bars."""
    problem, local = _chain(), _local_plan()
    rows, _ = timeline_rows(problem, local)
    assert [row.name for row in rows] == ["d0"]
    figure = draw_timeline(problem, local)
    assert bars(figure, TRANSFER_LABEL) == []
    assert len(bars(figure, UNIT_LABEL)) == 3


def test_a_plan_the_evaluator_rejects_is_not_drawn() -> None:
    """An infeasible plan raises BadInput naming the plan and the violation, not a half picture."""
    broken = plan(d0=[unit("input", 0, 4)], d1=[])
    with pytest.raises(
        BadInput, match="plan: cannot draw a plan the evaluator rejects: layer 'conv'"
    ):
        timeline_rows(_chain(), broken)


def test_plot_result_writes_the_png_of_a_solved_instance(tmp_path: Path) -> None:
    """plot_result dispatches to the edgeflow hook and writes a PNG whose timeline ends at the evaluated latency."""
    problem = _chain()
    result = distplan.solve(problem, "edgeflow", time_limit=10)
    path = plot_result(problem, result, tmp_path / "timeline.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    figure = draw_timeline(problem, result.plan)
    ends = [
        left + width
        for label in (UNIT_LABEL, TRANSFER_LABEL)
        for _, left, width in bars(figure, label)
    ]
    assert max(ends) == pytest.approx(result.objective)
