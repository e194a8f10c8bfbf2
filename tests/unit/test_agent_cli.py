"""`kproxy agent` / `kproxy cleanup` bad input: one line on stderr, exit code 2, no traceback."""
from __future__ import annotations

import pytest

from kproxy.cli.main import main

HEADER = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:9'}\n"
        "users:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n")
    return str(path)


def run_cli(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("args,message", [
    ([], "--kubeconfig is required"),
    (["--sync-period", "soon"], "--sync-period: invalid duration 'soon'"),
    (["--min-sync-period", "1m", "--sync-period", "30s"], "minSyncPeriod: must not exceed syncPeriod"),
    (["--cluster-cidr", "10.0.0.0/99"], "--cluster-cidr: invalid CIDR"),
    (["--service-cidr", "10.96.0.0/12,x"], "--service-cidr: invalid CIDR"),
    (["--healthz-bind-address", "nowhere"], "--healthz-bind-address: invalid address"),
    (["--iptables-backend", "xt"], "--iptables-backend: must be one of nft, legacy, auto"),
    (["--mode", "teleport"], "--mode: unknown mode 'teleport'"),
    (["--netns", "kproxy-no-such-namespace"], "--netns: network namespace 'kproxy-no-such-namespace' does not exist"),
    (["--backend-module", "no.such.module"], "--backend-module no.such.module: No module named"),
])
def test_agent_bad_flags(capsys, kubeconfig, args, message):
    argv = ["agent"] + args
    if message != "--kubeconfig is required":
        argv += ["--kubeconfig", kubeconfig]
    code, err = run_cli(capsys, argv)
    assert code == 2
    assert err.startswith("kproxy agent: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_agent_bad_config_file(capsys, tmp_path, kubeconfig):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(HEADER + "iptables:\n  syncPerod: 1s\n")
    code, err = run_cli(capsys, ["agent", "--kubeconfig", kubeconfig, "--config", str(cfg)])
    assert code == 2 and err == f"kproxy agent: config file {cfg}: iptables.syncPerod: unknown field\n"


def test_agent_unreadable_kubeconfig(capsys, tmp_path):
    bad = tmp_path / "kc"
    bad.write_text("clusters: [")
    code, err = run_cli(capsys, ["agent", "--kubeconfig", str(bad)])
    assert code == 2 and err.startswith("kproxy agent: --kubeconfig: ") and err.count("\n") == 1


def test_cleanup_bad_input(capsys):
    code, err = run_cli(capsys, ["cleanup", "--mode", "teleport"])
    assert code == 2 and err.startswith("kproxy cleanup: --mode: unknown mode 'teleport'")
    code, err = run_cli(capsys, ["cleanup", "--mode", "iptables", "--netns", "kproxy-no-such-namespace"])
    assert code == 2 and "does not exist" in err and err.count("\n") == 1


def test_config_file_supplies_kubeconfig_and_node_name_flags_override(tmp_path, kubeconfig):
    from kproxy.agent.cli import build_config
    from kproxy.cli.main import build_parser

    cfg = tmp_path / "c.yaml"
    cfg.write_text(HEADER + f"clientConnection: {{kubeconfig: {kubeconfig}}}\nhostnameOverride: node-7\n"
                            "iptables: {syncPeriod: 10s, minSyncPeriod: 2s, backend: legacy}\n")
    parser, _ = build_parser()
    args = parser.parse_args(["agent", "--config", str(cfg), "--sync-period", "20s", "--masquerade-all"])
    config = build_config(args)
    assert config.kubeconfig == kubeconfig and config.node_name == "node-7"
    assert (config.min_sync_period, config.sync_period) == (2.0, 20.0)
    assert config.masquerade_all is True and config.iptables.backend == "legacy"
