"""The shared network model: validation, the one routing function, max-min fair sharing."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from distplan.models.network import Network, NetworkLink, NetworkNode, max_min_fair_rates, route


def _star(medium_capacity: float | None = None) -> Network:
    nodes = [NetworkNode(name=n, role="compute") for n in ("a", "b", "c")]
    nodes.append(NetworkNode(name="hub", capacity_bytes_per_s=medium_capacity))
    links = [
        NetworkLink(source=n, target="hub", bandwidth_bytes_per_s=1e9, latency_s=1e-3)
        for n in ("a", "b", "c")
    ]
    return Network(nodes=nodes, links=links)


def test_route_through_a_switch_sums_latency_and_takes_the_bottleneck():
    """A route crosses the switch: two links, their latencies add, the bottleneck is the slowest."""
    r = route(_star(), "a", "b")
    assert r is not None
    assert r.nodes == ("a", "hub", "b")
    assert r.latency_s == pytest.approx(2e-3)
    assert r.bottleneck_bytes_per_s == 1e9
    assert r.transfer_s(1e9) == pytest.approx(1.002)


def test_shared_medium_caps_the_route_and_is_a_resource():
    """A capacitated forwarding node (a WLAN) bounds the route and appears among its resources."""
    r = route(_star(5e6), "a", "c")
    assert r is not None and r.bottleneck_bytes_per_s == 5e6
    assert "node:hub" in r.resources


def test_compute_nodes_do_not_relay_unless_they_say_so():
    """a - b - c with b a compute node: unreachable, unless b forwards."""
    links = [
        NetworkLink(source="a", target="b", bandwidth_bytes_per_s=1.0),
        NetworkLink(source="b", target="c", bandwidth_bytes_per_s=1.0),
    ]
    closed = Network(nodes=[NetworkNode(name=n, role="compute") for n in "abc"], links=links)
    assert route(closed, "a", "c") is None
    nodes = [
        NetworkNode(name="a", role="compute"),
        NetworkNode(name="b", role="compute", forwards=True),
        NetworkNode(name="c", role="compute"),
    ]
    assert route(Network(nodes=nodes, links=links), "a", "c").nodes == ("a", "b", "c")  # type: ignore[union-attr]


def test_widest_path_wins_then_latency_then_name_order():
    """Two equally wide paths: the lower-latency one; equal latency: the smaller node names."""
    nodes = [NetworkNode(name=n, role="compute") for n in ("s", "t")] + [
        NetworkNode(name=n) for n in ("x", "y", "z")
    ]
    links = [
        NetworkLink(source="s", target="y", bandwidth_bytes_per_s=10.0),
        NetworkLink(source="y", target="t", bandwidth_bytes_per_s=10.0),
        NetworkLink(source="s", target="x", bandwidth_bytes_per_s=10.0),
        NetworkLink(source="x", target="t", bandwidth_bytes_per_s=10.0),
        NetworkLink(source="s", target="z", bandwidth_bytes_per_s=100.0, latency_s=1.0),
        NetworkLink(source="z", target="t", bandwidth_bytes_per_s=5.0),
    ]
    assert route(Network(nodes=nodes, links=links), "s", "t").nodes == ("s", "x", "t")  # type: ignore[union-attr]


def test_duplicate_names_and_unknown_endpoints_are_rejected_naming_the_field():
    """Validation names the offending field."""
    with pytest.raises(ValidationError, match=r"nodes\[1\]\.name"):
        Network(nodes=[NetworkNode(name="a"), NetworkNode(name="a")])
    with pytest.raises(ValidationError, match=r"links\[0\]\.target"):
        Network(
            nodes=[NetworkNode(name="a")],
            links=[NetworkLink(source="a", target="q", bandwidth_bytes_per_s=1.0)],
        )


def test_max_min_fair_rates_progressive_filling():
    """Two flows on one link get half each; a flow crossing a link twice counts twice."""
    assert max_min_fair_rates([{"l": 1}, {"l": 1}], {"l": 10.0}) == [5.0, 5.0]
    rates = max_min_fair_rates([{"l": 2}, {"l": 1, "m": 1}, {"m": 1}], {"l": 10.0, "m": 8.0})
    assert rates[0] == pytest.approx(10 / 3) and rates[1] == pytest.approx(10 / 3)
    assert rates[2] == pytest.approx(8 - 10 / 3)
    assert max_min_fair_rates([{}], {}) == [math.inf]
    assert max_min_fair_rates([{"l": 1}], {"l": 10.0}, rate_cap=[3.0]) == [3.0]
