"""Importers, presets and the CLI around edgeflow instances: real data in, clear errors out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import distplan
from distplan.cli import app
from distplan.models.errors import BadInput
from distplan.planners.edgeflow.importers import import_paleo, import_pipedream
from distplan.planners.edgeflow.paleo import read_paleo
from distplan.planners.edgeflow.presets import PRESETS, load_cluster


def _cli(*args: str):
    """Run the CLI in-process; the click result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, list(args))


def test_paleo_inception_flattens_to_the_known_size(shared_data: Path) -> None:
    """Inception-v3 at batch 1: 125 layers (dropout elided), 5.65 GMAC, a 71x71x192 Conv2d_4a."""
    _, layers = read_paleo(shared_data / "dag_profiles" / "paleo" / "inception_v3.json")
    assert len(layers) == 125
    assert sum(layer.work_flops for layer in layers) / 2e9 == pytest.approx(5.65, abs=0.01)
    conv = next(layer for layer in layers if layer.name == "Conv2d_4a_3x3")
    assert (conv.out_rows, conv.out_bytes) == (71, 71 * 71 * 192 * 4)
    assert (conv.kernel_rows, conv.stride_rows, conv.pad_top_rows, conv.splittable) == (
        3,
        1,
        0,
        True,
    )
    concat = next(layer for layer in layers if layer.name == "Mixed_5b/concat")
    assert len(concat.inputs) == 4 and concat.work_flops == 0


def test_paleo_same_padding_and_fc_layers(shared_data: Path) -> None:
    """VGG-16: SAME 3x3 convs pad one row on top; its fully connected layers are one whole row."""
    _, layers = read_paleo(shared_data / "dag_profiles" / "paleo" / "vgg16.json")
    by_name = {layer.name: layer for layer in layers}
    assert (by_name["conv1-1"].pad_top_rows, by_name["conv1-1"].out_rows) == (1, 224)
    assert (by_name["fc6"].out_rows, by_name["fc6"].splittable) == (1, False)
    assert by_name["fc7"].inputs == ["fc6"]  # dropout6 elided


def test_pipedream_imports_whole_layers(shared_data: Path) -> None:
    """A PipeDream profile becomes whole-only one-row layers with the measured work per image."""
    graph = shared_data / "pipedream_profiles" / "resnet18" / "graph.txt"
    problem = import_pipedream(graph, minibatch=256, devices="jetson2-rpi4-wifi")
    assert not any(layer.splittable for layer in problem.layers)
    assert problem.layers[0].inputs == [] and problem.layers[0].work_flops == 0
    result = distplan.solve(problem, "edgeflow")
    assert result.status.value == "feasible"


def test_bad_arguments_name_the_option(tmp_path: Path, shared_data: Path) -> None:
    """Unknown presets, bad cluster files and bad specs raise BadInput naming the culprit."""
    with pytest.raises(BadInput, match="--devices: unknown|neither a preset"):
        load_cluster("no-such-preset")
    broken = tmp_path / "cluster.json"
    broken.write_text(
        json.dumps(
            {"devices": [], "network": {"nodes": []}, "input_device": "a", "output_device": "a"}
        )
    )
    with pytest.raises(BadInput, match="--devices devices"):
        load_cluster(str(broken))
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "name": "x",
                "layers": {
                    "data": {"parents": [], "type": "Input", "tensor": [1, 8, 8, 3]},
                    "y": {"parents": ["data"], "type": "Magic"},
                },
            }
        )
    )
    with pytest.raises(BadInput, match="unsupported layer type 'Magic'"):
        import_paleo(spec)
    with pytest.raises(BadInput, match="--minibatch"):
        import_pipedream(shared_data / "pipedream_profiles" / "resnet18" / "graph.txt", minibatch=0)


def test_presets_are_valid_clusters() -> None:
    """Every preset builds, with device 0 holding the input."""
    for name in PRESETS:
        cluster = load_cluster(name)
        assert cluster.input_device == cluster.devices[0].name


def test_cli_import_then_solve_then_evaluate(tmp_path: Path, shared_data: Path) -> None:
    """`import paleo` writes an instance; `solve --out` and `evaluate` replay the same plan (exit 0)."""
    instance, result = tmp_path / "vgg.json", tmp_path / "result.json"
    spec = shared_data / "dag_profiles" / "paleo" / "vgg16.json"
    imported = _cli(
        "import", "paleo", str(spec), "--devices", "rpi4x4-wifi", "--out", str(instance)
    )
    assert imported.exit_code == 0, imported.output
    solved = _cli("solve", str(instance), "--solver", "edgeflow", "--out", str(result))
    assert solved.exit_code == 0, solved.output
    evaluated = _cli("evaluate", str(instance), str(result))
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["objective"] == pytest.approx(
        json.loads(result.read_text())["objective"]
    )


def test_cli_malformed_instance_exits_2_naming_the_field(tmp_path: Path) -> None:
    """A device with a negative speed is one error line naming the field, exit code 2, no traceback."""
    from distplan.planners.edgeflow.examples import example_problems

    raw = json.loads(example_problems()[1][0].model_dump_json())
    raw["devices"][1]["flops_per_s"] = -1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    completed = _cli("solve", str(path))
    assert completed.exit_code == 2
    assert "devices.1.flops_per_s" in completed.stderr and "Traceback" not in completed.stderr
    bad_preset = _cli("import", "paleo", str(path), "--devices", "nope")
    assert bad_preset.exit_code == 2 and "--devices" in bad_preset.stderr


def test_cli_pipedream_dispatches_on_kind(tmp_path: Path, shared_data: Path) -> None:
    """`import pipedream --kind edgeflow` builds an edgeflow instance (the pipeline kind shares the name)."""
    out = tmp_path / "r18.json"
    graph = shared_data / "pipedream_profiles" / "resnet18" / "graph.txt"
    args = (
        "import",
        "pipedream",
        "--kind",
        "edgeflow",
        str(graph),
        "--minibatch",
        "256",
        "--out",
        str(out),
    )
    completed = _cli(*args)
    assert completed.exit_code == 0, completed.output
    assert distplan.load_instance(out).kind == "edgeflow"
