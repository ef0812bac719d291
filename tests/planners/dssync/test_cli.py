"""The dssync kind through the CLI: generate, solve, evaluate; bad input exits 2 in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distplan.cli import app

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def solved(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("dssync")
    instance, result = folder / "i.json", folder / "r.json"
    made = invoke("generate", "dssync", "--racks", 2, "--workers-per-rack", 2, "--out", instance)
    assert made.exit_code == 0, made.output
    solved = invoke("solve", instance, "--solver", "ring_rack", "--out", result)
    assert solved.exit_code == 0, solved.output
    return instance, result


def test_generate_solve_evaluate_round_trip(solved) -> None:
    """A generated instance solves, and the evaluator agrees with the saved objective."""
    instance, result = solved
    checked = invoke("evaluate", instance, result)
    assert checked.exit_code == 0, checked.output
    verdict = json.loads(checked.output)
    saved = json.loads(result.read_text())
    assert verdict["objective"] == pytest.approx(saved["objective"], rel=1e-9)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--racks", "0"], "--racks"),
        (["--slow-uplink", "5:2"], "--slow-uplink"),
        (["--background", "2"], "--background"),
    ],
)
def test_generate_bad_argument_exits_2_naming_the_option(tmp_path: Path, args, field) -> None:
    """A bad generator option exits 2 with one line naming it."""
    result = invoke("generate", "dssync", *args, "--out", tmp_path / "x.json")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in result.output


def test_malformed_plan_exits_2_naming_the_field(solved, tmp_path: Path) -> None:
    """A plan with an unknown group algorithm is bad input: exit 2, the field named."""
    instance, result = solved
    data = json.loads(result.read_text())
    data["plan"]["partitions"][0]["groups"][0]["algorithm"] = "tree"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    checked = invoke("evaluate", instance, broken)
    assert checked.exit_code == 2
    assert "partitions.0.groups.0.algorithm" in checked.output


def test_malformed_instance_exits_2_naming_the_field(solved, tmp_path: Path) -> None:
    """An instance with a negative compute time exits 2 naming workers.N.compute_s."""
    instance, _ = solved
    data = json.loads(instance.read_text())
    data["workers"][1]["compute_s"] = -1
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    checked = invoke("solve", broken)
    assert checked.exit_code == 2
    assert "workers.1.compute_s" in checked.output
