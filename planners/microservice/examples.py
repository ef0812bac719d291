"""Small microservice instances every microservice solver must handle (the conformance tests use them)."""

from __future__ import annotations

from ...models.microservice import (
    Demand,
    EdgeServer,
    ImageLayer,
    Microservice,
    MicroserviceProblem,
    ServerLink,
)

__all__ = ["line_problem", "small_examples"]

MB = 1_000_000


def line_problem(name: str = "line", demands: bool = True) -> MicroserviceProblem:
    """Three servers in a line sharing a base layer (hand-checked in the evaluator tests).

    edge-0 - edge-1 - edge-2 (window 100 s; link budgets 200 MB and 100 MB;
    edge-2's registry budget 60 MB) with web = base + app-a (150 MB, 500
    millicores, 10 rps per instance) and db = base + app-b (180 MB, 1000
    millicores, 30 rps); demand: web 25 rps in region 0 and 15 in region 2, db
    40 rps in region 1 (none when ``demands`` is false).
    """
    return MicroserviceProblem(
        name=name,
        servers=[
            EdgeServer(name="edge-0", storage_bytes=300 * MB, compute_capacity=2000.0),
            EdgeServer(name="edge-1", storage_bytes=200 * MB, compute_capacity=1500.0),
            EdgeServer(
                name="edge-2",
                storage_bytes=100 * MB,
                compute_capacity=1000.0,
                registry_bandwidth_bytes_per_s=0.6 * MB,
            ),
        ],
        links=[
            ServerLink(a=0, b=1, bandwidth_bytes_per_s=2.0 * MB),
            ServerLink(a=1, b=2, bandwidth_bytes_per_s=1.0 * MB),
        ],
        layers=[
            ImageLayer(digest="base", size_bytes=100 * MB),
            ImageLayer(digest="app-a", size_bytes=50 * MB),
            ImageLayer(digest="app-b", size_bytes=80 * MB),
        ],
        services=[
            Microservice(
                name="web",
                image="web",
                layers=["base", "app-a"],
                compute_per_instance=500.0,
                service_rate_rps=10.0,
            ),
            Microservice(
                name="db",
                image="db",
                layers=["base", "app-b"],
                compute_per_instance=1000.0,
                service_rate_rps=30.0,
            ),
        ],
        demands=[
            Demand(service=0, region=0, rate_rps=25.0),
            Demand(service=0, region=2, rate_rps=15.0),
            Demand(service=1, region=1, rate_rps=40.0),
        ]
        if demands
        else [],
        deployment_window_s=100.0,
    )


def small_examples() -> list[MicroserviceProblem]:
    """The line instance, with and without demand."""
    return [line_problem(), line_problem(name="line-no-demand", demands=False)]
