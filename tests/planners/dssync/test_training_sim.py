"""Numpy training simulator: consensus algebra and equivalence with centralised SGD."""

from __future__ import annotations

import numpy as np
import pytest

from distplan.models.dssync import DssyncPlan
from distplan.planners.dssync.schedules import random_equal_partition
from distplan.planners.dssync.training_sim import (
    averaging_matrix,
    consensus_factor,
    make_data,
    rack_numbers,
    train,
)

from .conftest import two_rack_problem


@pytest.mark.parametrize(("n", "k"), [(12, 3), (16, 4), (8, 2)])
def test_random_equal_groups_contraction_matches_formula(n: int, k: int) -> None:
    """E||W x||^2 / ||x||^2 over random equal groups is (n-k)/(k(n-1)) for zero-mean x."""
    rng = np.random.default_rng(7)
    names = [str(i) for i in range(n)]
    ratios = []
    for _ in range(6000):
        x = rng.normal(size=n)
        x -= x.mean()
        groups = [[int(m) for m in g] for g in random_equal_partition(names, k, rng)]
        w = averaging_matrix(groups, n)
        ratios.append(float((w @ x) @ (w @ x) / (x @ x)))
    assert np.mean(ratios) == pytest.approx((n - k) / (k * (n - 1)), rel=0.04)


def test_row_then_column_grid_reaches_exact_consensus_in_two_iterations() -> None:
    """Rows, then columns of a 3x4 grid: W2 W1 = J/n (rho 0); rows alone do not mix."""
    rows = {f"r{i}": [f"w{i}{j}" for j in range(4)] for i in range(3)}
    problem = two_rack_problem(rows)
    row_groups = list(rows.values())
    column_groups = [[rows[f"r{i}"][j] for i in range(3)] for j in range(4)]
    grid = DssyncPlan.of_groups([row_groups, column_groups])
    assert consensus_factor(problem, grid) == pytest.approx(0.0, abs=1e-12)
    assert consensus_factor(problem, DssyncPlan.of_groups([row_groups])) == pytest.approx(1.0)


def test_global_ring_trains_like_centralised_sgd_on_the_union_batch() -> None:
    """Averaging every worker every iteration gives exactly centralised SGD on the union batch."""
    problem = two_rack_problem({"a": ["a1", "a2", "a3"], "b": ["b1", "b2"]})
    task = problem.training.model_copy(update={"target_loss": -1.0, "max_iterations": 12})
    problem = problem.model_copy(update={"training": task})
    names = [w.name for w in problem.workers]
    run = train(problem, DssyncPlan.of_groups([[names]]))

    data = make_data(task, rack_numbers(problem))
    batch_rng = np.random.default_rng([task.seed, 1])
    model = np.zeros(task.dimension)
    losses = [data.full_loss(model)]
    for _ in range(task.max_iterations):
        batches = batch_rng.integers(0, task.samples_per_worker, size=(len(names), task.batch_size))
        x = np.concatenate([data.features[w, batches[w]] for w in range(len(names))])
        y = np.concatenate([data.labels[w, batches[w]] for w in range(len(names))])
        gradient = x.T @ (1 / (1 + np.exp(-x @ model)) - y) / len(y) + 1e-3 * model
        model = model - task.learning_rate * gradient
        losses.append(data.full_loss(model))
    assert run.losses == pytest.approx(losses, rel=1e-12, abs=1e-12)
    assert run.iterations_to_target is None


def test_no_averaging_differs_from_global_averaging_on_skewed_data() -> None:
    """With label skew, never averaging trains a different mean model than averaging."""
    problem = two_rack_problem({"a": ["a1", "a2"], "b": ["b1", "b2"]})
    task = problem.training.model_copy(
        update={"target_loss": -1.0, "max_iterations": 6, "heterogeneity": 1.0}
    )
    problem = problem.model_copy(update={"training": task})
    names = [w.name for w in problem.workers]
    alone = train(problem, DssyncPlan.of_groups([[[n] for n in names]]))
    together = train(problem, DssyncPlan.of_groups([[names]]))
    assert alone.losses[-1] != pytest.approx(together.losses[-1], rel=1e-6)
