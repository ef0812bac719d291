"""Numpy training simulator of a DS-Sync schedule (part of the independent evaluator).

Replays the numerical semantics of :mod:`distplan.models.dssync`: per-worker
SGD on a synthetic convex task, then exact averaging of model parameters inside
every group of the iteration's partition. The data and the minibatch indices
depend only on the task's seed, so every plan trains on the same batches.
Imports only ``models/`` and numpy; shares no code with the solvers.

Synthetic task (reconstruction): features ``X ~ N(0, I_d)`` per worker, a true
model ``x* ~ N(0, I_d / d) * 3``. Logistic: labels ``y ~ Bernoulli(sigmoid(X x*))``;
least squares: ``y = X x* + N(0, 0.1^2)``. Heterogeneity ``h``: with
probability ``h`` a label is replaced by its rack's class (racks alternate
between classes 0 and 1; least squares: ``y += 2 h s_rack`` with ``s = +-1``), so
``h = 0`` is IID and ``h = 1`` is label-skewed by rack. Loss: mean per-sample
loss over all workers' data plus ``1e-3 / 2 * ||x||^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...models.dssync import DssyncPlan, DssyncProblem, TrainingTask

__all__ = [
    "GroupAverager",
    "SyntheticData",
    "TrainingRun",
    "averaging_matrix",
    "consensus_factor",
    "make_data",
    "train",
]

L2_REGULARISATION = 1e-3


@dataclass(frozen=True)
class SyntheticData:
    """Per-worker samples: ``features[w]`` is (samples, d), ``labels[w]`` is (samples,)."""

    features: np.ndarray
    labels: np.ndarray
    loss: str

    def full_loss(self, model: np.ndarray) -> float:
        """Mean loss over every worker's samples at ``model`` (d,), with the L2 term."""
        z = self.features @ model
        if self.loss == "logistic":
            per_sample = np.logaddexp(0.0, z) - self.labels * z
        else:
            per_sample = 0.5 * (z - self.labels) ** 2
        return float(per_sample.mean() + 0.5 * L2_REGULARISATION * model @ model)

    def gradients(self, models: np.ndarray, batches: np.ndarray) -> np.ndarray:
        """Minibatch gradient of every worker at its own model; ``batches`` is (n, b) indices."""
        n = models.shape[0]
        rows = np.arange(n)[:, None]
        x = self.features[rows, batches]  # (n, b, d)
        y = self.labels[rows, batches]
        z = np.einsum("nbd,nd->nb", x, models)
        residual = 1.0 / (1.0 + np.exp(-z)) - y if self.loss == "logistic" else z - y
        return np.einsum("nbd,nb->nd", x, residual) / batches.shape[1] + (
            L2_REGULARISATION * models
        )


def make_data(task: TrainingTask, rack_of_worker: list[int]) -> SyntheticData:
    """The task's data, deterministic from ``task.seed`` (see the module docstring)."""
    rng = np.random.default_rng([task.seed, 0])
    n, m, d = len(rack_of_worker), task.samples_per_worker, task.dimension
    truth = rng.normal(0.0, 3.0 / np.sqrt(d), size=d)
    features = rng.normal(size=(n, m, d))
    z = features @ truth
    skew = np.array([1.0 if r % 2 == 0 else 0.0 for r in rack_of_worker])[:, None]
    if task.loss == "logistic":
        labels = (rng.random((n, m)) < 1.0 / (1.0 + np.exp(-z))).astype(float)
        replace = rng.random((n, m)) < task.heterogeneity
        labels = np.where(replace, np.broadcast_to(skew, (n, m)), labels)
    else:
        labels = z + rng.normal(0.0, 0.1, size=(n, m)) + 2 * task.heterogeneity * (2 * skew - 1)
    return SyntheticData(features, labels, task.loss)


def averaging_matrix(groups: list[list[int]], n: int) -> np.ndarray:
    """The n x n matrix W of one partition: W[i, j] = 1/|G| when i, j share group G."""
    matrix = np.zeros((n, n))
    for members in groups:
        matrix[np.ix_(members, members)] = 1.0 / len(members)
    return matrix


class GroupAverager:
    """Applies one partition's W to the rows of an array in O(rows x columns)."""

    def __init__(self, groups: list[list[int]]) -> None:
        self.order = np.array([w for members in groups for w in members])
        self.sizes = np.array([len(members) for members in groups])
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        sums = np.add.reduceat(rows[self.order], self.starts, axis=0)
        out = np.empty_like(rows)
        out[self.order] = np.repeat(sums / self.sizes[:, None], self.sizes, axis=0)
        return out


def _partition_indices(problem: DssyncProblem, plan: DssyncPlan) -> list[list[list[int]]]:
    index = problem.worker_index
    return [[[index[m] for m in g.members] for g in p.groups] for p in plan.partitions]


def consensus_factor(problem: DssyncProblem, plan: DssyncPlan) -> float:
    """rho_P = ||W_P ... W_1 - J/n||_2 over one period (0 = exact consensus)."""
    n = len(problem.workers)
    product = np.eye(n)
    for groups in _partition_indices(problem, plan):
        product = GroupAverager(groups)(product)
    return float(np.linalg.norm(product - np.full((n, n), 1.0 / n), ord=2))


@dataclass(frozen=True)
class TrainingRun:
    """Outcome of replaying a plan's averaging on SGD.

    ``losses[t]`` is the loss of the workers' mean model after ``t`` iterations
    (``losses[0]`` before training); ``iterations_to_target`` the first ``t`` with
    ``losses[t] <= target``, or None when not reached within the cap.
    """

    losses: list[float]
    iterations_to_target: int | None


def rack_numbers(problem: DssyncProblem) -> list[int]:
    """Every worker's rack as its position in ``problem.racks``."""
    number = {rack: k for k, rack in enumerate(problem.racks)}
    return [number[w.rack] for w in problem.workers]


def train(
    problem: DssyncProblem, plan: DssyncPlan, max_iterations: int | None = None
) -> TrainingRun:
    """Run per-worker SGD with the plan's group averaging until the target loss or the cap."""
    task = problem.training
    cap = task.max_iterations if max_iterations is None else max_iterations
    data = make_data(task, rack_numbers(problem))
    n = len(problem.workers)
    partitions = _partition_indices(problem, plan)
    averagers: dict[int, GroupAverager] = {}
    batch_rng = np.random.default_rng([task.seed, 1])
    models = np.zeros((n, task.dimension))
    losses = [data.full_loss(models.mean(axis=0))]
    reached = 0 if losses[0] <= task.target_loss else None
    t = 0
    while reached is None and t < cap:
        batches = batch_rng.integers(0, task.samples_per_worker, size=(n, task.batch_size))
        models = models - task.learning_rate * data.gradients(models, batches)
        p = t % len(partitions)
        if p not in averagers:
            averagers[p] = GroupAverager(partitions[p])
        models = averagers[p](models)
        t += 1
        losses.append(data.full_loss(models.mean(axis=0)))
        if losses[-1] <= task.target_loss:
            reached = t
    return TrainingRun(losses, reached)
