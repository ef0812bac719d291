"""The CLI: every command works, and bad input exits 2 with a message and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from distplan.cli import app

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "instances" / "pipeline" / "alexnet__nvswitch-8__k4.json"
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_solve_prints_plan_and_writes_result(tmp_path: Path) -> None:
    """solve prints a summary with stages, and --out writes a result the evaluator accepts."""
    out = tmp_path / "result.json"
    result = invoke("solve", PIPELINE, "--solver", "balance_by_time", "--out", out)
    assert result.exit_code == 0, result.output
    assert "stage 0:" in result.output and "objective" in result.output
    saved = json.loads(out.read_text())
    assert (
        saved["schema_version"] == 2 and saved["kind"] == "pipeline" and saved["role"] == "baseline"
    )
    checked = invoke("evaluate", PIPELINE, out)
    assert checked.exit_code == 0, checked.output
    verdict = json.loads(checked.output)
    assert verdict["feasible"] is True and verdict["violations"] == []
    assert verdict["objective"] == pytest.approx(saved["objective"], rel=1e-9)


def test_solve_json_is_clean_json() -> None:
    """--json prints only the result JSON on stdout."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "cli.py"),
            "solve",
            str(PIPELINE),
            "--solver",
            "uniform",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["solver"] == "uniform"


def test_evaluate_rejects_tampered_plan(tmp_path: Path) -> None:
    """evaluate exits 1 and lists violations for a plan that breaks the rules."""
    out = tmp_path / "result.json"
    assert invoke("solve", PIPELINE, "--solver", "uniform", "--out", out).exit_code == 0
    data = json.loads(out.read_text())
    data["plan"]["stage_of_layer"][0] = len(data["plan"]["gpus_of_stage"])  # no such stage
    out.write_text(json.dumps(data))
    result = invoke("evaluate", PIPELINE, out)
    assert result.exit_code == 1
    assert json.loads(result.output)["violations"]


def test_solvers_lists_both_kinds() -> None:
    """solvers --json lists name, kind, role and availability."""
    result = invoke("solvers", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    kinds = {row["kind"] for row in rows}
    assert {"pipeline", "microservice"} <= kinds
    assert all(set(row) >= {"name", "kind", "role", "available"} for row in rows)
    only = json.loads(invoke("solvers", "--kind", "pipeline", "--json").output)
    assert {row["kind"] for row in only} == {"pipeline"}


def test_schema() -> None:
    """schema prints the JSON Schema of a kind."""
    result = invoke("schema", "pipeline")
    assert result.exit_code == 0 and "microbatches" in json.loads(result.output)["properties"]
    assert invoke("schema", "nope").exit_code == 2


def test_import_pipedream(tmp_path: Path, shared_data: Path) -> None:
    """import pipedream builds a valid instance from a profile and a preset."""
    out = tmp_path / "inst.json"
    graph = shared_data / "pipedream_profiles" / "alexnet" / "graph.txt"
    result = invoke(
        "import", "pipedream", graph, "--cluster", "dgx1-8", "--microbatches", "4", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["microbatches"] == 4


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["solve", "/no/such/file.json"], "cannot read"),
        (["solve", PIPELINE, "--solver", "nope"], "unknown solver 'nope'"),
        (
            [
                "import",
                "pipedream",
                "/no/such/graph.txt",
                "--cluster",
                "dgx1-8",
                "--microbatches",
                "4",
            ],
            "cannot read",
        ),
        (["solvers", "--kind", "nope"], "unknown problem kind"),
        (
            ["solve", PIPELINE, "--solver", "topo", "--option", "effort=lots"],
            "options.effort: must be an integer >= 0, got 'lots'",
        ),
        (
            ["solve", PIPELINE, "--solver", "uniform", "--option", "schedules=fast"],
            "options.schedules: must be 'menu' or 'native', got 'fast'",
        ),
    ],
)
def test_bad_arguments_exit_2(args: list, needle: str) -> None:
    """Bad arguments exit 2 with a message naming the problem."""
    result = invoke(*args)
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output


def test_unknown_preset_exit_2(shared_data: Path) -> None:
    """An unknown cluster preset exits 2 listing the presets."""
    graph = shared_data / "pipedream_profiles" / "alexnet" / "graph.txt"
    result = invoke("import", "pipedream", graph, "--cluster", "tpu-9000", "--microbatches", "4")
    assert result.exit_code == 2 and "nvswitch-8" in result.output


def base_instance() -> dict:
    return json.loads(PIPELINE.read_text())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


top_level_mutations = st.sampled_from(
    [
        ("microbatches", -3),
        ("microbatches", "many"),
        ("layers", []),
        ("unknown_field", 1),
        ("cluster", {"gpus": []}),
        ("edges", [[0, 10_000]]),
        ("optimizer_state_factor", -1),
    ]
)
layer_mutations = st.tuples(
    st.sampled_from(["forward_s", "activation_bytes", "parameter_bytes"]),
    st.one_of(
        st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
        st.text(max_size=3).filter(
            lambda text: not _is_number(text)
        ),  # "0" is a number, validly coerced
        st.none(),
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mutation=st.one_of(
        top_level_mutations.map(lambda m: ("top", *m)), layer_mutations.map(lambda m: ("layer", *m))
    )
)
def test_malformed_instances_exit_2_naming_the_field(tmp_path: Path, mutation) -> None:
    """Hypothesis-mutated instances exit 2 with a message naming the broken field and no traceback."""
    data = base_instance()
    where, field, bad = mutation
    if where == "top":
        data[field] = bad
    else:
        data["layers"][0][field] = bad
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    result = invoke("solve", path, "--solver", "uniform")
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert field in result.output, (field, result.output)


def test_not_json_exit_2(tmp_path: Path) -> None:
    """A file that is not JSON exits 2 saying so."""
    path = tmp_path / "x.json"
    path.write_text("{nope")
    result = invoke("solve", path)
    assert result.exit_code == 2 and "not valid JSON" in result.output
