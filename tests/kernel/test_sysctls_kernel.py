"""The conntrack section applied inside a namespace, read back from the kernel; the machine's
own values stay as they were."""
from __future__ import annotations

import pytest

from kproxy.agent.config import ConntrackConfig
from kproxy.agent.sysctls import CONNTRACK_MAX, apply_plan, plan_conntrack
from kproxy.netns import NetNS
from tests import nsutil

pytestmark = pytest.mark.kernel

SETTINGS = {
    "net/netfilter/nf_conntrack_tcp_timeout_established": 600,
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait": 120,
    "net/netfilter/nf_conntrack_udp_timeout": 45,
    "net/netfilter/nf_conntrack_udp_timeout_stream": 150,
    "net/netfilter/nf_conntrack_tcp_be_liberal": 1,
}


def read(name: str) -> int:
    with open(f"/proc/sys/{name}") as f:
        return int(f.read())


def test_conntrack_section_is_applied_in_the_agents_namespace_only():
    config = ConntrackConfig(max_per_core=1 << 20, min=0, tcp_established_timeout=600, tcp_close_wait_timeout=120,
                             udp_timeout=45, udp_stream_timeout=150, tcp_be_liberal=True)
    plan = plan_conntrack(config, cores=1)
    host_before = {name: read(name) for name in [*SETTINGS, CONNTRACK_MAX]}
    with nsutil.netns("sysctl") as ns:
        netns = NetNS(ns)
        try:
            netns.run(lambda: read(CONNTRACK_MAX))  # conntrack sysctls exist in the namespace
            outcomes = {o.name: o for o in netns.run(apply_plan, plan)}
            assert {name: netns.run(read, name) for name in SETTINGS} == SETTINGS
            assert all(outcomes[name].status == "set" for name in SETTINGS)
            # nf_conntrack_max: per namespace only on kernels that allow it; otherwise reported
            limit = outcomes[CONNTRACK_MAX]
            if limit.status == "set":
                assert netns.run(read, CONNTRACK_MAX) == 1 << 20
            else:
                assert limit.status == "read-only" and "network namespace" in limit.detail
            hashsize = outcomes["nf_conntrack hashsize"]
            assert hashsize.status == "skipped" and "initial network namespace" in hashsize.detail
            # a second run finds everything in place
            again = {o.name: o.status for o in netns.run(apply_plan, plan)}
            assert all(again[name] == "unchanged" for name in SETTINGS)
        finally:
            netns.close()
    assert {name: read(name) for name in host_before} == host_before
