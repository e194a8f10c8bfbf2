"""`kproxy install`: the rendered files (golden units, agent config the agent's own loader
accepts, modes of keys), the join file, and the command's handling of bad input, all into
--root temp dirs. Nothing here starts a unit (tests/install/test_install_run.py runs the
rendered commands in a namespace).

KPROXY_UPDATE_GOLDEN=1 rewrites the golden units (review the diff before committing)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from kproxy.agent.config import load_config_file
from kproxy.cli.main import main
from kproxy.install import join as joinmod
from kproxy.install.render import (UNITS, ControlPlaneSpec, Layout, NodeSpec, agent_config_doc,
                                   exec_line, render_control_plane)
from kproxy.pki import ca as pki_ca

GOLDEN = Path(__file__).parent / "golden"
CP_IP = "10.199.0.10"


def _join(**overrides) -> joinmod.JoinConfig:
    ca = pki_ca.create_ca()
    values = dict(server=f"https://{CP_IP}:6443", ca_pem=ca.cert_pem, node_name="node1",
                  kubelet=pki_ca.issue_client(ca, "system:node:node1", ("system:nodes",)),
                  kube_proxy=pki_ca.issue_client(ca, "system:kube-proxy"),
                  cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12", pod_cidr="10.244.1.0/24",
                  kubelet_serving=pki_ca.issue_serving(ca, ["node1", CP_IP], common_name="system:node:node1"))
    values.update(overrides)
    return joinmod.JoinConfig(**values)


def test_units_match_golden():
    layout = Layout(root="/", kproxy="/usr/local/bin/kproxy", ip="/usr/bin/ip")
    join = _join()
    cp = ControlPlaneSpec(advertise_address=CP_IP, service_cidr="10.96.0.0/12", admin=join.kubelet, ca_pem=join.ca_pem)
    node = NodeSpec(join=join, node_ip=CP_IP, pod_cidr="10.244.1.0/24", mode="nftables")
    files = {f.path: f for f in render_control_plane(layout, cp, node)}
    for name in (*UNITS, "agent.yaml"):
        path = layout.unit(name) if name in UNITS else layout.agent_config
        golden = GOLDEN / name
        if os.environ.get("KPROXY_UPDATE_GOLDEN") == "1":
            golden.parent.mkdir(exist_ok=True)
            golden.write_bytes(files[path].content)
        assert golden.exists(), f"{golden} missing: run with KPROXY_UPDATE_GOLDEN=1"
        assert files[path].content.decode() == golden.read_text(), name


def test_exec_line_escapes_systemd_specifiers_and_quotes():
    assert exec_line(["/bin/kproxy", "agent", "--config", "/etc/kproxy/agent.yaml"]) == \
        "/bin/kproxy agent --config /etc/kproxy/agent.yaml"
    assert exec_line(["/a b/kproxy", "100%", "$HOME", 'say "hi"']) == \
        '"/a b/kproxy" 100%% $$HOME "say \\"hi\\""'


def test_agent_config_is_accepted_by_the_agents_loader(tmp_path):
    layout = Layout(root=str(tmp_path))
    node = NodeSpec(join=_join(), node_ip=CP_IP, pod_cidr="10.244.1.0/24", mode="ipvs")
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(agent_config_doc(layout, node)))
    config = load_config_file(str(path))
    assert (config.mode, config.node_name, config.cluster_cidr, config.service_cidr) == \
        ("ipvs", "node1", "10.244.0.0/16", "10.96.0.0/12")
    assert config.kubeconfig == str(tmp_path / "etc/kproxy/kube-proxy.kubeconfig")
    assert config.netns is None  # the machine's own namespace: that is what a node install is for


def test_join_round_trip_and_refusals():
    join = _join()
    assert joinmod.parse_join(joinmod.dump_join(join)) == join
    doc = joinmod.join_doc(join)
    other = _join(node_name="node2")  # credentials of another CA and node
    cases = {
        "kubelet: the certificate is for 'system:node:node1', not 'system:node:node2'": {**doc, "nodeName": "node2"},
        "kubeProxy: the certificate was not issued by certificateAuthority":
            {**doc, "kubeProxy": joinmod.join_doc(other)["kubeProxy"]},
        "server: 'http://x' is not an https URL": {**doc, "server": "http://x"},
        "podCIDR: ": {**doc, "podCIDR": "10.244.1.0/33"},
        "kubelet: want a mapping": {**doc, "kubelet": "x"},
        "want apiVersion": {**doc, "kind": "Other"},
    }
    for message, bad in cases.items():
        with pytest.raises(joinmod.JoinError, match="^" + message.replace("(", r"\(")):
            joinmod.parse_join(yaml.safe_dump(bad))
    with pytest.raises(joinmod.JoinError, match="not valid YAML"):
        joinmod.parse_join("a: [")


def _install(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["install", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _control_plane(capsys, root: Path, *extra: str) -> tuple[int, str, str]:
    return _install(capsys, "control-plane", "--root", str(root), "--advertise-address", CP_IP,
                    "--node-name", "cp1", *extra)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


def test_control_plane_then_node_from_an_issued_join_file(tmp_path, capsys):
    cp_root, node_root = tmp_path / "cp", tmp_path / "node"
    code, out, err = _control_plane(capsys, cp_root)
    assert code == 0, err
    modes = _modes(cp_root)
    assert all(mode == 0o600 for path, mode in modes.items() if path.endswith((".key", "kubeconfig", "join.yaml"))), modes
    assert modes["root/.kube/config"] == 0o600
    assert stat.S_IMODE((cp_root / "var/lib/kproxy").stat().st_mode) == 0o700
    # the admin kubeconfig points at the advertised address and holds the cluster-admin identity
    admin = yaml.safe_load((cp_root / "root/.kube/config").read_text())
    assert admin["clusters"][0]["cluster"]["server"] == f"https://{CP_IP}:6443"
    # installing again with the same inputs changes nothing
    code, out, _ = _control_plane(capsys, cp_root)
    assert code == 0 and all(line.startswith("unchanged") for line in out.splitlines()[:-1]), out

    join_file = tmp_path / "node2.yaml"
    code, _, err = _install(capsys, "issue-node", "node2", "--root", str(cp_root), "--node-ip", "10.199.0.11",
                            "--pod-cidr", "10.244.2.0/24", "--out", str(join_file))
    assert code == 0, err
    assert stat.S_IMODE(join_file.stat().st_mode) == 0o600
    join = joinmod.parse_join(join_file.read_bytes())
    assert (join.node_name, join.pod_cidr, join.server) == ("node2", "10.244.2.0/24", f"https://{CP_IP}:6443")
    cp_join = joinmod.parse_join((cp_root / "etc/kproxy/join.yaml").read_bytes())
    assert join.ca_pem == cp_join.ca_pem and join.kubelet != cp_join.kubelet
    assert "10.199.0.11" in pki_ca.serving_hosts(join.kubelet_serving.cert)

    code, out, err = _install(capsys, "node", "--root", str(node_root), "--apiserver", f"https://{CP_IP}:6443",
                              "--join-file", str(join_file), "--node-ip", "10.199.0.11", "--mode", "nftables")
    assert code == 0, err
    units = sorted(p.name for p in (node_root / "etc/systemd/system").iterdir())
    assert units == ["kproxy-agent.service", "kproxy-kubelet.service"]
    kubelet_unit = (node_root / "etc/systemd/system/kproxy-kubelet.service").read_text()
    assert "--node-name node2 " in kubelet_unit and "--pod-cidr 10.244.2.0/24 " in kubelet_unit
    assert "ExecStartPre=-" in kubelet_unit and " netns attach kproxy-node 1\n" in kubelet_unit
    assert not (node_root / "var/lib/kproxy/apiserver").exists()  # no CA key on a node
    kubeconfig = yaml.safe_load((node_root / "etc/kproxy/kubelet.kubeconfig").read_text())
    assert kubeconfig["users"][0]["name"] == "system:node:node2"

    # uninstall removes what the install wrote and nothing else
    (node_root / "etc/systemd/system/other.service").write_text("[Unit]\n")
    code, out, err = _install(capsys, "--uninstall", "--root", str(node_root))
    assert code == 0, err
    assert sorted(str(p.relative_to(node_root)) for p in node_root.rglob("*") if p.is_file()) == \
        ["etc/systemd/system/other.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_rendered_units_pass_systemd_analyze_verify(tmp_path, capsys):
    code, _, err = _control_plane(capsys, tmp_path)
    assert code == 0, err
    units = sorted(str(p) for p in (tmp_path / "etc/systemd/system").iterdir())
    assert len(units) == 3
    done = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_dry_run_writes_nothing(tmp_path, capsys):
    code, out, err = _install(capsys, "node", "--root", str(tmp_path / "n"), "--dry-run",
                              "--apiserver", f"https://{CP_IP}:6443", "--join-file", str(_write_join(tmp_path)),
                              "--node-ip", "10.199.0.11")
    assert code == 0, err
    assert not (tmp_path / "n").exists() and "would run" not in out


@pytest.mark.skipif(os.path.exists("/etc/kproxy"), reason="this machine has a kproxy install")
def test_dry_run_on_the_machine_says_what_it_would_run(tmp_path, capsys):
    """Without --root an install writes / and starts the units; --dry-run only says so."""
    code, out, err = _install(capsys, "node", "--dry-run", "--apiserver", f"https://{CP_IP}:6443",
                              "--join-file", str(_write_join(tmp_path)), "--node-ip", "10.199.0.11")
    assert code == 0, err
    assert "would write new       0644 /etc/systemd/system/kproxy-agent.service" in out
    assert out.splitlines()[-3:] == ["would run sysctl -p /etc/sysctl.d/90-kproxy.conf",
                                     "would run systemctl daemon-reload",
                                     "would run systemctl enable --now kproxy-kubelet.service kproxy-agent.service"]
    assert not os.path.exists("/etc/kproxy")


def _write_join(tmp_path: Path, **overrides) -> Path:
    path = tmp_path / "join.yaml"
    path.write_bytes(joinmod.dump_join(_join(**overrides)))
    return path


def test_bad_input_gives_one_line_and_a_nonzero_exit(tmp_path, capsys):
    root = str(tmp_path / "r")
    good = str(_write_join(tmp_path))
    api = f"https://{CP_IP}:6443"
    cases = {
        "give --apiserver": ["node", "--root", root, "--join-file", good],
        "give --join-file": ["node", "--root", root, "--apiserver", api],
        "No such file or directory": ["node", "--root", root, "--apiserver", api, "--join-file", str(tmp_path / "none")],
        "want https://HOST:PORT": ["node", "--root", root, "--apiserver", "http://x:6443", "--join-file", good],
        "is for node 'node1', not 'node9'": ["node", "--root", root, "--apiserver", api, "--join-file", good,
                                             "--node-name", "node9"],
        "--mode 'bogus'": ["node", "--root", root, "--apiserver", api, "--join-file", good, "--mode", "bogus"],
        "no control plane installed here": ["issue-node", "n2", "--root", root, "--out", str(tmp_path / "o")],
        "--advertise-address 'nope'": ["control-plane", "--root", root, "--advertise-address", "nope"],
        "give a role": ["--root", root],
    }
    unreadable = tmp_path / "unreadable.yaml"
    unreadable.write_text("apiVersion: v1\nkind: Pod\n")
    cases["want apiVersion kproxy.io/v1alpha1"] = ["node", "--root", root, "--apiserver", api,
                                                   "--join-file", str(unreadable)]
    for message, argv in cases.items():
        code, _, err = _install(capsys, *argv)
        assert code != 0 and message in err and err.count("\n") == 1, (argv, err)

    # an existing file with other content is kept unless --force
    args = ["node", "--root", root, "--apiserver", api, "--join-file", good, "--node-ip", "10.199.0.11"]
    assert _install(capsys, *args)[0] == 0
    agent = tmp_path / "r/etc/kproxy/agent.yaml"
    agent.write_text(agent.read_text() + "# an operator's edit\n")
    code, _, err = _install(capsys, *args)
    assert code != 0 and "agent.yaml exists with different content; give --force" in err and err.count("\n") == 1
    assert agent.read_text().endswith("# an operator's edit\n")
    assert _install(capsys, *args, "--force")[0] == 0
    assert not agent.read_text().endswith("# an operator's edit\n")


def test_node_install_on_the_control_plane_with_its_join_file_changes_nothing(tmp_path, capsys):
    """What a provisioner may run on the control-plane node after `install control-plane`."""
    code, _, err = _control_plane(capsys, tmp_path, "--pod-cidr", "10.244.1.0/24", "--mode", "nftables")
    assert code == 0, err
    code, out, err = _install(capsys, "node", "--root", str(tmp_path), "--apiserver", f"https://{CP_IP}:6443",
                              "--join-file", str(tmp_path / "etc/kproxy/join.yaml"), "--node-name", "cp1",
                              "--pod-cidr", "10.244.1.0/24", "--mode", "nftables", "--node-ip", CP_IP)
    assert code == 0, err
    lines = out.splitlines()[:-1]
    assert lines and all(line.startswith("unchanged") for line in lines), out


def test_control_plane_dry_run_on_a_fresh_machine_writes_nothing(tmp_path, capsys):
    code, out, err = _control_plane(capsys, tmp_path / "r", "--dry-run")
    assert code == 0, err
    assert not (tmp_path / "r").exists()
    assert "would write new       0600 " + str(tmp_path / "r/etc/kproxy/admin.kubeconfig") in out
