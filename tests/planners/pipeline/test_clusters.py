"""Cluster presets, the flat helper and cluster files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distplan.planners.pipeline.clusters import PRESETS, flat, load_cluster


def off_diagonal(cluster) -> set[float]:
    n = len(cluster.gpus)
    return {cluster.bandwidth_bytes_per_s[i][j] for i in range(n) for j in range(n) if i != j}


def test_presets_are_named_as_documented() -> None:
    """The four documented presets exist and build valid latency-free clusters."""
    assert set(PRESETS) == {"nvswitch-8", "dgx1-8", "2x4-10gbe", "4x4-mixed"}
    for name in PRESETS:
        cluster = load_cluster(name)
        assert cluster.latency_s is None
        assert all(cluster.bandwidth_bytes_per_s[i][i] == 0 for i in range(len(cluster.gpus)))


def test_nvswitch_8() -> None:
    """nvswitch-8: 8 GPUs of 32e9 bytes, 150e9 B/s between every pair."""
    cluster = load_cluster("nvswitch-8")
    assert len(cluster.gpus) == 8
    assert {(g.memory_bytes, g.speed) for g in cluster.gpus} == {(32e9, 1.0)}
    assert off_diagonal(cluster) == {150e9}


def test_dgx1_8_cube_mesh_pair_by_pair() -> None:
    """dgx1-8: NVLink 25e9 inside each quad and to the twin i+4, 10e9 for the other pairs."""
    cluster = load_cluster("dgx1-8")
    assert len(cluster.gpus) == 8 and {g.memory_bytes for g in cluster.gpus} == {16e9}
    nvlink = {(i, j) for quad in ((0, 1, 2, 3), (4, 5, 6, 7)) for i in quad for j in quad if i != j}
    nvlink |= {(i, i + 4) for i in range(4)} | {(i + 4, i) for i in range(4)}
    for i in range(8):
        for j in range(8):
            if i != j:
                expected = 25e9 if (i, j) in nvlink else 10e9
                assert cluster.bandwidth_bytes_per_s[i][j] == expected, (i, j)
    assert sum(1 for j in range(8) if cluster.bandwidth_bytes_per_s[0][j] == 25e9) == 4


def test_2x4_10gbe() -> None:
    """2x4-10gbe: 50e9 inside a server of 4, 1.25e9 between the two servers."""
    cluster = load_cluster("2x4-10gbe")
    assert len(cluster.gpus) == 8 and {g.memory_bytes for g in cluster.gpus} == {32e9}
    for i in range(8):
        for j in range(8):
            if i != j:
                assert cluster.bandwidth_bytes_per_s[i][j] == (50e9 if i // 4 == j // 4 else 1.25e9)


def test_4x4_mixed() -> None:
    """4x4-mixed: servers 0-1 fast 32e9-byte GPUs, servers 2-3 half-speed 16e9-byte GPUs; 12e9 / 3e9 B/s."""
    cluster = load_cluster("4x4-mixed")
    assert len(cluster.gpus) == 16
    for index, gpu in enumerate(cluster.gpus):
        assert (gpu.memory_bytes, gpu.speed) == ((32e9, 1.0) if index < 8 else (16e9, 0.5))
    for i in range(16):
        for j in range(16):
            if i != j:
                assert cluster.bandwidth_bytes_per_s[i][j] == (12e9 if i // 4 == j // 4 else 3e9)


def test_flat_helper() -> None:
    """flat(n, bandwidth) gives n speed-1 GPUs with one bandwidth and huge memory by default."""
    cluster = flat(3, 5e9)
    assert len(cluster.gpus) == 3 and off_diagonal(cluster) == {5e9}
    assert {g.memory_bytes for g in cluster.gpus} == {1e15}
    assert flat(1, 1e9, memory=2e9).gpus[0].memory_bytes == 2e9
    with pytest.raises(ValueError):
        flat(0, 1e9)


def test_cluster_file_round_trip(tmp_path: Path) -> None:
    """A cluster JSON file loads into the same cluster."""
    cluster = load_cluster("dgx1-8")
    path = tmp_path / "dgx.json"
    path.write_text(cluster.model_dump_json(), encoding="utf-8")
    assert load_cluster(str(path)) == cluster
    assert load_cluster(path) == cluster


def test_unknown_preset_lists_presets() -> None:
    """An unknown name raises ValueError listing the valid presets."""
    with pytest.raises(ValueError, match="nvswitch-8, dgx1-8, 2x4-10gbe, 4x4-mixed"):
        load_cluster("tpu-9000")


GOOD = {"gpus": [{"name": "a", "memory_bytes": 1e9, "speed": 1.0}, {"name": "b", "memory_bytes": 1e9}],
        "bandwidth_bytes_per_s": [[0, 1e9], [1e9, 0]]}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"gpus": GOOD["gpus"]}), "bandwidth_bytes_per_s"),
        (json.dumps({**GOOD, "gpus": [{"name": "a", "memory_bytes": -1}, GOOD["gpus"][1]]}), r"gpus\[0\]\.memory_bytes"),
        (json.dumps({**GOOD, "bandwidth_bytes_per_s": [[0, 1e9]]}), "bandwidth_bytes_per_s must be a 2x2"),
        (json.dumps({**GOOD, "latency_s": [[0]]}), "latency_s"),
        (json.dumps({**GOOD, "colour": "red"}), "colour"),
    ],
)
def test_bad_cluster_file_names_the_field(tmp_path: Path, content: str, needle: str) -> None:
    """A bad cluster file raises ValueError naming the file and the field at fault."""
    path = tmp_path / "cluster.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=needle) as info:
        load_cluster(str(path))
    assert str(path) in str(info.value)
