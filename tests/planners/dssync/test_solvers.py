"""dssync solvers: plans accepted by the evaluator, determinism, ours never slower, bad input."""

from __future__ import annotations

import math

import pytest

from distplan.models.errors import BadInput
from distplan.models.result import HAS_PLAN
from distplan.planners.dssync import baselines, ds_sync
from distplan.planners.dssync.evaluator import evaluate_plan
from distplan.planners.dssync.examples import tiny_problems
from distplan.planners.dssync.generator import generate_dssync
from distplan.planners.dssync.grouping import rack_budgets
from distplan.solvers.options import SolveOptions

SOLVERS = {
    "ring_rank": baselines.ring_rank,
    "ring_rack": baselines.ring_rack,
    "hierarchical": baselines.hierarchical,
    "periodic": baselines.periodic,
    "random_groups": baselines.random_groups,
    "gossip": baselines.gossip,
    "ds_sync": ds_sync.ds_sync,
}


@pytest.fixture(scope="module")
def small():
    return generate_dssync(
        racks=3, workers_per_rack=4, slow_uplink="1:8", calibration_iterations=20
    )


@pytest.fixture(scope="module")
def outputs(small):
    return {name: solver(small, SolveOptions(seed=1)) for name, solver in SOLVERS.items()}


@pytest.mark.parametrize("name", list(SOLVERS))
def test_plan_accepted_and_objective_is_the_evaluators(small, outputs, name: str) -> None:
    """Every solver's plan passes the evaluator and reports the evaluator's objective."""
    output = outputs[name]
    assert output.status in HAS_PLAN
    evaluation = evaluate_plan(small, output.plan)
    assert evaluation.feasible, evaluation.violations
    assert output.objective == pytest.approx(evaluation.objective, rel=1e-9)
    assert output.bound is None


@pytest.mark.parametrize("name", list(SOLVERS))
def test_same_seed_same_plan(small, outputs, name: str) -> None:
    """Same instance, solver and seed give the same plan."""
    assert SOLVERS[name](small, SolveOptions(seed=1)).plan == outputs[name].plan


def test_ds_sync_is_never_slower_than_a_baseline(outputs) -> None:
    """Ours reaches the target no later than any baseline on the contended instance."""
    ours = outputs["ds_sync"].objective
    assert math.isfinite(ours)
    for name, output in outputs.items():
        assert ours <= output.objective * (1 + 1e-9), name


def test_ds_sync_puts_the_grouping_bound_in_metrics_only(outputs) -> None:
    """The grouping MILP bound is reported in metrics, never as a bound on the time."""
    metrics = outputs["ds_sync"].metrics
    grouping = metrics["grouping_max3"]
    assert grouping["milp_bound"] is not None
    assert grouping["milp_bound"] >= grouping["mixing_slots"] - 1e-6
    assert outputs["ds_sync"].bound is None


def test_slow_uplink_shrinks_its_budget(small) -> None:
    """Sensing: the slow rack's uplink carries fewer ring hops than the others."""
    budget = dict(zip(small.racks, rack_budgets(small), strict=True))
    assert budget["rack1"] == 1  # uplink 4 NIC / 8 = half a NIC: at least one ring may cross
    assert budget["rack0"] == budget["rack2"] == 4


def test_shuffle_schedule_overcommits_only_the_slow_uplink(small) -> None:
    """Mixing partitions built from the MILP overcommit no uplink but the slow rack's (budget 1)."""
    from distplan.models.dssync import DssyncPlan
    from distplan.planners.dssync.evaluator import overcommitted_links
    from distplan.planners.dssync.grouping import solve_grouping

    mixing = solve_grouping(small, 3, SolveOptions())
    plan = DssyncPlan.of_groups(ds_sync.shuffle_schedule(small, mixing, 2))
    found = overcommitted_links(small, plan)
    assert found, "the slow uplink (half a NIC) carries one NIC-rate ring"
    assert all("tor1->spine" in line or "spine->tor1" in line for line in found), found


@pytest.mark.parametrize("problem", tiny_problems(), ids=lambda p: p.name)
def test_tiny_examples_are_solved_by_every_solver(problem) -> None:
    """The conformance examples are solved quickly with finite time to target."""
    for solver in SOLVERS.values():
        output = solver(problem, SolveOptions())
        assert output.status in HAS_PLAN and math.isfinite(output.objective)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"racks": 0}, "--racks"),
        ({"workers_per_rack": 1000}, "--workers-per-rack"),
        ({"slow_uplink": "9:2"}, "--slow-uplink"),
        ({"slow_uplink": "x"}, "--slow-uplink"),
        ({"background": 0.99}, "--background"),
        ({"oversubscription": math.nan}, "--oversubscription"),
    ],
)
def test_generator_bad_arguments_name_the_option(arguments, field: str) -> None:
    """Bad generator arguments raise BadInput naming the option."""
    with pytest.raises(BadInput) as info:
        generate_dssync(**arguments)
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize("intra", [None, 2])
def test_shuffle_with_half_size_groups_still_mixes_every_rack(intra) -> None:
    """Groups of half the racks rotate rack slots, so one period contracts (rho_P < 1)."""
    from distplan.models.dssync import DssyncPlan
    from distplan.planners.dssync.grouping import solve_grouping
    from distplan.planners.dssync.training_sim import consensus_factor

    problem = generate_dssync(racks=4, workers_per_rack=3, calibration_iterations=5)
    mixing = solve_grouping(problem, 2, SolveOptions())
    assert all(len(group) == 2 for group in mixing.racks_of_group)
    plan = DssyncPlan.of_groups(ds_sync.shuffle_schedule(problem, mixing, 2, intra))
    assert consensus_factor(problem, plan) < 0.99


def test_pairs_of_racks_change_every_shuffle() -> None:
    """With one mixing slot per rack and groups of two racks, every rack pair meets in a period."""
    from distplan.planners.dssync.grouping import solve_grouping

    problem = generate_dssync(
        racks=4, workers_per_rack=3, oversubscription=3, calibration_iterations=5
    )
    mixing = solve_grouping(problem, 2, SolveOptions())
    rack = {w.name: w.rack for w in problem.workers}
    met = set()
    for partition in ds_sync.shuffle_schedule(problem, mixing, 1, None):
        for group in partition:
            racks = sorted({rack[m] for m in group})
            if len(racks) == 2:
                met.add(tuple(racks))
    assert len(met) == 6, met


def test_unreachable_target_is_no_solution_with_a_reason() -> None:
    """A target no schedule reaches gives no plan and says why (exit 3 in the CLI)."""
    import distplan

    problem = generate_dssync(racks=2, workers_per_rack=2, calibration_iterations=5)
    task = problem.training.model_copy(update={"target_loss": 0.0, "max_iterations": 30})
    problem = problem.model_copy(update={"training": task})
    for solver in ("ring_rack", "ds_sync"):
        result = distplan.solve(problem, solver)
        assert result.status.value == "no_solution"
        assert "within 30 iterations" in (result.reason or "")


def test_mixes_everyone_detects_a_disconnected_period() -> None:
    """Two racks that never meet make the period disconnected; one cross pair connects it."""
    problem = generate_dssync(racks=2, workers_per_rack=2, calibration_iterations=5)
    racks = [[w.name for w in problem.workers if w.rack == r] for r in ("rack0", "rack1")]
    assert not ds_sync.mixes_everyone(problem, [racks])
    cross = [[racks[0][0], racks[1][0]], [racks[0][1]], [racks[1][1]]]
    assert ds_sync.mixes_everyone(problem, [racks, cross])


@pytest.mark.parametrize("size", [4, 5, 8])
def test_round_robin_pairs_meet_every_pair_once(size: int) -> None:
    """The circle method pairs every two rack members exactly once in W-1 (or W) rounds."""
    from distplan.planners.dssync.ds_sync import _round_robin_pairs

    members = [f"m{k}" for k in range(size)]
    rounds = size - 1 if size % 2 == 0 else size
    met = [tuple(sorted(g)) for r in range(rounds) for g in _round_robin_pairs(members, r)]
    pairs = [pair for pair in met if len(pair) == 2]
    assert len(pairs) == len(set(pairs)) == size * (size - 1) // 2
