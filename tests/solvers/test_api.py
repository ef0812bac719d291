"""The registry and the one solve() entry point, on a toy problem kind."""

from __future__ import annotations

from typing import Literal

import pytest

from distplan.models.base import StrictModel
from distplan.models.pipeline import PipelinePlan
from distplan.models.result import Evaluation, Role, SolveStatus
from distplan.solvers import (
    InfeasibleProblem,
    ProblemKind,
    SolverOutput,
    get_solver,
    register_kind,
    register_solver,
    solve,
    solvers,
)


class Toy(StrictModel):
    """Minimise a number the plan carries in its stage count; the evaluator counts stages."""

    kind: Literal["toy"] = "toy"
    name: str = "toy"
    floor: float = 1.0


def toy_plan(stages: int) -> PipelinePlan:
    return PipelinePlan(stage_of_layer=[0], gpus_of_stage=[[0]] * stages, order_of_stage=[[]] * stages, schedule="gpipe")


def toy_evaluate(problem: Toy, plan: PipelinePlan) -> Evaluation:
    ok = plan.num_stages >= problem.floor
    return Evaluation(feasible=ok, objective=float(plan.num_stages), violations=[] if ok else ["below floor"])


register_kind(ProblemKind(name="toy", sense="min", evaluate=toy_evaluate, bound=lambda p: p.floor))


@register_solver("toy_exact", kind="toy", role=Role.EXACT, auto_rank=1)
def toy_exact(problem: Toy, options) -> SolverOutput:
    """Returns the floor, proven."""
    n = int(problem.floor)
    return SolverOutput(SolveStatus.OPTIMAL, toy_plan(n), float(n), float(n))


@register_solver("toy_heuristic", kind="toy", role=Role.HEURISTIC, auto_rank=0)
def toy_heuristic(problem: Toy, options) -> SolverOutput:
    """Returns floor + 1 stages, or the seed's stage count when given."""
    n = int(problem.floor) + 1 + options.seed
    return SolverOutput(SolveStatus.FEASIBLE, toy_plan(n), float(n))


@register_solver("toy_liar", kind="toy", role=Role.HEURISTIC)
def toy_liar(problem: Toy, options) -> SolverOutput:
    """Returns a plan the evaluator rejects."""
    return SolverOutput(SolveStatus.FEASIBLE, toy_plan(0), 0.5)


@register_solver("toy_infeasible", kind="toy", role=Role.HEURISTIC)
def toy_infeasible(problem: Toy, options) -> SolverOutput:
    """Raises the infeasible exception with a reason."""
    raise InfeasibleProblem("floor is unreachable")


@register_solver("toy_missing", kind="toy", role=Role.EXACT, needs=("no_such_module_xyz",))
def toy_missing(problem: Toy, options) -> SolverOutput:
    """Needs a module that is not installed."""
    raise AssertionError("never called")


def test_auto_picks_lowest_rank() -> None:
    """solver='auto' takes the available solver with the lowest auto_rank."""
    assert get_solver("auto", "toy").name == "toy_heuristic"


def test_unknown_solver_lists_valid_names() -> None:
    """An unknown name raises ValueError listing the valid ones."""
    with pytest.raises(ValueError, match="valid solvers: auto, toy_exact"):
        solve(Toy(), "nope")


def test_missing_module_gives_install_hint() -> None:
    """A solver whose module is missing is unavailable, with a pip hint."""
    assert not next(s for s in solvers("toy") if s.name == "toy_missing").available
    with pytest.raises(ValueError, match="pip install no_such_module_xyz"):
        solve(Toy(), "toy_missing")


def test_result_contract_and_gap() -> None:
    """A heuristic result carries the kind's closed-form bound and the relative gap."""
    result = solve(Toy(floor=2), "toy_heuristic")
    assert result.status is SolveStatus.FEASIBLE
    assert result.objective == 3 and result.bound == 2
    assert result.gap == pytest.approx(1 / 3)
    assert result.metrics["evaluator_objective"] == 3
    data = result.model_dump(mode="json")
    assert data["schema_version"] == 1 and data["role"] == "heuristic" and data["sense"] == "min"


def test_exact_is_optimal_with_zero_gap() -> None:
    """An exact solve that proves its optimum reports gap 0."""
    result = solve(Toy(floor=2), "toy_exact")
    assert result.status is SolveStatus.OPTIMAL and result.gap == 0


def test_rejected_plan_becomes_error() -> None:
    """A plan the evaluator rejects turns the status into error with the violations."""
    result = solve(Toy(floor=1), "toy_liar")
    assert result.status is SolveStatus.ERROR
    assert result.metrics["violations"] == ["below floor"]


def test_infeasible_carries_reason() -> None:
    """InfeasibleProblem becomes status infeasible with the reason."""
    result = solve(Toy(), "toy_infeasible")
    assert result.status is SolveStatus.INFEASIBLE and result.metrics["reason"] == "floor is unreachable"
    assert result.plan is None and result.gap is None


def test_seed_reaches_solver() -> None:
    """The seed is passed to the solver and recorded."""
    assert solve(Toy(), "toy_heuristic", seed=2).objective == 4


def test_bad_time_limit() -> None:
    """A non-positive time limit is rejected with the field name."""
    with pytest.raises(ValueError, match="time_limit"):
        solve(Toy(), "toy_heuristic", time_limit=0)
