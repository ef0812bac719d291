"""Cluster presets, the flat helper and cluster files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distplan.models.pipeline import Cluster
from distplan.planners.pipeline.clusters import PRESETS, flat, load_cluster, servers


def off_diagonal(cluster) -> set[float]:
    n = len(cluster.gpus)
    return {cluster.bandwidth_bytes_per_s[i][j] for i in range(n) for j in range(n) if i != j}


def test_presets_are_physical_networks() -> None:
    """The five documented presets exist, use the network form, and put every GPU in a server."""
    assert set(PRESETS) == {"nvswitch-8", "dgx1-8", "2x4-10gbe", "4x4-mixed", "2x8-ib-rail"}
    for name in PRESETS:
        cluster = load_cluster(name)
        assert cluster.network is not None and cluster.bandwidth_bytes_per_s is None
        assert all(g.server is not None for g in cluster.gpus)
        assert all(link.latency_s == 0 for link in cluster.network.links)


def bottleneck(cluster: Cluster, src: int, dst: int) -> float:
    route = cluster.route(src, dst)
    assert route is not None
    return route.bottleneck_bytes_per_s


def test_nvswitch_8_one_port_per_gpu() -> None:
    """Every pair gets 150e9 B/s through the switch, but a GPU's routes to two peers share its port."""
    cluster = load_cluster("nvswitch-8")
    assert len(cluster.gpus) == 8 and {(g.memory_bytes, g.speed) for g in cluster.gpus} == {
        (32e9, 1.0)
    }
    assert {bottleneck(cluster, i, j) for i in range(8) for j in range(8) if i != j} == {150e9}
    to_one, to_two = cluster.route(0, 1), cluster.route(0, 2)
    assert to_one is not None and to_two is not None
    assert set(to_one.resources) & set(to_two.resources)


def test_dgx1_8_cube_mesh_then_pcie() -> None:
    """NVLink (25e9) inside each quad and between twins i, i+4; other pairs cross PCIe (16e9)."""
    cluster = load_cluster("dgx1-8")
    assert {g.memory_bytes for g in cluster.gpus} == {16e9}
    for i in range(8):
        for j in range(8):
            if i != j:
                nvlink = i // 4 == j // 4 or abs(i - j) == 4
                assert bottleneck(cluster, i, j) == (25e9 if nvlink else 16e9), (i, j)
    route = cluster.route(0, 5)
    assert route is not None and "cpu0" in route.nodes and "cpu1" in route.nodes


def test_2x4_10gbe_servers_share_one_nic() -> None:
    """Inside a server 50e9 NVLink; every route out of server 0 crosses the same 10 GbE uplink."""
    cluster = load_cluster("2x4-10gbe")
    assert {g.memory_bytes for g in cluster.gpus} == {32e9}
    assert bottleneck(cluster, 0, 1) == 50e9
    shared = None
    for i in range(4):
        for j in range(4, 8):
            assert bottleneck(cluster, i, j) == 1.25e9
            resources = set(cluster.route(i, j).resources)  # type: ignore[union-attr]
            shared = resources if shared is None else shared & resources
    assert shared  # the NIC's uplink (and the ToR downlink into server 1)


def test_4x4_mixed_servers() -> None:
    """Two fast and two half-speed servers; 12e9 inside, one 25 GbE NIC (3.125e9) between."""
    cluster = load_cluster("4x4-mixed")
    assert len(cluster.gpus) == 16
    for index, gpu in enumerate(cluster.gpus):
        assert (gpu.memory_bytes, gpu.speed) == ((32e9, 1.0) if index < 8 else (16e9, 0.5))
    assert bottleneck(cluster, 0, 1) == 12e9 and bottleneck(cluster, 0, 15) == 3.125e9


def test_2x8_ib_rail_pairs_use_their_own_rail() -> None:
    """GPU pair k reaches pair k of the other server through NIC k and rail k; rails share nothing."""
    cluster = load_cluster("2x8-ib-rail")
    assert len(cluster.gpus) == 16 and bottleneck(cluster, 0, 8) == 12.5e9
    assert bottleneck(cluster, 0, 7) == 150e9
    first, second = cluster.route(0, 8), cluster.route(2, 10)
    assert first is not None and second is not None
    assert "rail0" in first.nodes and "rail1" in second.nodes
    assert not set(first.resources) & set(second.resources)


def test_matrix_form_means_private_links() -> None:
    """The legacy matrix form still loads; two pairs never share a resource (one private link each)."""
    cluster = servers(2, [1e9, 1e9], [1.0, 1.0], 10e9, 1e9)
    assert cluster.network is None and cluster.fabric.nodes[0].relays
    a, b = cluster.route(0, 2), cluster.route(1, 3)
    assert a is not None and b is not None and a.bottleneck_bytes_per_s == 1e9
    assert not set(a.resources) & set(b.resources)


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
    with pytest.raises(ValueError, match="nvswitch-8, dgx1-8, 2x4-10gbe, 4x4-mixed, 2x8-ib-rail"):
        load_cluster("tpu-9000")


GOOD = {
    "gpus": [{"name": "a", "memory_bytes": 1e9, "speed": 1.0}, {"name": "b", "memory_bytes": 1e9}],
    "bandwidth_bytes_per_s": [[0, 1e9], [1e9, 0]],
}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"gpus": GOOD["gpus"]}), "exactly one of network"),
        (
            json.dumps({**GOOD, "gpus": [{"name": "a", "memory_bytes": -1}, GOOD["gpus"][1]]}),
            r"gpus\[0\]\.memory_bytes",
        ),
        (
            json.dumps({**GOOD, "bandwidth_bytes_per_s": [[0, 1e9]]}),
            "bandwidth_bytes_per_s must be a 2x2",
        ),
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
