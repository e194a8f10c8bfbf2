"""The conntrack section's plan (pure): kube-proxy's sizing and which sysctls it writes."""
from __future__ import annotations

from kproxy.agent.config import ConntrackConfig, parse_config
from kproxy.agent.sysctls import CONNTRACK_MAX, TCP_BE_LIBERAL, Outcome, plan_conntrack

ESTABLISHED = "net/netfilter/nf_conntrack_tcp_timeout_established"
CLOSE_WAIT = "net/netfilter/nf_conntrack_tcp_timeout_close_wait"


def test_defaults_scale_the_limit_by_cores_with_a_floor():
    plan = plan_conntrack(ConntrackConfig(), cores=2)  # 32768 * 2 < min 131072
    assert plan.sysctls == ((CONNTRACK_MAX, 131072), (ESTABLISHED, 86400), (CLOSE_WAIT, 3600))
    assert plan.hashsize == 32768
    big = plan_conntrack(ConntrackConfig(), cores=8)
    assert dict(big.sysctls)[CONNTRACK_MAX] == 262144 and big.hashsize == 65536


def test_zero_leaves_a_setting_alone_and_be_liberal_only_when_true():
    config = ConntrackConfig(max_per_core=0, tcp_established_timeout=0, tcp_close_wait_timeout=0,
                             udp_timeout=30, udp_stream_timeout=120.5, tcp_be_liberal=True)
    plan = plan_conntrack(config, cores=4)
    assert plan.sysctls == (("net/netfilter/nf_conntrack_udp_timeout", 30),
                            ("net/netfilter/nf_conntrack_udp_timeout_stream", 120),
                            (TCP_BE_LIBERAL, 1))
    assert plan.hashsize is None


def test_config_section_parses_every_upstream_field():
    config = parse_config({"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                           "conntrack": {"maxPerCore": 0, "min": 5, "tcpEstablishedTimeout": "10m",
                                         "tcpCloseWaitTimeout": "1m", "udpTimeout": "30s",
                                         "udpStreamTimeout": "2m", "tcpBeLiberal": True}})
    assert config.conntrack == ConntrackConfig(0, 5, 600.0, 60.0, 30.0, 120.0, True)


def test_outcome_describes_why():
    assert Outcome(CONNTRACK_MAX, 5, "read-only", "no").describe() == "net/netfilter/nf_conntrack_max = 5: read-only (no)"
