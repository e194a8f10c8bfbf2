"""Rendering of a node install: every file `kproxy install` writes, as data (pure).

A node runs `kproxy kubelet` and `kproxy agent` as systemd units in the machine's own network
namespace; a control plane adds `kproxy apiserver` (with its controllers and scheduler
in-process). The kubelet finds the node's namespace by a name under /run/netns, which its
unit's ExecStartPre gives to PID 1's namespace (`ip netns attach`); the `-` prefix lets a
restarted kubelet find the name already there.

Guarantees: the same inputs give byte-identical files (installing again changes nothing);
every ExecStart is the kproxy entry point with flags and config files, no shell; every path in
a file is the installed path (under `Layout.root`).
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any

import yaml

from kproxy.agent.config import API_VERSION as AGENT_CONFIG_API_VERSION
from kproxy.agent.config import KIND as AGENT_CONFIG_KIND
from kproxy.install.join import JoinConfig, dump_join, node_user
from kproxy.pki.ca import KeyPair
from kproxy.pki.kubeconfig import kubeconfig_doc

APISERVER_PORT = 6443
DEFAULT_NODE_NETNS = "kproxy-node"
PUBLIC, PRIVATE = 0o644, 0o600
UNITS = ("kproxy-apiserver.service", "kproxy-kubelet.service", "kproxy-agent.service")


@dataclass(frozen=True)
class File:
    path: str  # absolute, under the layout's root
    content: bytes
    mode: int


@dataclass(frozen=True)
class Layout:
    """Where an install lives. `root` "/" on a real node; a test's temp dir elsewhere, and then
    every path inside the files points into it too, so the rendered commands run as they are."""
    root: str = "/"
    kproxy: str = "/usr/local/bin/kproxy"  # the installed entry point
    ip: str = "/usr/bin/ip"

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *(p.lstrip("/") for p in parts))

    @property
    def etc(self) -> str:
        return self.path("etc/kproxy")

    @property
    def data(self) -> str:
        return self.path("var/lib/kproxy")

    @property
    def apiserver_data(self) -> str:
        return os.path.join(self.data, "apiserver")

    @property
    def kubelet_root(self) -> str:
        return os.path.join(self.data, "kubelet")

    @property
    def units(self) -> str:
        return self.path("etc/systemd/system")

    def unit(self, name: str) -> str:
        return os.path.join(self.units, name)

    def etc_file(self, name: str) -> str:
        return os.path.join(self.etc, name)

    @property
    def join_file(self) -> str:
        return self.etc_file("join.yaml")

    @property
    def admin_kubeconfig(self) -> str:
        return self.etc_file("admin.kubeconfig")

    @property
    def root_kubeconfig(self) -> str:
        return self.path("root/.kube/config")

    @property
    def agent_config(self) -> str:
        return self.etc_file("agent.yaml")

    @property
    def sysctl_file(self) -> str:
        return self.path("etc/sysctl.d/90-kproxy.conf")

    @property
    def directories(self) -> tuple[str, ...]:
        """Directories an install owns (uninstall removes them)."""
        return (self.etc, self.data)


@dataclass(frozen=True)
class NodeSpec:
    """One node's kubelet and agent."""
    join: JoinConfig
    node_ip: str
    pod_cidr: str
    mode: str = "iptables"
    node_netns: str = DEFAULT_NODE_NETNS


@dataclass(frozen=True)
class ControlPlaneSpec:
    advertise_address: str
    service_cidr: str
    admin: KeyPair
    ca_pem: bytes

    @property
    def server(self) -> str:
        return f"https://{host_port(self.advertise_address, APISERVER_PORT)}"


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------- systemd units

def _exec_arg(arg: str) -> str:
    """One ExecStart argument: systemd specifiers (%) and variables ($) escaped, quoted when it
    holds whitespace or quotes."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if not arg or any(c.isspace() or c in "\"'\\;" for c in arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def exec_line(argv: list[str]) -> str:
    return " ".join(_exec_arg(a) for a in argv)


def unit_text(description: str, service: list[tuple[str, str]], *, after: tuple[str, ...] = ()) -> str:
    unit = [("Description", description), ("Wants", "network-online.target"),
            ("After", " ".join(("network-online.target", *after)))]
    sections = [("Unit", unit), ("Service", service), ("Install", [("WantedBy", "multi-user.target")])]
    return "\n".join(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in items) for name, items in sections)


def _service(name: str, argv: list[str], extra: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, str]]:
    # Restart=always (as kubeadm's kubelet.service): a component that exits for any reason comes back
    return [*extra, ("ExecStart", exec_line(argv)), ("Restart", "always"), ("RestartSec", "2"),
            ("LimitNOFILE", "1048576"), ("SyslogIdentifier", name)]


def apiserver_argv(layout: Layout, cp: ControlPlaneSpec) -> list[str]:
    return [layout.kproxy, "apiserver", "--data-dir", layout.apiserver_data,
            "--bind", host_port(cp.advertise_address, APISERVER_PORT),
            "--advertise-address", cp.advertise_address, "--service-cluster-ip-range", cp.service_cidr]


def kubelet_argv(layout: Layout, node: NodeSpec) -> list[str]:
    argv = [layout.kproxy, "kubelet", "--kubeconfig", layout.etc_file("kubelet.kubeconfig"),
            "--node-name", node.join.node_name, "--netns", node.node_netns, "--pod-cidr", node.pod_cidr,
            "--node-ip", node.node_ip, "--root-dir", layout.kubelet_root]
    if node.join.kubelet_serving is not None:
        argv += ["--tls-cert-file", layout.etc_file("pki/kubelet-serving.crt"),
                 "--tls-private-key-file", layout.etc_file("pki/kubelet-serving.key")]
    else:
        argv += ["--port", "0"]
    return argv


def agent_argv(layout: Layout) -> list[str]:
    return [layout.kproxy, "agent", "--config", layout.agent_config]


def apiserver_unit(layout: Layout, cp: ControlPlaneSpec) -> str:
    return unit_text("kproxy apiserver (with its controllers and scheduler)",
                     _service("kproxy-apiserver", apiserver_argv(layout, cp)))


def kubelet_unit(layout: Layout, node: NodeSpec) -> str:
    # The pods are the kubelet's child processes: it manages their cgroups (Delegate) and
    # stops them itself on SIGTERM (KillMode=mixed: only it gets SIGTERM, the rest SIGKILL
    # if still there when it exits).
    extra = (("ExecStartPre", f"-{exec_line([layout.ip, 'netns', 'attach', node.node_netns, '1'])}"),
             ("Delegate", "yes"), ("KillMode", "mixed"), ("TimeoutStopSec", "90"))
    # after a local apiserver when there is one (ordering against an absent unit does nothing),
    # so a control plane's node files are the same as `install node` renders for it
    return unit_text("kproxy kubelet (runs the pods bound to this node)",
                     _service("kproxy-kubelet", kubelet_argv(layout, node), extra),
                     after=("kproxy-apiserver.service",))


def agent_unit(layout: Layout) -> str:
    return unit_text("kproxy agent (Service proxy: programs this node's netfilter)",
                     _service("kproxy-agent", agent_argv(layout)), after=("kproxy-kubelet.service",))


# ---------------------------------------------------------------- configs

def agent_config_doc(layout: Layout, node: NodeSpec) -> dict[str, Any]:
    return {"apiVersion": AGENT_CONFIG_API_VERSION, "kind": AGENT_CONFIG_KIND,
            "mode": node.mode, "hostnameOverride": node.join.node_name,
            "clusterCIDR": node.join.cluster_cidr, "serviceCIDR": node.join.service_cidr,
            "clientConnection": {"kubeconfig": layout.etc_file("kube-proxy.kubeconfig")}}


def _yaml(doc: dict[str, Any]) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False).encode()


def _kubeconfig(server: str, user: str, ca_pem: bytes, pair: KeyPair) -> bytes:
    return _yaml(kubeconfig_doc(server, user, ca_pem=ca_pem, client=pair))


def render_node(layout: Layout, node: NodeSpec) -> list[File]:
    """The kubelet and agent of one node: kubeconfigs, PKI, agent config, units."""
    join = node.join
    files = [
        File(layout.etc_file("pki/ca.crt"), join.ca_pem, PUBLIC),
        File(layout.etc_file("kubelet.kubeconfig"),
             _kubeconfig(join.server, node_user(join.node_name), join.ca_pem, join.kubelet), PRIVATE),
        File(layout.etc_file("kube-proxy.kubeconfig"),
             _kubeconfig(join.server, "system:kube-proxy", join.ca_pem, join.kube_proxy), PRIVATE),
    ]
    if join.kubelet_serving is not None:
        files += [File(layout.etc_file("pki/kubelet-serving.crt"), join.kubelet_serving.cert_pem, PUBLIC),
                  File(layout.etc_file("pki/kubelet-serving.key"), join.kubelet_serving.key_pem, PRIVATE)]
    files += [
        # a node forwards: NodePort and external traffic to pods, pods' traffic out
        File(layout.sysctl_file, b"net.ipv4.ip_forward = 1\n", PUBLIC),
        File(layout.agent_config, _yaml(agent_config_doc(layout, node)), PUBLIC),
        File(layout.unit("kproxy-kubelet.service"), kubelet_unit(layout, node).encode(), PUBLIC),
        File(layout.unit("kproxy-agent.service"), agent_unit(layout).encode(), PUBLIC),
    ]
    return files


def render_control_plane(layout: Layout, cp: ControlPlaneSpec, node: NodeSpec) -> list[File]:
    """The apiserver, the admin kubeconfig (also root's ~/.kube/config, as after kubeadm init),
    the join file of the control plane's own node, and that node's kubelet and agent."""
    admin = _kubeconfig(cp.server, "kubernetes-admin", cp.ca_pem, cp.admin)
    return [
        File(layout.unit("kproxy-apiserver.service"), apiserver_unit(layout, cp).encode(), PUBLIC),
        File(layout.admin_kubeconfig, admin, PRIVATE),
        File(layout.root_kubeconfig, admin, PRIVATE),
        File(layout.join_file, dump_join(node.join), PRIVATE),
        *render_node(layout, node),
    ]


def first_service_ip(service_cidr: str) -> str:
    """The kubernetes Service's ClusterIP (the apiserver's serving certificate covers it)."""
    return str(ipaddress.ip_network(service_cidr)[1])
