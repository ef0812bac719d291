"""The physical floor: hand-computed on a model that fits no single server, below every solver's time."""

from __future__ import annotations

from pathlib import Path

import pytest

from distplan.models import load_instance
from distplan.models.pipeline import PipelineLayer, PipelinePlan, PipelineProblem
from distplan.planners.pipeline.bounds import cut_floor_s, iteration_lower_bound, out_capacity
from distplan.planners.pipeline.clusters import load_cluster, servers
from distplan.planners.pipeline.simulator import evaluate_plan
from distplan.solvers.api import solve

INSTANCES = Path(__file__).resolve().parents[3] / "instances" / "pipeline"
FAST_SOLVERS = ("uniform", "balance_by_time", "alpa_dp", "pipedream_dp")
ALL_SOLVERS = (*FAST_SOLVERS, "topo", "cpsat")


def too_big_for_one_server() -> PipelineProblem:
    """Two 1-GPU servers of 8e9 bytes, 1e9 B/s private links; a 2-layer model needing 10e9 bytes."""
    layers = [
        PipelineLayer(
            name=n, forward_s=0.1, backward_s=0.1, activation_bytes=a, parameter_bytes=1e9
        )
        for n, a in (("x", 1e9), ("y", 5e8))
    ]
    return PipelineProblem(
        name="big",
        layers=layers,
        edges=[(0, 1)],
        cluster=servers(1, [8e9, 8e9], [1.0, 1.0], 1e9, 1e9),
        microbatches=2,
    )


def test_cut_floor_counts_the_bytes_that_must_cross_a_server():
    """Each of 2 micro-batches sends x's 1e9 bytes across and back over 2 x 1e9 B/s: T >= 2 s."""
    problem = too_big_for_one_server()
    assert out_capacity(problem.cluster, problem.cluster.server_of_gpu) == {"s0": 1e9, "s1": 1e9}
    assert cut_floor_s(problem, problem.cluster.server_of_gpu) == pytest.approx(2.0)
    assert iteration_lower_bound(problem) == pytest.approx(
        2.0
    )  # compute alone: 2 * 0.4 / 2 = 0.4 s
    plan = PipelinePlan(
        stage_of_layer=[0, 1],
        gpus_of_stage=[[0], [1]],
        order_of_stage=[[(0, "F"), (1, "F"), (0, "B"), (1, "B")]] * 2,
        schedule="gpipe",
    )
    report = evaluate_plan(problem, plan)
    assert report.feasible and report.objective is not None
    assert iteration_lower_bound(problem) <= report.objective


def test_cut_floor_is_zero_when_a_server_holds_the_model():
    """With 20e9-byte GPUs the model fits one server: no bytes must cross, only the compute term is left."""
    problem = too_big_for_one_server()
    roomy = PipelineProblem.model_validate(
        problem.model_dump()
        | {"cluster": servers(1, [20e9, 20e9], [1.0, 1.0], 1e9, 1e9).model_dump()}
    )
    assert cut_floor_s(roomy, roomy.cluster.server_of_gpu) == 0.0
    assert iteration_lower_bound(roomy) == pytest.approx(0.4)


def test_nic_cut_of_presets_is_the_nic():
    """A server's max-flow to the rest is its NIC: 1.25e9 (10 GbE), 3.125e9 (25 GbE), 4 x 12.5e9 (IB rails)."""
    for preset, expected in (("2x4-10gbe", 1.25e9), ("4x4-mixed", 3.125e9), ("2x8-ib-rail", 50e9)):
        cluster = load_cluster(preset)
        assert set(out_capacity(cluster, cluster.server_of_gpu).values()) == {expected}


def assert_floor_below_every_solver(name: str, solvers: tuple[str, ...], time_limit: float) -> None:
    """Every plan a solver returns simulates no faster than the floor (at least one solver has one).

    A solver without a plan is not a floor violation (alpa_dp proposes more replicas than a
    micro-batch has samples on some 16-GPU instances; that is the baseline's test to fail).
    """
    problem = load_instance(INSTANCES / f"{name}.json")
    assert isinstance(problem, PipelineProblem)
    floor = iteration_lower_bound(problem)
    objectives = {}
    for solver in solvers:
        result = solve(problem, solver, time_limit=time_limit)
        if result.objective is not None:
            objectives[solver] = result.objective
    assert objectives, (name, "no solver returned a plan")
    for solver, objective in objectives.items():
        assert floor <= objective * (1 + 1e-9), (name, solver, floor, objective)


@pytest.mark.parametrize(
    "name", ["alexnet__2x4-10gbe__k4", "resnet18__4x4-mixed__k16", "vgg16__2x8-ib-rail__k4"]
)
def test_floor_is_below_fast_solvers_on_shipped_instances(name: str):
    """On three shipped instances the floor is at most every fast solver's simulated time."""
    assert_floor_below_every_solver(name, FAST_SOLVERS, 10.0)


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(INSTANCES.glob("*.json")), ids=lambda p: p.stem)
def test_floor_is_below_every_solver_on_every_shipped_instance(path: Path):
    """Sweep: on every shipped instance the floor is at most every solver's simulated time."""
    assert_floor_below_every_solver(path.stem, ALL_SOLVERS, 5.0)
