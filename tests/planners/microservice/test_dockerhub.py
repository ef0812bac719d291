"""Tests of the Docker Hub instance builder: filtering, determinism, biting capacities, shipped files."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from distplan.models import load_instance
from distplan.models.microservice import MicroserviceProblem
from distplan.planners.microservice.dockerhub import (
    build_instance,
    import_dockerhub,
    load_catalogue,
)

MIB = 1024 * 1024


def fake_entry(
    name: str, pulls: int, layers: list[tuple[str, float]], arch: str = "amd64", os: str = "linux"
) -> dict:
    return {
        "name": name,
        "pull_count": pulls,
        "architecture": arch,
        "os": os,
        "layers": [{"digest": d, "size": s, "instruction": "RUN x"} for d, s in layers],
    }


@pytest.fixture
def catalogue_path(tmp_path: Path) -> Path:
    """Twelve usable images sharing two base layers, plus entries the builder must skip."""
    entries = []
    for k in range(12):
        base = ("sha256:debian", 29.5) if k % 2 else ("sha256:alpine", 3.25)
        entries.append(
            fake_entry(f"img{k}", 10**6 * (k + 1), [base, (f"sha256:app{k}", 20.0 + 15 * k)])
        )
    entries.append(
        fake_entry("twice", 5, [("sha256:debian", 29.5), ("sha256:t", 1.5), ("sha256:t", 1.5)])
    )
    entries.append({"name": "deprecated", "pull_count": 10**9})
    entries.append(fake_entry("armonly", 10**9, [("sha256:arm", 10.0)], arch="arm64"))
    entries.append(fake_entry("win", 10**9, [("sha256:win", 10.0)], os="windows"))
    path = tmp_path / "images.json"
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture
def real_data(shared_data: Path) -> Path:
    path = shared_data / "image_layers" / "top150_images_dockerhub.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def storage_fractions(problem: MicroserviceProblem) -> list[float]:
    """Each server's storage over the summed image bytes of the services demanded in its region."""
    demanded = [0] * len(problem.servers)
    for demand in problem.demands:
        demanded[demand.region] += problem.image_bytes(demand.service)
    return [server.storage_bytes / demanded[n] for n, server in enumerate(problem.servers)]


def compute_overload(problem: MicroserviceProblem) -> float:
    """Compute all demand would need over the total edge compute."""
    needed = sum(
        d.rate_rps
        / problem.services[d.service].service_rate_rps
        * problem.services[d.service].compute_per_instance
        for d in problem.demands
    )
    return needed / sum(server.compute_capacity for server in problem.servers)


def test_catalogue_filters_and_converts(catalogue_path):
    """Only linux/amd64 entries with layers are kept, most pulled first, MiB become bytes, duplicates dropped."""
    images = load_catalogue(catalogue_path)
    assert [image.name for image in images][:2] == ["img11", "img10"]
    assert {image.name for image in images} == {f"img{k}" for k in range(12)} | {"twice"}
    twice = next(image for image in images if image.name == "twice")
    assert twice.layers == (("sha256:debian", round(29.5 * MIB)), ("sha256:t", round(1.5 * MIB)))


def test_same_seed_same_instance(catalogue_path):
    """The builder is deterministic in the seed; another seed gives another instance."""
    first = build_instance(catalogue_path, 5, 8, seed=7)
    again = build_instance(catalogue_path, 5, 8, seed=7)
    other = build_instance(catalogue_path, 5, 8, seed=8)
    assert first.model_dump() == again.model_dump()
    assert first.model_dump() != other.model_dump()
    assert import_dockerhub(catalogue_path, 5, 8, 7).model_dump() == first.model_dump()
    assert first.name == "dockerhub-5x8-s7"


def test_instance_structure(catalogue_path):
    """Distinct images, only used layers, connected topology, parameters in their documented ranges."""
    problem = build_instance(catalogue_path, 6, 10, seed=3, name="fake")
    assert problem.name == "fake"
    assert len({service.name for service in problem.services}) == 10
    used = {digest for service in problem.services for digest in service.layers}
    assert {layer.digest for layer in problem.layers} == used
    graph = nx.Graph([(link.a, link.b) for link in problem.links])
    graph.add_nodes_from(range(6))
    assert nx.is_connected(graph)
    assert all(1.25e6 <= link.bandwidth_bytes_per_s <= 12.5e6 for link in problem.links)
    assert 60 <= problem.deployment_window_s <= 120
    for service in problem.services:
        assert 250 <= service.compute_per_instance <= 1000
        assert 20 <= service.service_rate_rps <= 100
    served_somewhere = {demand.service for demand in problem.demands}
    assert served_somewhere == set(range(10))
    assert all(demand.rate_rps >= 0.1 for demand in problem.demands)


def test_capacities_bite(catalogue_path):
    """Storage holds 20-50 % of the demanded image bytes per server, and demand overloads compute."""
    for seed in range(5):
        problem = build_instance(catalogue_path, 4, 10, seed=seed)
        assert all(0.2 <= f <= 0.5 for f in storage_fractions(problem))
        assert compute_overload(problem) > 1.1


def test_too_many_services_is_rejected(catalogue_path):
    """Asking for more services than distinct usable images raises ValueError."""
    with pytest.raises(ValueError, match="services must be between 1 and 13"):
        build_instance(catalogue_path, 3, 14, seed=0)
    with pytest.raises(ValueError, match="servers must be at least 1"):
        build_instance(catalogue_path, 0, 3, seed=0)


def test_real_catalogue_and_large_instance(real_data):
    """The source file has 136 linux/amd64 images; a 20 x 100 instance has biting capacities."""
    assert len(load_catalogue(real_data)) == 136
    problem = build_instance(real_data, 20, 100, seed=11)
    assert len(problem.services) == 100
    assert all(0.2 <= f <= 0.5 for f in storage_fractions(problem))
    assert compute_overload(problem) > 1.1


def test_shipped_instances_are_valid_and_reproducible(repo, real_data):
    """Every shipped file loads, has biting capacities and equals a fresh build from the script's table."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_script", repo / "scripts" / "build_microservice_instances.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    folder = repo / "instances" / "microservice"
    assert (folder / "LICENSE-data.md").read_text().count("Copyright (c) 2023 Paulo Severo") == 1
    for name, servers, services, seed in script.INSTANCES:
        shipped = load_instance(folder / f"{name}.json")
        assert isinstance(shipped, MicroserviceProblem)
        assert (len(shipped.servers), len(shipped.services)) == (servers, services)
        assert all(0.2 <= f <= 0.5 for f in storage_fractions(shipped))
        assert compute_overload(shipped) > 1.1
        fresh = build_instance(real_data, servers, services, seed, name=name)
        assert fresh.model_dump() == shipped.model_dump()
