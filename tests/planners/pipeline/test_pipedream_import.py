"""PipeDream profile parser and importer."""

from __future__ import annotations

from pathlib import Path

import pytest

from distplan.planners.common.pipedream_graph import MAX_NAME_CHARS, parse_profile
from distplan.planners.pipeline.clusters import flat
from distplan.planners.pipeline.pipedream_import import import_pipedream

#: profile -> (node lines, edge lines) of its graph.txt
SHIPPED = {
    "alexnet": (23, 23),
    "gnmt_large": (96, 122),
    "inception_v3": (326, 362),
    "nasnetamobile": (921, 1078),
    "resnet101": (347, 380),
    "resnet18": (71, 79),
    "resnet50": (177, 193),
    "resnext101": (347, 380),
    "resnext50": (177, 193),
    "squeezenet1_0": (68, 76),
    "vgg16": (41, 41),
}


@pytest.fixture(scope="module")
def profiles(shared_data: Path) -> Path:
    """The PipeDream profiles under ../shared/data (the tests fail when they are missing)."""
    return shared_data / "pipedream_profiles"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "graph.txt"
    path.write_text(text, encoding="utf-8")
    return path


NODE = "{id} -- {desc} -- forward_compute_time={f}, backward_compute_time=2.000, activation_size={a}, parameter_size=8.000"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_parses_every_shipped_profile(profiles: Path, name: str) -> None:
    """Every shipped profile parses with all its nodes and edges, in a valid topological order."""
    profile = parse_profile(profiles / name / "graph.txt")
    nodes, edges = SHIPPED[name]
    assert len(profile.names) == len(profile.forward_ms) == len(profile.parameter_bytes) == nodes
    assert len(profile.edges) == edges
    assert all(u < v for u, v in profile.edges)
    assert all(name.startswith("node") and ": " in name for name in profile.names)
    assert min(profile.forward_ms + profile.backward_ms + profile.activation_bytes) >= 0


def test_list_activation_is_summed(profiles: Path) -> None:
    """A multi-output activation_size list [a; b; c] becomes its sum."""
    profile = parse_profile(profiles / "gnmt_large" / "graph.txt")
    index = next(i for i, n in enumerate(profile.names) if n.startswith("node7: "))
    assert profile.activation_bytes[index] == 13107200.0 + 524288.0 + 524288.0


def test_unordered_ids_are_sorted_topologically(tmp_path: Path) -> None:
    """Nodes listed out of order come back topologically sorted with edges reindexed."""
    text = "\n".join(
        [
            NODE.format(id="node3", desc="ReLU()", f=3.0, a=30.0),
            NODE.format(id="node1", desc="Input", f=0.0, a=10.0),
            NODE.format(id="node2", desc="Conv2d(1, 1)", f=2.0, a="[5.0; 15.0]"),
            "\tnode2 -- node3",
            "\tnode1 -- node2",
        ]
    )
    profile = parse_profile(write(tmp_path, text))
    assert [n.split(":")[0] for n in profile.names] == ["node1", "node2", "node3"]
    assert profile.edges == [(1, 2), (0, 1)]
    assert profile.forward_ms == [0.0, 2.0, 3.0]
    assert profile.activation_bytes == [10.0, 20.0, 30.0]


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        (["node1 -- Input -- forward_compute_time=1.0"], "line 1"),
        ([NODE.format(id="node1", desc="A", f="x", a=1.0)], "line 1: forward_compute_time"),
        (
            [NODE.format(id="node1", desc="A", f=1.0, a=1.0), "\tnode1 -- node9"],
            "line 2: edge names unknown node 'node9'",
        ),
        ([NODE.format(id="node1", desc="A", f=1.0, a=1.0), "\tnode1"], "line 2"),
        (
            [
                NODE.format(id="node1", desc="A", f=1.0, a=1.0),
                NODE.format(id="node1", desc="B", f=1.0, a=1.0),
            ],
            "line 2",
        ),
        (
            [
                NODE.format(id="n1", desc="A", f=1.0, a=1.0),
                NODE.format(id="n2", desc="B", f=1.0, a=1.0),
                "\tn1 -- n2",
                "\tn2 -- n1",
            ],
            "cycle",
        ),
    ],
)
def test_malformed_profiles_raise(tmp_path: Path, lines: list[str], needle: str) -> None:
    """Malformed lines raise ValueError naming the line; cycles are rejected."""
    with pytest.raises(ValueError, match=needle):
        parse_profile(write(tmp_path, "\n".join(lines)))


def test_import_scales_by_microbatches(profiles: Path) -> None:
    """Times and activations are divided by K (and ms -> s); parameters, graph and names are not."""
    graph = profiles / "alexnet" / "graph.txt"
    raw = parse_profile(graph)
    one = import_pipedream(graph, flat(4, 1e9), 1)
    four = import_pipedream(graph, flat(4, 1e9), 4, name="alexnet-k4")
    assert one.name == "alexnet__k1" and four.name == "alexnet-k4" and four.microbatches == 4
    assert one.edges == four.edges == raw.edges
    for i, (a, b) in enumerate(zip(one.layers, four.layers, strict=True)):
        if a.name.startswith("node1: Input"):
            continue
        assert a.forward_s == pytest.approx(raw.forward_ms[i] / 1000)
        assert b.forward_s == pytest.approx(a.forward_s / 4)
        assert b.backward_s == pytest.approx(a.backward_s / 4)
        assert b.activation_bytes == pytest.approx(raw.activation_bytes[i] / 4)
        assert b.parameter_bytes == a.parameter_bytes == raw.parameter_bytes[i]
        assert a.name == b.name and len(a.name) <= MAX_NAME_CHARS


def test_long_names_are_shortened(profiles: Path) -> None:
    """Long layer descriptions are cut with '...' and keep their node id."""
    problem = import_pipedream(profiles / "gnmt_large" / "graph.txt", flat(2, 1e9), 2)
    names = [layer.name for layer in problem.layers]
    assert any(name.endswith("...") for name in names)
    assert all(len(name) <= MAX_NAME_CHARS and name.startswith("node") for name in names)
    assert "  " not in "".join(names)


def test_import_rejects_zero_microbatches(profiles: Path) -> None:
    """K must be at least 1."""
    with pytest.raises(ValueError, match="microbatches"):
        import_pipedream(profiles / "alexnet" / "graph.txt", flat(2, 1e9), 0)


def test_input_data_loading_time_is_zeroed(profiles: Path) -> None:
    """The Input node's profiled data-loading time is dropped unless asked to keep it; its bytes stay."""
    graph = profiles / "alexnet" / "graph.txt"
    raw = parse_profile(graph)
    assert raw.names[0] == "node1: Input" and raw.forward_ms[0] > 0
    zeroed = import_pipedream(graph, flat(2, 1e9), 2)
    kept = import_pipedream(graph, flat(2, 1e9), 2, zero_input_time=False)
    assert zeroed.layers[0].forward_s == 0.0 and zeroed.layers[0].backward_s == 0.0
    assert kept.layers[0].forward_s == pytest.approx(raw.forward_ms[0] / 1000 / 2)
    assert (
        zeroed.layers[0].activation_bytes
        == kept.layers[0].activation_bytes
        == raw.activation_bytes[0] / 2
    )
    assert zeroed.layers[1:] == kept.layers[1:]


def test_import_sets_whole_samples_per_microbatch(profiles: Path) -> None:
    """N = profiled minibatch / K (alexnet: 256 samples); a K that does not divide it is rejected."""
    graph = profiles / "alexnet" / "graph.txt"
    assert import_pipedream(graph, flat(2, 1e9), 4).samples_per_microbatch == 64
    assert (
        import_pipedream(graph, flat(2, 1e9), 2, minibatch_samples=10).samples_per_microbatch == 5
    )
    with pytest.raises(ValueError, match="must divide the profiled minibatch of 256"):
        import_pipedream(graph, flat(2, 1e9), 3)


def test_profiled_minibatch_matches_the_input_tensor(profiles: Path) -> None:
    """Every known minibatch size divides the profile's Input bytes into one fp32 image per sample."""
    from distplan.planners.pipeline.pipedream_import import PROFILED_MINIBATCH

    image_bytes = {3 * 224 * 224 * 4, 3 * 299 * 299 * 4}
    for model, samples in PROFILED_MINIBATCH.items():
        raw = parse_profile(profiles / model / "graph.txt")
        if model == "gnmt_large":  # hidden state [B, 1024] fp32 among the LSTM outputs
            continue
        assert raw.names[0].endswith("Input"), model
        assert raw.activation_bytes[0] / samples in image_bytes, model
