"""Tests of the ``bench`` and ``plot`` commands: bad arguments give one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from distplan.cli import app

REPO = Path(__file__).resolve().parents[2]
MICRO = str(REPO / "instances" / "microservice" / "small-4x10.json")

runner = CliRunner()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["bench", MICRO, "--out", "{tmp}/o", "--seeds", "0"],
            "--seeds: must be between 1 and 1000",
        ),
        (
            ["bench", MICRO, "--out", "{tmp}/o", "--time-limit", "0"],
            "--time-limit: must be positive",
        ),
        (
            ["bench", MICRO, "--out", "{tmp}/o", "--time-limit", "nan"],
            "--time-limit: must be positive",
        ),
        (["bench", MICRO, "--out", "{tmp}/o", "--jobs", "0"], "--jobs: must be at least 1"),
        (
            ["bench", MICRO, "--out", "{tmp}/o", "--solvers", "nope"],
            "--solvers: unknown solver(s) nope",
        ),
        (
            ["bench", MICRO, "--out", "{tmp}/o", "--option", "novalue"],
            "--option: expected KEY=VALUE",
        ),
        (["bench", "{tmp}/missing-*.json", "--out", "{tmp}/o"], "matches no file"),
        (["bench", "{tmp}/bad.json", "--out", "{tmp}/o"], "bad.json: not valid JSON"),
        (["bench", MICRO, "--out", MICRO], "--out:"),
        (["plot", "{tmp}/missing.json", "{tmp}/bad.json"], "missing.json: cannot read"),
        (["plot", MICRO, "{tmp}/bad.json"], "bad.json:"),
        (["plot", MICRO, "{tmp}/result.json", "--out", "{tmp}/picture.jpg"], "--out:"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    """Each bad argument is reported on one stderr line naming it, with exit code 2 and no traceback."""
    import distplan

    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    result = distplan.solve(distplan.load_instance(MICRO), "greedy")
    (tmp_path / "result.json").write_text(result.model_dump_json(), encoding="utf-8")
    outcome = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in arguments])
    assert outcome.exit_code == 2, outcome.output
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (
        outcome.stderr
    )
    assert "Traceback" not in outcome.output


def test_plot_of_a_kind_without_hook_says_no_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kind registered without a plot hook gets 'no picture for kind X' (exit 2)."""
    import dataclasses

    import distplan
    from distplan.solvers import registry

    kind = registry.problem_kind("microservice")
    monkeypatch.setitem(registry._KINDS, "microservice", dataclasses.replace(kind, plot=None))
    result = distplan.solve(distplan.load_instance(MICRO), "greedy")
    (tmp_path / "result.json").write_text(result.model_dump_json(), encoding="utf-8")
    outcome = runner.invoke(app, ["plot", MICRO, str(tmp_path / "result.json")])
    assert outcome.exit_code == 2
    expected = "error: kind: no picture for kind 'microservice' (its registration has no plot hook)"
    assert outcome.stderr.strip() == expected
