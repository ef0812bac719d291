"""Tests of the bench sweep: outputs, hang/crash isolation, rejected plans, resume, Dask."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from distplan.solvers import registry
from distplan.solvers.bench import SweepConfig, run_sweep
from distplan.solvers.bench.progress import PlainProgress
from distplan.solvers.bench.rows import RowStore

REPO = Path(__file__).resolve().parents[2]
MICRO = str(REPO / "instances" / "microservice" / "small-4x10.json")
PIPE = str(REPO / "instances" / "pipeline" / "alexnet__nvswitch-8__k4.json")
REAL_SOLVERS = {
    "microservice": ["greedy", "image_locality", "layer_oblivious"],
    "pipeline": ["uniform", "balance_by_time", "alpa_dp"],
}
FAULTY = ["bench_hang", "bench_crash", "bench_bad_plan"]

#: Test-only solvers, loaded as a --plugin file by the sweep and by every child.
PLUGIN = '''
import os
import time

from distplan.models.microservice import MicroservicePlan
from distplan.models.result import Role, SolveStatus
from distplan.solvers.options import SolverOutput
from distplan.solvers.registry import register_solver


@register_solver("bench_hang", kind="microservice", role=Role.HEURISTIC)
def hang(problem, options):
    """Ignores its time limit and never returns."""
    time.sleep(3600)


@register_solver("bench_crash", kind="microservice", role=Role.HEURISTIC)
def crash(problem, options):
    """Kills its own process."""
    os._exit(7)


@register_solver("bench_bad_plan", kind="microservice", role=Role.HEURISTIC)
def bad_plan(problem, options):
    """Claims a plan that runs one instance of every service with no layer stored."""
    servers, services = len(problem.servers), len(problem.services)
    plan = MicroservicePlan(
        instances=[[1] * servers for _ in range(services)],
        stored_layers=[[] for _ in range(servers)],
        borrowed_layers=[[] for _ in range(servers)],
    )
    return SolverOutput(SolveStatus.FEASIBLE, plan=plan, objective=1.0)
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The faulty solvers' plugin file, registered for the module's tests only and removed afterwards."""
    path = tmp_path_factory.mktemp("plugin") / "faulty_solvers.py"
    path.write_text(PLUGIN, encoding="utf-8")
    with registry.scoped_registry():
        yield str(path)
    sys.modules.pop("distplan_bench_plugin_faulty_solvers", None)
    assert not [s.name for s in registry.solvers() if s.name.startswith("bench_")], (
        "test solvers left registered"
    )


@pytest.fixture(scope="module")
def sweep(
    plugin: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SweepConfig, object, list[dict]]:
    """One sweep over two kinds x three real solvers plus the three faulty ones, two runs at a time."""
    out = tmp_path_factory.mktemp("sweep")
    names = ",".join([*REAL_SOLVERS["microservice"], *REAL_SOLVERS["pipeline"], *FAULTY])
    config = SweepConfig(
        instances=[MICRO, PIPE],
        out=out,
        solvers=names,
        seeds=1,
        time_limit_s=0.5,
        grace_s=0.5,
        jobs=2,
        plugins=(plugin,),
    )
    outcome = run_sweep(config, progress=PlainProgress())
    return config, outcome, RowStore(out / "results.jsonl").read()


def row_of(rows: list[dict], solver: str) -> dict:
    return next(r for r in rows if r["solver"] == solver)


def test_sweep_writes_every_output_file(sweep) -> None:
    """results.jsonl, results.csv, summary.md and both PNGs exist and are non-empty."""
    config, outcome, _ = sweep
    for name in (
        "results.jsonl",
        "results.csv",
        "summary.md",
        "performance-profile.png",
        "runtime-cactus.png",
    ):
        assert (config.out / name).stat().st_size > 0, name
    assert outcome.executed == outcome.planned == 9
    assert "solver 'greedy' does not handle kind 'pipeline'; skipped there" in outcome.notes
    assert "solver 'uniform' does not handle kind 'microservice'; skipped there" in outcome.notes


def test_real_solvers_complete_with_the_evaluators_objective(sweep) -> None:
    """Every real solver's row has an accepted plan whose objective is the evaluator's."""
    import distplan
    from distplan.solvers.registry import problem_kind

    _, _, rows = sweep
    for kind, names in REAL_SOLVERS.items():
        problem = distplan.load_instance(MICRO if kind == "microservice" else PIPE)
        for name in names:
            row = row_of(rows, name)
            assert row["verdict"] == "accepted", row
            plan = distplan.solve(problem, name, time_limit=10).plan
            assert math.isclose(
                row["objective"], problem_kind(kind).evaluate(problem, plan).objective, rel_tol=1e-9
            )


def test_hang_and_crash_are_recorded_without_losing_rows(sweep) -> None:
    """The hanging solver is killed at time limit + grace (no_solution); the crash is an error with its exit code."""
    _, _, rows = sweep
    hang, crash = row_of(rows, "bench_hang"), row_of(rows, "bench_crash")
    assert hang["status"] == "no_solution" and hang["killed"]
    assert "killed 1 s after it started solving" in hang["note"]
    assert hang["wall_s"] < 10
    assert crash["status"] == "error" and "code 7" in crash["note"]
    assert len({r["key"] for r in rows}) == 9


def test_rejected_plan_is_reported_as_rejected(sweep) -> None:
    """A plan the evaluator rejects is an error row with verdict 'rejected' and no objective."""
    _, _, rows = sweep
    bad = row_of(rows, "bench_bad_plan")
    assert (bad["status"], bad["verdict"], bad["objective"]) == ("error", "rejected", None)
    assert "neither stored nor borrowed" in bad["note"]


def test_summary_counts_wins_timeouts_and_errors(sweep) -> None:
    """summary.md names the best solver of each kind and counts the faulty solvers' outcomes."""
    config, _, rows = sweep
    text = (config.out / "summary.md").read_text(encoding="utf-8")
    best_micro = max(
        (r for r in rows if r["kind"] == "microservice" and r["objective"] is not None),
        key=lambda r: r["objective"],
    )
    assert f"| {best_micro['solver']} | heuristic | 1 | 1/1 | 1 | 1.0000 | 0 | 0 | 0 | 0 |" in text
    assert "| bench_hang | heuristic | 1 | 0/1 | 0 | - | 1 | 0 | 0 | 0 |" in text
    assert "| bench_crash | heuristic | 1 | 0/1 | 0 | - | 0 | 0 | 1 | 0 |" in text
    assert "| bench_bad_plan | heuristic | 1 | 0/1 | 0 | - | 0 | 0 | 1 | 1 |" in text


def test_rerun_skips_every_finished_key(sweep) -> None:
    """Running the same sweep again executes nothing and leaves results.jsonl unchanged."""
    config, _, _ = sweep
    before = (config.out / "results.jsonl").read_bytes()
    outcome = run_sweep(config, progress=PlainProgress())
    assert (outcome.executed, outcome.skipped) == (0, 9)
    assert (config.out / "results.jsonl").read_bytes() == before


def test_interrupted_sweep_resumes_without_redoing_rows(tmp_path: Path) -> None:
    """A sweep interrupted after its first row records it; the rerun does only the other runs."""
    config = SweepConfig(
        instances=[MICRO], out=tmp_path, solvers="greedy,layer_oblivious", time_limit_s=5.0
    )

    def interrupt(row: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, progress=PlainProgress(), on_row=interrupt)
    first = RowStore(tmp_path / "results.jsonl").read()
    assert len(first) == 1
    outcome = run_sweep(config, progress=PlainProgress())
    assert (outcome.executed, outcome.skipped) == (1, 1)
    rows = RowStore(tmp_path / "results.jsonl").read()
    assert len(rows) == 2 and first[0] in rows


def test_row_cut_short_by_an_interruption_is_ignored_and_redone(tmp_path: Path) -> None:
    """A half-written last line is skipped on read and the next row starts on its own line."""
    store = RowStore(tmp_path / "results.jsonl")
    store.append({"key": "a", "status": "feasible"})
    with store.path.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "b", "sta')
    assert store.done_keys() == {"a"}
    store.append({"key": "c", "status": "feasible"})
    assert store.done_keys() == {"a", "c"}
    assert json.loads(store.path.read_text(encoding="utf-8").splitlines()[-1])["key"] == "c"


def test_changed_options_or_content_give_new_keys(tmp_path: Path) -> None:
    """The key changes with the time limit and the instance content, not with the file's name."""
    from distplan.solvers.bench.tasks import BenchTask, expand_instances

    copy = tmp_path / "renamed.json"
    copy.write_text(Path(MICRO).read_text(encoding="utf-8"), encoding="utf-8")
    original, renamed = expand_instances([MICRO, str(copy)])
    task = BenchTask(instance=original, solver="greedy", seed=0, time_limit_s=1.0)
    assert task.key == BenchTask(instance=renamed, solver="greedy", seed=0, time_limit_s=1.0).key
    assert task.key != BenchTask(instance=original, solver="greedy", seed=0, time_limit_s=2.0).key
    copy.write_text(
        Path(MICRO).read_text(encoding="utf-8").replace("small-4x10", "other"), encoding="utf-8"
    )
    (changed,) = expand_instances([str(copy)])
    assert task.key != BenchTask(instance=changed, solver="greedy", seed=0, time_limit_s=1.0).key


def test_dask_local_cluster_runs_the_sweep(tmp_path: Path) -> None:
    """A sweep through a Dask LocalCluster (in-process worker) records the same objectives as solve()."""
    distributed = pytest.importorskip("distributed")
    import distplan

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        config = SweepConfig(
            instances=[MICRO], out=tmp_path, solvers="greedy", time_limit_s=5.0, scheduler=cluster
        )
        outcome = run_sweep(config, progress=PlainProgress())
    assert outcome.executed == 1
    problem = distplan.load_instance(MICRO)
    for row in RowStore(tmp_path / "results.jsonl").read():
        assert row["objective"] == pytest.approx(
            distplan.solve(problem, row["solver"], time_limit=5).objective
        )
    assert (tmp_path / "summary.md").is_file()
