"""Build microservice instances from real Docker Hub image layers.

Source data: the Docker Hub official-image layer metadata shipped with the
Hermes/EdgeSimPy artifact of Paulo Souza ("Paulo Severo"), MIT licensed
(``top150_images_dockerhub.json``; see the ``PROVENANCE.md`` next to it): one JSON
object per official repository with ``name``, ``pull_count``, ``architecture``,
``os`` and ``layers`` (``digest`` and ``size`` in MiB).

Everything below is drawn from ``numpy.random.default_rng(seed)`` in a fixed
order, so the same file, sizes and seed give the same instance.

Images
    Entries without ``layers`` are skipped (deprecated repositories), and only
    ``architecture == "amd64"`` and ``os == "linux"`` are kept (the two amd64
    Windows images share no layer with the rest): 136 images. A layer's bytes are
    ``round(size_mib * 1024 * 1024)``. A digest listed twice in one image
    (``hipache``) is kept once. The catalogue is ordered by ``pull_count``
    descending, then name.
Services
    ``services`` distinct images drawn without replacement with probability
    proportional to ``sqrt(pull_count)`` (the square root keeps the heavy head of
    the pull counts from making every small instance a set of tiny base images),
    then ordered by popularity; one microservice per image, named after it. No
    image is reused, so ``services`` can be at most 136. ``compute_per_instance``
    is uniform on {250, 300, ..., 1000} millicores and ``service_rate_rps`` uniform
    on the integers 20..100. Only the layers of the chosen images are listed,
    in order of first use.
Servers and links
    ``servers`` edge servers ``edge-0``, ``edge-1``, ... at uniform random points of
    the unit square; links are the Euclidean minimum spanning tree (so the graph
    is connected) plus each server's link to its two nearest servers. Link
    bandwidth is uniform on [1.25e6, 12.5e6] bytes/s (10 to 100 Mbit/s),
    rounded to 1e5 bytes/s. The deployment window is uniform on the integers
    60..120 s. Compute capacity is 4000, 8000 or 16000 millicores with equal
    probability.
Demand
    Each service is demanded in each region with probability 1/2; a service
    demanded nowhere gets one random region, and a region with fewer than
    ``min(2, services)`` demanded services gets random extra ones. The rate of
    service ``i`` (popularity rank ``k_i``, 0 = most pulled) in region ``r`` is
    proportional to ``(k_i + 1) ** -0.8`` (Zipf-like by rank) times a region factor
    uniform on [0.5, 1.5] times a pair jitter uniform on [0.75, 1.25]. Rates are
    scaled so that serving all demand would take ``overload`` times the total
    edge compute (``sum rate / service_rate_rps * compute_per_instance``), with
    ``overload`` uniform on [1.2, 1.5], then rounded to 0.1 requests/s (at least
    0.1).
Storage and registry
    Server ``r`` gets ``floor(f_r * B_r)`` bytes of storage, where ``B_r`` is the
    sum of the image sizes (not deduplicated) of the services demanded in region
    ``r`` and ``f_r`` is uniform on [0.2, 0.5]: a server can hold only a fifth to a
    half of what its own region asks for, before layer sharing and borrowing.
    Its registry bandwidth is ``ceil(g_r * storage / T)`` bytes/s with ``g_r``
    uniform on [0.75, 1.5], so the pull budget binds below the storage on about
    a third of the servers.
Fallback
    A service must be able to run somewhere (the model rejects it otherwise).
    If its image exceeds what every server can hold or borrow, the servers of
    the regions demanding it get ``f_r = 0.5`` and ``g_r >= 1``; if that is still
    not enough (tiny configurations such as one server), the demanding server
    that holds the most gets just enough extra storage, breaking the one-half
    rule, with a logged warning and a sentence in ``notes``. Neither step
    triggers for the shipped instances.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from ...models.microservice import (
    Demand,
    EdgeServer,
    ImageLayer,
    Microservice,
    MicroserviceProblem,
    ServerLink,
)

__all__ = ["CatalogueImage", "build_instance", "import_dockerhub", "load_catalogue"]

logger = logging.getLogger(__name__)

BYTES_PER_MIB = 1024 * 1024
COMPUTE_PER_INSTANCE_CHOICES = np.arange(250, 1001, 50)  # millicores
SERVICE_RATE_RANGE = (20, 100)  # requests/s, inclusive
LINK_BANDWIDTH_RANGE = (1.25e6, 12.5e6)  # bytes/s: 10-100 Mbit/s edge-to-edge WAN links
WINDOW_RANGE = (60, 120)  # seconds, inclusive
COMPUTE_CAPACITY_CHOICES = (4000.0, 8000.0, 16000.0)  # millicores
NEAREST_LINKS = 2
DEMAND_PROBABILITY = 0.5
ZIPF_EXPONENT = 0.8
REGION_FACTOR_RANGE = (0.5, 1.5)
PAIR_JITTER_RANGE = (0.75, 1.25)
OVERLOAD_RANGE = (1.2, 1.5)
STORAGE_FRACTION_RANGE = (0.2, 0.5)
REGISTRY_BUDGET_RANGE = (0.75, 1.5)


@dataclass(frozen=True)
class CatalogueImage:
    """One usable image of the source file.

    Attributes
    ----------
    name:
        Repository name (``nginx``).
    pull_count:
        Docker Hub pulls at crawl time.
    layers:
        ``(digest, size_bytes)`` in image order, each digest once.
    """

    name: str
    pull_count: int
    layers: tuple[tuple[str, int], ...]

    @property
    def size_bytes(self) -> int:
        """Sum of the layer sizes, bytes."""
        return sum(size for _, size in self.layers)


def load_catalogue(images_json_path: str | Path) -> list[CatalogueImage]:
    """Read the usable images of a Docker Hub layer file.

    Parameters
    ----------
    images_json_path:
        Path of ``top150_images_dockerhub.json`` (a JSON list of repositories).

    Returns
    -------
    list[CatalogueImage]
        linux/amd64 images with layers, most pulled first (ties by name).

    Raises
    ------
    ValueError
        When the file is not a list, or one digest has two different sizes.
    """
    entries = json.loads(Path(images_json_path).read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{images_json_path}: expected a JSON list of images")
    size_of_digest: dict[str, int] = {}
    images: list[CatalogueImage] = []
    for entry in entries:
        if (
            not entry.get("layers")
            or entry.get("architecture") != "amd64"
            or entry.get("os") != "linux"
        ):
            continue
        layers: list[tuple[str, int]] = []
        seen: set[str] = set()
        for layer in entry["layers"]:
            digest = layer["digest"]
            size = round(float(layer["size"]) * BYTES_PER_MIB)
            if size_of_digest.setdefault(digest, size) != size:
                raise ValueError(
                    f"layer {digest} has two sizes: {size_of_digest[digest]} and {size} bytes"
                )
            if digest not in seen:
                seen.add(digest)
                layers.append((digest, size))
        images.append(
            CatalogueImage(str(entry["name"]), int(entry.get("pull_count", 0)), tuple(layers))
        )
    images.sort(key=lambda image: (-image.pull_count, image.name))
    return images


def _links(rng: np.random.Generator, servers: int) -> list[tuple[int, int]]:
    """Euclidean MST plus links to the nearest servers, as sorted ``(a, b)`` pairs with ``a < b``."""
    points = rng.random((servers, 2))
    if servers < 2:
        return []
    distance = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    complete = nx.Graph()
    for a in range(servers):
        for b in range(a + 1, servers):
            complete.add_edge(a, b, weight=float(distance[a, b]))
    pairs = {tuple(sorted(edge)) for edge in nx.minimum_spanning_tree(complete).edges()}
    for a in range(servers):
        nearest = [b for b in np.argsort(distance[a], kind="stable") if b != a][:NEAREST_LINKS]
        pairs.update(tuple(sorted((a, int(b)))) for b in nearest)
    return sorted(pairs)


def _holdable(
    storage: list[int], registry_bps: list[float], links: list[ServerLink], window_s: float
) -> list[float]:
    """Most bytes each server can store or borrow (same rule as the model's validation)."""
    storable = [min(float(s), r * window_s) for s, r in zip(storage, registry_bps, strict=True)]
    out = list(storable)
    for link in links:
        budget = link.bandwidth_bytes_per_s * window_s
        out[link.a] += min(storable[link.b], budget)
        out[link.b] += min(storable[link.a], budget)
    return out


def build_instance(
    images_json_path: str | Path,
    servers: int,
    services: int,
    seed: int,
    name: str | None = None,
) -> MicroserviceProblem:
    """Build a microservice instance from Docker Hub layers (rules in the module docstring).

    Parameters
    ----------
    images_json_path:
        Path of the Docker Hub layer file.
    servers:
        Number of edge servers (regions), at least 1.
    services:
        Number of microservices, one distinct image each; 1 to the number of
        usable images (136 in the shipped file).
    seed:
        Seed of ``numpy.random.default_rng``.
    name:
        Instance name; default ``dockerhub-{servers}x{services}-s{seed}``.

    Returns
    -------
    MicroserviceProblem
        A validated instance.

    Raises
    ------
    ValueError
        On out-of-range counts.

    Examples
    --------
    >>> problem = build_instance("top150_images_dockerhub.json", 4, 10, seed=1)  # doctest: +SKIP
    >>> len(problem.servers), len(problem.services)  # doctest: +SKIP
    (4, 10)
    """
    if servers < 1:
        raise ValueError(f"servers must be at least 1, got {servers}")
    catalogue = load_catalogue(images_json_path)
    if not 1 <= services <= len(catalogue):
        raise ValueError(
            f"services must be between 1 and {len(catalogue)} (distinct usable images), got {services}"
        )
    rng = np.random.default_rng(seed)

    # Services: distinct images, sqrt(pull_count)-weighted, ordered by popularity.
    weights = np.sqrt(np.array([max(image.pull_count, 1) for image in catalogue], dtype=float))
    chosen = sorted(
        int(k)
        for k in rng.choice(len(catalogue), size=services, replace=False, p=weights / weights.sum())
    )
    images = [catalogue[k] for k in chosen]
    compute_per_instance = rng.choice(COMPUTE_PER_INSTANCE_CHOICES, size=services).astype(float)
    service_rate = rng.integers(
        SERVICE_RATE_RANGE[0], SERVICE_RATE_RANGE[1] + 1, size=services
    ).astype(float)
    image_bytes = np.array([image.size_bytes for image in images], dtype=float)

    # Servers and links.
    pairs = _links(rng, servers)
    bandwidth = np.round(rng.uniform(*LINK_BANDWIDTH_RANGE, size=len(pairs)) / 1e5) * 1e5
    window_s = float(rng.integers(WINDOW_RANGE[0], WINDOW_RANGE[1] + 1))
    compute_capacity = rng.choice(np.array(COMPUTE_CAPACITY_CHOICES), size=servers)
    links = [
        ServerLink(a=a, b=b, bandwidth_bytes_per_s=float(bw))
        for (a, b), bw in zip(pairs, bandwidth, strict=True)
    ]

    # Which services each region demands.
    demanded = rng.random((services, servers)) < DEMAND_PROBABILITY
    for i in range(services):
        if not demanded[i].any():
            demanded[i, rng.integers(servers)] = True
    least = min(2, services)
    for r in range(servers):
        missing = least - int(demanded[:, r].sum())
        if missing > 0:
            extra = rng.choice(np.flatnonzero(~demanded[:, r]), size=missing, replace=False)
            demanded[extra, r] = True

    # Demand rates: Zipf by popularity rank x region factor x jitter, scaled to overload compute.
    popularity = (np.arange(services) + 1.0) ** -ZIPF_EXPONENT
    region_factor = rng.uniform(*REGION_FACTOR_RANGE, size=servers)
    jitter = rng.uniform(*PAIR_JITTER_RANGE, size=(services, servers))
    raw = popularity[:, None] * region_factor[None, :] * jitter * demanded
    overload = float(rng.uniform(*OVERLOAD_RANGE))
    compute_needed = float((raw.sum(axis=1) / service_rate * compute_per_instance).sum())
    rates = raw * (overload * float(compute_capacity.sum()) / compute_needed)
    rates = np.where(demanded, np.maximum(np.round(rates, 1), 0.1), 0.0)

    # Storage: a fifth to a half of the demanded image bytes; registry budget around it.
    demanded_bytes = (image_bytes[:, None] * demanded).sum(axis=0)
    storage_fraction = rng.uniform(*STORAGE_FRACTION_RANGE, size=servers)
    registry_factor = rng.uniform(*REGISTRY_BUDGET_RANGE, size=servers)

    top_up = np.zeros(servers, dtype=np.int64)  # extra bytes of the last-resort fallback

    def capacities() -> tuple[list[int], list[float]]:
        storage = [
            int(math.floor(f * b)) + int(extra)
            for f, b, extra in zip(storage_fraction, demanded_bytes, top_up, strict=True)
        ]
        registry = [
            max(math.ceil(g * s / window_s), 1)
            for g, s in zip(registry_factor, storage, strict=True)
        ]
        return storage, [float(r) for r in registry]

    storage, registry_bps = capacities()
    holdable = _holdable(storage, registry_bps, links, window_s)
    topped_up: list[str] = []
    for i in range(services):
        if image_bytes[i] <= max(holdable):
            continue
        regions = np.flatnonzero(demanded[i])
        storage_fraction[regions] = STORAGE_FRACTION_RANGE[1]
        registry_factor[regions] = np.maximum(registry_factor[regions], 1.0)
        storage, registry_bps = capacities()
        holdable = _holdable(storage, registry_bps, links, window_s)
        if image_bytes[i] <= max(holdable):
            continue
        # Last resort: grow the demanding server that holds the most until the image fits.
        region = max(regions, key=lambda r: (holdable[r], -r))
        top_up[region] += math.ceil(image_bytes[i] - holdable[region]) + 1
        storage, registry_bps = capacities()
        holdable = _holdable(storage, registry_bps, links, window_s)
        topped_up.append(f"edge-{region} for {images[i].name}")
        logger.warning(
            "storage of edge-%d raised above half its demanded image bytes so that %s (%.1f MB) fits",
            region,
            images[i].name,
            image_bytes[i] / 1e6,
        )

    used_digests: dict[str, int] = {}
    for image in images:
        for digest, size in image.layers:
            used_digests.setdefault(digest, size)
    name = name or f"dockerhub-{servers}x{services}-s{seed}"
    notes = (
        f"Built by distplan.planners.microservice.dockerhub from Docker Hub official-image layers "
        f"(Hermes/EdgeSimPy artifact by Paulo Souza, MIT licence): {servers} servers, {services} services, "
        f"seed {seed}, overload {overload:.3f} (compute needed by all demand / total edge compute)."
    )
    if topped_up:
        notes += f" Storage raised above half the demanded image bytes (last resort): {', '.join(topped_up)}."
    return MicroserviceProblem(
        name=name,
        servers=[
            EdgeServer(
                name=f"edge-{n}",
                storage_bytes=storage[n],
                compute_capacity=float(compute_capacity[n]),
                registry_bandwidth_bytes_per_s=registry_bps[n],
            )
            for n in range(servers)
        ],
        links=links,
        layers=[ImageLayer(digest=d, size_bytes=s) for d, s in used_digests.items()],
        services=[
            Microservice(
                name=image.name,
                image=f"library/{image.name}",
                layers=[digest for digest, _ in image.layers],
                compute_per_instance=float(compute_per_instance[i]),
                service_rate_rps=float(service_rate[i]),
            )
            for i, image in enumerate(images)
        ],
        demands=[
            Demand(service=i, region=r, rate_rps=float(rates[i, r]))
            for i in range(services)
            for r in range(servers)
            if demanded[i, r]
        ],
        deployment_window_s=window_s,
        notes=notes,
    )


def import_dockerhub(
    path: str | Path, servers: int, services: int, seed: int
) -> MicroserviceProblem:
    """The CLI's entry point: :func:`build_instance` with the default instance name.

    Parameters
    ----------
    path:
        Path of the Docker Hub layer file.
    servers, services, seed:
        As in :func:`build_instance`.

    Returns
    -------
    MicroserviceProblem
        A validated instance.
    """
    return build_instance(path, servers, services, seed)
