"""Tests of the microservice picture: placement, storage split and requests agree with the evaluator."""

from __future__ import annotations

from pathlib import Path

import pytest

import distplan
from distplan.planners.microservice.evaluator import evaluate_plan
from distplan.planners.microservice.plot import draw_placement, plot_microservice, storage_split

pytest.importorskip("matplotlib")

INSTANCE = Path(__file__).resolve().parents[3] / "instances" / "microservice" / "small-4x10.json"


@pytest.fixture(scope="module")
def solved():
    """The greedy plan on the shipped 4-server instance (it stores, shares and borrows layers)."""
    problem = distplan.load_instance(INSTANCE)
    return problem, distplan.solve(problem, "greedy", time_limit=10)


def axes_titled(figure, prefix: str):
    (ax,) = [ax for ax in figure.axes if ax.get_title().startswith(prefix)]
    return ax


def heights(ax, label: str, horizontal: bool = False) -> list[float]:
    (container,) = [c for c in ax.containers if c.get_label() == label]
    return [p.get_width() if horizontal else p.get_height() for p in container.patches]


def test_placement_map_is_the_plans_instances(solved) -> None:
    """The servers x services map shows plan.instances transposed."""
    problem, result = solved
    ax = axes_titled(draw_placement(problem, result.plan), "placement")
    shown = ax.images[0].get_array().tolist()
    assert shown == [list(column) for column in zip(*result.plan.instances, strict=True)]


def test_storage_bars_add_up_to_the_evaluators_bytes(solved) -> None:
    """Stored + shared bars add up to the evaluator's storage_used_bytes, borrowed bars to bytes_borrowed."""
    problem, result = solved
    metrics = evaluate_plan(problem, result.plan).metrics
    ax = axes_titled(draw_placement(problem, result.plan), "layers")
    stored, shared, borrowed = (
        heights(ax, label, horizontal=True) for label in ("stored", "shared", "borrowed")
    )
    assert len(stored) == len(problem.servers)
    assert (sum(stored) + sum(shared)) * 1e6 == pytest.approx(metrics["storage_used_bytes"])
    assert sum(borrowed) * 1e6 == pytest.approx(metrics["bytes_borrowed"])
    assert sum(shared) > 0 and sum(borrowed) > 0, "the fixture plan should exercise every segment"
    for split in storage_split(problem, result.plan):
        assert split.stored_bytes + split.shared_bytes <= split.capacity_bytes


def test_served_bars_add_up_to_the_evaluators_objective(solved) -> None:
    """Served requests/s per service sum to the evaluated throughput; demanded bars are the demands."""
    problem, result = solved
    evaluation = evaluate_plan(problem, result.plan)
    ax = axes_titled(draw_placement(problem, result.plan), "requests")
    served, demanded = heights(ax, "served"), heights(ax, "demanded")
    assert sum(served) == pytest.approx(evaluation.objective)
    for i, value in enumerate(demanded):
        assert value == pytest.approx(sum(d.rate_rps for d in problem.demands if d.service == i))
    assert all(s <= d + 1e-9 for s, d in zip(served, demanded, strict=True))


def test_plot_hook_writes_a_png(solved, tmp_path: Path) -> None:
    """The kind's plot hook writes a non-empty PNG file."""
    problem, result = solved
    path = tmp_path / "placement.png"
    plot_microservice(problem, result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
