"""The kind protocol: a kind from one folder works through the API and the CLI, and leaves no trace."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

import distplan
from distplan.cli import run
from distplan.models.instance import load_instance, problem_schema
from distplan.models.kinds import known_kinds
from distplan.models.result import SolveResult, SolveStatus
from distplan.solvers.registry import kinds, problem_kind, scoped_registry, solvers

TOY = Path(__file__).resolve().parent / "toykind"


def _toy_package() -> ModuleType:
    """Import tests/toykind as the package ``toykind`` (tests are not a package)."""
    if "toykind" in sys.modules:
        return sys.modules["toykind"]
    spec = importlib.util.spec_from_file_location(
        "toykind", TOY / "__init__.py", submodule_search_locations=[str(TOY)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["toykind"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def toy_kind():
    """The toy kind, registered for one test only."""
    _toy_package()
    from toykind import kind  # type: ignore[import-not-found]

    with scoped_registry():
        kind.register()
        yield
    assert "toyknap" not in kinds() and "toyknap" not in known_kinds()


def test_toy_kind_from_one_folder_solves_through_the_api(toy_kind) -> None:
    """Registered from its folder alone, the kind solves, evaluates and exports its schema."""
    example = problem_kind("toyknap").examples()[0]  # type: ignore[misc]
    result = distplan.solve(example.problem)
    assert result.status is SolveStatus.OPTIMAL and result.objective == example.optimum == 5.0
    assert result.bound == 5.0 and result.evaluator_objective == 5.0
    assert "capacity" in problem_schema("toyknap")["properties"]
    again = SolveResult.model_validate_json(result.to_json())
    assert again == result and type(again.plan).__name__ == "ToyPlan"


def test_toy_kind_round_trips_through_the_cli(toy_kind, tmp_path: Path, capsys) -> None:
    """generate -> solve --out -> evaluate -> schema, all from the registration; cli.py names no kind."""
    instance, result_file = tmp_path / "toy.json", tmp_path / "result.json"
    assert (
        run(["generate", "toyknap", "--items", "5", "--capacity", "7", "--out", str(instance)]) == 0
    )
    assert load_instance(instance).kind == "toyknap"
    assert run(["solve", str(instance), "--out", str(result_file)]) == 0
    assert json.loads(result_file.read_text())["objective"] == 7.0
    capsys.readouterr()
    assert run(["evaluate", str(instance), str(result_file)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "feasible": True,
        "objective": 7.0,
        "violations": [],
    }
    assert run(["schema", "toyknap"]) == 0
    assert "capacity" in json.loads(capsys.readouterr().out)["properties"]
    assert run(["generate", "toyknap", "--items", "99"]) == 2
    assert "--items: must be from 1 to 12" in capsys.readouterr().err
    assert "toyknap" not in Path(distplan.__file__).with_name("cli.py").read_text()


def test_a_raising_solver_yields_an_error_result(toy_kind) -> None:
    """An exception inside a solver comes back as status error with the reason, not a traceback."""
    from distplan.models.result import Role
    from distplan.solvers.registry import register_solver

    def explode(problem, options):
        raise ZeroDivisionError("boom")

    register_solver("explode", kind="toyknap", role=Role.HEURISTIC)(explode)
    example = problem_kind("toyknap").examples()[0]  # type: ignore[misc]
    result = distplan.solve(example.problem, "explode")
    assert result.status is SolveStatus.ERROR and result.plan is None
    assert result.reason is not None and "ZeroDivisionError: boom" in result.reason


def test_every_kind_registers_models_examples_and_a_describe() -> None:
    """Every discovered kind declares its models, at least one example and one solver."""
    for name in kinds():
        kind = problem_kind(name)
        assert kind.examples is not None and kind.examples(), name
        assert solvers(name), name
        for example in kind.examples():
            assert isinstance(example.problem, kind.problem_type)


def test_plans_do_not_depend_on_pythonhashseed(tmp_path: Path) -> None:
    """The default solver's plan and the evaluator's figures are the same under two hash seeds."""
    import os
    import subprocess

    cli = Path(distplan.__file__).with_name("cli.py")
    for name in kinds():
        problem = problem_kind(name).examples()[0].problem  # type: ignore[misc]
        instance = tmp_path / f"{name}.json"
        instance.write_text(problem.model_dump_json())
        outputs = []
        for hash_seed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": hash_seed}
            completed = subprocess.run(
                [sys.executable, str(cli), "solve", str(instance), "--json", "--time-limit", "20"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=120,
            )
            assert completed.returncode == 0, completed.stderr[-1000:]
            result = json.loads(completed.stdout)
            outputs.append((result["plan"], result["objective"], result["evaluator_objective"]))
        assert outputs[0] == outputs[1], name
