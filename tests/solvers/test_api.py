"""The registry and the one solve() entry point, on a toy problem kind registered per test."""

from __future__ import annotations

import math
from typing import Literal

import pytest

from distplan.models.base import PlanBase, ProblemBase
from distplan.models.errors import BackendMissing, BadInput
from distplan.models.result import Evaluation, Role, SolveStatus
from distplan.solvers import InfeasibleProblem, SolverOutput, get_solver, solve
from distplan.solvers.registry import (
    ProblemKind,
    kinds,
    register_kind,
    register_solver,
    scoped_registry,
    solvers,
)


class Toy(ProblemBase):
    """Minimise a stage count the plan carries; the evaluator counts stages."""

    kind: Literal["toy"] = "toy"
    name: str = "toy"
    floor: float = 1.0


class ToyPlan(PlanBase):
    kind: Literal["toy"] = "toy"
    stages: int


def toy_evaluate(problem: Toy, plan: ToyPlan) -> Evaluation:
    ok = plan.stages >= problem.floor
    return Evaluation(
        feasible=ok, objective=float(plan.stages), violations=[] if ok else ["below floor"]
    )


def _register() -> None:
    register_kind(
        ProblemKind(
            name="toy",
            problem_type=Toy,
            plan_type=ToyPlan,
            sense="min",
            evaluate=toy_evaluate,
            bound=lambda p: p.floor,
        )
    )

    @register_solver("toy_exact", kind="toy", role=Role.EXACT, auto_rank=1)
    def toy_exact(problem: Toy, options) -> SolverOutput:
        """Returns the floor, proven."""
        n = int(problem.floor)
        return SolverOutput(SolveStatus.OPTIMAL, ToyPlan(stages=n), float(n), float(n))

    @register_solver(
        "toy_heuristic",
        kind="toy",
        role=Role.HEURISTIC,
        auto_rank=0,
        extra_options={"extra": "stages added"},
    )
    def toy_heuristic(problem: Toy, options) -> SolverOutput:
        """Returns floor + 1 + seed + option extra stages."""
        n = int(problem.floor) + 1 + options.seed + options.option("extra", 0)
        return SolverOutput(SolveStatus.FEASIBLE, ToyPlan(stages=n), float(n))

    @register_solver("toy_liar", kind="toy", role=Role.HEURISTIC)
    def toy_liar(problem: Toy, options) -> SolverOutput:
        """Returns a plan the evaluator rejects."""
        return SolverOutput(SolveStatus.FEASIBLE, ToyPlan(stages=0), 0.5)

    @register_solver("toy_boaster", kind="toy", role=Role.HEURISTIC)
    def toy_boaster(problem: Toy, options) -> SolverOutput:
        """Claims a better objective than its plan has, and a bound its plan beats."""
        n = int(problem.floor) + 2
        return SolverOutput(SolveStatus.FEASIBLE, ToyPlan(stages=n), 1.0, float(n + 5))

    @register_solver("toy_infeasible", kind="toy", role=Role.HEURISTIC)
    def toy_infeasible(problem: Toy, options) -> SolverOutput:
        """Raises the infeasible exception with a reason."""
        raise InfeasibleProblem("floor is unreachable")

    @register_solver("toy_planless", kind="toy", role=Role.HEURISTIC)
    def toy_planless(problem: Toy, options) -> SolverOutput:
        """Says feasible but gives no plan."""
        return SolverOutput(SolveStatus.FEASIBLE)

    @register_solver("toy_missing", kind="toy", role=Role.EXACT, needs=("no_such_module_xyz",))
    def toy_missing(problem: Toy, options) -> SolverOutput:
        """Needs a module that is not installed."""
        raise AssertionError("never called")


@pytest.fixture(autouse=True)
def toy_registered():
    """The toy kind exists during each test and never after."""
    with scoped_registry():
        _register()
        yield
    assert "toy" not in kinds()


def test_auto_picks_lowest_rank() -> None:
    """solver='auto' takes the available solver with the lowest auto_rank."""
    assert get_solver("auto", "toy").name == "toy_heuristic"


def test_unknown_solver_lists_valid_names() -> None:
    """An unknown name raises BadInput naming the field and listing the valid ones."""
    with pytest.raises(
        BadInput, match="solver: unknown solver 'nope'.*valid solvers: auto, toy_exact"
    ):
        solve(Toy(), "nope")


def test_missing_module_gives_install_hint() -> None:
    """A solver whose module is missing is unavailable, with a pip hint."""
    assert not next(s for s in solvers("toy") if s.name == "toy_missing").available
    with pytest.raises(BackendMissing, match="pip install no_such_module_xyz"):
        solve(Toy(), "toy_missing")


def test_result_contract_and_gap() -> None:
    """A heuristic result carries the kind's closed-form bound, the relative gap and typed fields."""
    result = solve(Toy(floor=2), "toy_heuristic")
    assert result.status is SolveStatus.FEASIBLE
    assert result.objective == 3 and result.bound == 2
    assert result.gap == pytest.approx(1 / 3)
    assert result.evaluator_objective == 3 and result.violations == [] and result.reason is None
    data = result.model_dump(mode="json")
    assert data["schema_version"] == 2 and data["role"] == "heuristic" and data["sense"] == "min"
    assert data["instance_hash"] and len(data["instance_hash"]) == 16


def test_exact_is_optimal_with_zero_gap() -> None:
    """An exact solve that proves its optimum reports gap 0."""
    result = solve(Toy(floor=2), "toy_exact")
    assert result.status is SolveStatus.OPTIMAL and result.gap == 0


def test_rejected_plan_becomes_error() -> None:
    """A plan the evaluator rejects turns the status into error with the violations."""
    result = solve(Toy(floor=1), "toy_liar")
    assert result.status is SolveStatus.ERROR and result.objective is None
    assert result.violations == ["below floor"]


def test_evaluator_objective_wins_and_contradicting_bound_is_dropped() -> None:
    """The evaluator's objective is reported; a solver bound the plan beats is dropped, not raised."""
    result = solve(Toy(floor=1), "toy_boaster")
    assert result.status is SolveStatus.FEASIBLE and result.objective == 3.0
    assert (
        result.metrics["objective_mismatch"] is True and result.metrics["solver_objective"] == 1.0
    )
    assert result.bound == 1.0  # the closed-form bound survives; the solver's 8.0 does not
    assert "contradicts" in result.metrics["dropped_bound"][0]


def test_infeasible_carries_reason() -> None:
    """InfeasibleProblem becomes status infeasible with the reason."""
    result = solve(Toy(), "toy_infeasible")
    assert result.status is SolveStatus.INFEASIBLE and result.reason == "floor is unreachable"
    assert result.plan is None and result.gap is None


def test_status_with_plan_but_no_plan_is_an_error() -> None:
    """A solver that claims a plan but returns none yields an error result, not an exception."""
    result = solve(Toy(), "toy_planless")
    assert result.status is SolveStatus.ERROR and "without a plan" in (result.reason or "")


def test_seed_and_options_reach_solver() -> None:
    """The seed and the declared options are passed to the solver."""
    assert solve(Toy(), "toy_heuristic", seed=2).objective == 4
    assert solve(Toy(), "toy_heuristic", options={"extra": 3}).objective == 5


def test_unknown_option_is_rejected_naming_valid_ones() -> None:
    """An option the solver does not declare is bad input listing the valid keys."""
    with pytest.raises(BadInput, match=r"options\.bogus: unknown option .* valid options: extra"):
        solve(Toy(), "toy_heuristic", options={"bogus": 1})


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("time_limit", 0),
        ("time_limit", -1.0),
        ("time_limit", math.nan),
        ("seed", -1),
        ("seed", 2**40),
        ("seed", 1.5),
        ("threads", 0),
        ("threads", 10**6),
    ],
)
def test_arguments_out_of_range_name_the_field(argument: str, value: object) -> None:
    """time_limit, seed and threads out of range are BadInput naming the argument."""
    with pytest.raises(BadInput, match=argument):
        solve(Toy(), "toy_heuristic", **{argument: value})  # type: ignore[arg-type]


def test_model_copy_cannot_bypass_validation() -> None:
    """A problem altered with model_copy(update=...) is validated again on the way into solve()."""
    broken = Toy().model_copy(update={"floor": math.inf})
    with pytest.raises(BadInput, match="floor"):
        solve(broken, "toy_heuristic")


def test_not_a_problem_is_bad_input() -> None:
    """Passing something that is not a problem model is bad input."""
    with pytest.raises(BadInput, match="problem"):
        solve({"kind": "toy"}, "toy_heuristic")
