"""AgentConfig loading: KubeProxyConfiguration YAML, flag overrides, and one clear error per bad field."""
from __future__ import annotations

import textwrap

import pytest

from kproxy.agent.config import (
    AgentConfig,
    ConfigError,
    IptablesConfig,
    apply_overrides,
    load_config,
    parse_bind_address,
    parse_duration,
)

HEADER = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"


def write(tmp_path, body: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(HEADER + textwrap.dedent(body))
    return str(path)


@pytest.mark.parametrize("text,seconds", [
    ("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("0", 0.0), ("0s", 0.0), ("1h", 3600.0),
    ("2.5s", 2.5), ("100us", 0.0001), ("1h2m3s", 3723.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "-1s", "1s2", 5, None, "1 s"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_bind_address():
    assert parse_bind_address("0.0.0.0:10256") == ("0.0.0.0", 10256)
    assert parse_bind_address("[::1]:9") == ("::1", 9)
    for bad in ("10256", "host:80", "1.2.3.4:99999", "1.2.3.4:"):
        with pytest.raises(ValueError):
            parse_bind_address(bad)


def test_defaults_without_file():
    cfg = load_config(None, {})
    assert cfg == AgentConfig()
    assert cfg.mode == "iptables"
    assert cfg.iptables == IptablesConfig(min_sync_period=1.0, sync_period=30.0, masquerade_all=False,
                                          masquerade_bit=14, localhost_nodeports=True, backend="auto")
    assert cfg.healthz_bind_address == "0.0.0.0:10256"
    assert cfg.metrics_bind_address == "127.0.0.1:10249"


def test_full_file(tmp_path):
    path = write(tmp_path, """
        mode: iptables
        clusterCIDR: 10.244.0.0/16
        hostnameOverride: node-1
        nodePortAddresses: [10.200.0.0/24, primary]
        healthzBindAddress: 127.0.0.1:0
        metricsBindAddress: "[::1]:10249"
        clientConnection:
          kubeconfig: /tmp/admin.kubeconfig
          qps: 5
        iptables:
          minSyncPeriod: 500ms
          syncPeriod: 1m30s
          masqueradeAll: true
          masqueradeBit: 15
          localhostNodePorts: false
          backend: legacy
        conntrack:
          maxPerCore: 0
          tcpEstablishedTimeout: 24h
        featureGates: {Foo: true}
    """)
    cfg = load_config(path)
    assert cfg.cluster_cidr == "10.244.0.0/16"
    assert cfg.node_name == "node-1"
    assert cfg.node_port_addresses == ("10.200.0.0/24", "primary")
    assert cfg.kubeconfig == "/tmp/admin.kubeconfig"
    assert cfg.iptables == IptablesConfig(0.5, 90.0, True, 15, False, "legacy")
    assert (cfg.min_sync_period, cfg.sync_period, cfg.masquerade_all, cfg.masquerade_bit) == (0.5, 90.0, True, 15)
    assert cfg.conntrack.max_per_core == 0
    assert cfg.conntrack.tcp_established_timeout == 86400.0


def test_mode_sections_pick_periods(tmp_path):
    path = write(tmp_path, """
        mode: nftables
        iptables: {syncPeriod: 10s}
        nftables: {syncPeriod: 20s, minSyncPeriod: 2s}
    """)
    cfg = load_config(path)
    assert (cfg.min_sync_period, cfg.sync_period) == (2.0, 20.0)


def test_flags_override_file(tmp_path):
    path = write(tmp_path, """
        clusterCIDR: 10.0.0.0/8
        iptables: {syncPeriod: 10s, minSyncPeriod: 2s}
    """)
    cfg = load_config(path, {"cluster_cidr": "10.244.0.0/16", "sync_period": "5s", "min_sync_period": None,
                             "node_name": "n2", "netns": "ns1", "iptables_backend": "nft"})
    assert cfg.cluster_cidr == "10.244.0.0/16"
    assert cfg.iptables.sync_period == 5.0
    assert cfg.nftables.sync_period == 5.0  # the flag applies to whichever mode runs
    assert cfg.iptables.min_sync_period == 2.0  # None = flag not given, file value kept
    assert cfg.node_name == "n2"
    assert cfg.netns == "ns1"
    assert cfg.iptables.backend == "nft"


@pytest.mark.parametrize("body,field", [
    ("bogus: 1\n", "bogus: unknown field"),
    ("iptables: {bogus: 1}\n", "iptables.bogus: unknown field"),
    ("iptables: {syncPeriod: fast}\n", "iptables.syncPeriod: invalid duration"),
    ("iptables: {syncPeriod: 30}\n", "iptables.syncPeriod: invalid duration"),
    ("iptables: {minSyncPeriod: 1m, syncPeriod: 30s}\n", "iptables.minSyncPeriod: must not exceed"),
    ("iptables: {syncPeriod: 0s}\n", "iptables.syncPeriod: must be greater than 0"),
    ("iptables: {masqueradeAll: yes-please}\n", "iptables.masqueradeAll: want true or false"),
    ("iptables: {masqueradeBit: 32}\n", "iptables.masqueradeBit: must be between 0 and 31"),
    ("iptables: {masqueradeBit: true}\n", "iptables.masqueradeBit: want an integer"),
    ("iptables: {backend: xt}\n", "iptables.backend: must be one of nft, legacy, auto"),
    ("iptables: {localhostNodePorts: 1}\n", "iptables.localhostNodePorts: want true or false"),
    ("iptables: [1]\n", "iptables: want a mapping"),
    ("ipvs: {excludeCIDRs: [nope]}\n", "ipvs.excludeCIDRs: invalid CIDR"),
    ("conntrack: {maxPerCore: -1}\n", "conntrack.maxPerCore: must be between"),
    ("mode: IPTABLES!\n", "mode: invalid mode"),
    ("mode: 3\n", "mode: want a string"),
    ("clusterCIDR: 10.244.0.0/33\n", "clusterCIDR: invalid CIDR"),
    ("clusterCIDR: [10.0.0.0/8]\n", "clusterCIDR: invalid CIDR list"),
    ("nodePortAddresses: 10.0.0.0/8\n", "nodePortAddresses: want a list"),
    ("nodePortAddresses: [foo]\n", "nodePortAddresses: invalid CIDR"),
    ("healthzBindAddress: localhost:1\n", "healthzBindAddress: invalid address"),
    ("metricsBindAddress: 1.2.3.4\n", "metricsBindAddress: invalid address"),
    ("hostnameOverride: [a]\n", "hostnameOverride: want a string"),
    ("configSyncPeriod: 1d\n", "configSyncPeriod: invalid duration"),
    ("clientConnection: {kubeconfig: 5}\n", "clientConnection.kubeconfig: want a string"),
    ("clientConnection: {foo: 5}\n", "clientConnection.foo: unknown field"),
])
def test_bad_field_named(tmp_path, body, field):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"config file {path}: ")
    assert field in message
    assert "\n" not in message


def test_bad_header(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: v1\nkind: KubeProxyConfiguration\n")
    with pytest.raises(ConfigError, match="apiVersion: want"):
        load_config(str(path))
    path.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: Pod\n")
    with pytest.raises(ConfigError, match="kind: want"):
        load_config(str(path))
    path.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(str(path))


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file .*/missing.yaml: No such file"):
        load_config(str(tmp_path / "missing.yaml"))
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(str(path))


@pytest.mark.parametrize("flag,value,message", [
    ("sync_period", "soon", "--sync-period: invalid duration"),
    ("min_sync_period", "1h", "iptables.minSyncPeriod: must not exceed"),
    ("cluster_cidr", "nope", "--cluster-cidr: invalid CIDR"),
    ("healthz_bind_address", "x", "--healthz-bind-address: invalid address"),
    ("iptables_backend", "new", "--iptables-backend: must be one of"),
])
def test_bad_flags(flag, value, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(AgentConfig(), {flag: value})


def test_mode_specific_sections(tmp_path):
    path = tmp_path / "kpc.yaml"
    path.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                    "nftables:\n  endpointSelection: maglev\n"
                    "userspace:\n  balancer: roundrobin\n  udpIdleTimeout: 30s\n")
    from kproxy.agent.config import load_config
    config = load_config(str(path))
    assert config.nftables.endpoint_selection == "maglev"
    assert config.userspace.balancer == "roundrobin" and config.userspace.udp_idle_timeout == 30.0


@pytest.mark.parametrize("section,body", [
    ("nftables", "endpointSelection: fastest"),
    ("userspace", "balancer: random"),
    ("userspace", "udpIdleTimeout: soon"),
])
def test_mode_specific_sections_reject_bad_values(tmp_path, section, body):
    path = tmp_path / "kpc.yaml"
    path.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                    f"{section}:\n  {body}\n")
    from kproxy.agent.config import ConfigError, load_config
    with pytest.raises(ConfigError, match=section + r"\."):
        load_config(str(path))
