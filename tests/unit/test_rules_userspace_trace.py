"""The userspace trace's pure parts: which endpoints count as local from the node's routes, and
the endpoint choice as the proxy's Balancer makes it."""
from __future__ import annotations

import pytest

from kproxy.rules.trace import Probe
from kproxy.rules.userspace import choose, local_endpoints
from kproxy.userspace.core import Balancer

ROUTES = """default via 10.200.0.1 dev eth0
10.200.0.0/24 dev eth0 proto kernel scope link src 10.200.0.11
10.244.1.2 dev vethp1 scope link
10.244.2.0/24 via 10.200.0.12 dev eth0
10.244.3.7 via 10.200.0.13 dev eth0
"""


def test_local_endpoints_are_host_routes_without_a_gateway():
    eps = ["10.244.1.2:8080", "10.244.1.3:8080", "10.244.2.5:8080", "10.244.3.7:8080", "10.200.0.5:80", "x:1"]
    assert local_endpoints(ROUTES, eps) == {"10.244.1.2:8080"}
    assert local_endpoints("", eps) == set()


def test_maglev_choice_is_the_balancers_first_endpoint():
    eps = ("10.244.1.2:8080", "10.244.1.3:8080", "10.244.2.5:8080")
    for sport in range(40000, 40020):
        probe = Probe("tcp", "10.200.0.2", sport, "10.96.0.10", 80)
        expected = Balancer(eps, None, "maglev").order("10.200.0.2", sport, "10.200.0.11", 41234, 6, 0.0)[0]
        assert choose("maglev", eps, probe, "10.200.0.11", 41234) == [(expected, 1.0)]


def test_without_a_source_port_maglev_gives_table_shares_and_round_robin_even_shares():
    eps = ("10.244.1.2:8080", "10.244.1.3:8080", "10.244.2.5:8080")
    probe = Probe("tcp", "10.200.0.2", 0, "10.96.0.10", 80)
    shares = dict(choose("maglev", eps, probe, "10.200.0.11", 41234))
    assert set(shares) == set(eps) and sum(shares.values()) == pytest.approx(1.0)
    assert all(0.25 < p < 0.42 for p in shares.values())
    assert choose("roundrobin", eps, probe, "10.200.0.11", 41234) == [(ep, pytest.approx(1 / 3)) for ep in eps]
    assert choose("maglev", (), probe, "10.200.0.11", 41234) == []
