"""`kproxy install`: kproxy as systemd services on a Linux node.

    kproxy install control-plane [--advertise-address IP] [--service-cluster-ip-range CIDR] [--mode M]
    kproxy install node --apiserver https://IP:6443 --join-file F [--node-name N] [--pod-cidr CIDR] [--mode M]
    kproxy install issue-node N --out F [--node-ip IP] [--pod-cidr CIDR]     (on the control plane)
    kproxy install --uninstall
each with [--root DIR] [--dry-run] [--force]. --root DIR writes below DIR (paths in the files
point there too) and never runs systemctl.
"""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Callable
from urllib.parse import urlsplit

import yaml

from kproxy import modes
from kproxy.agent.automode import AUTO
from kproxy.api.names import check_dns1123_subdomain
from kproxy.cli.main import CLIError
from kproxy.install import apply
from kproxy.install.join import JoinConfig, JoinError, dump_join, issue_join, parse_join, save_credentials
from kproxy.install.render import (DEFAULT_NODE_NETNS, PRIVATE, ControlPlaneSpec, File, Layout, NodeSpec,
                                   first_service_ip, render_control_plane, render_node)
from kproxy.pki import bootstrap
from kproxy.pki import ca as pki_ca
from kproxy.pki.files import write_private

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_CONTROL_PLANE_POD_CIDR = "10.244.0.0/24"


def _common(p: argparse.ArgumentParser, sub: bool) -> None:
    # on subcommands SUPPRESS keeps a value given before the subcommand
    default = argparse.SUPPRESS if sub else None
    p.add_argument("--root", default=default, metavar="DIR",
                   help="install below DIR instead of / (files only: no systemctl)")
    p.add_argument("--dry-run", action="store_true", default=argparse.SUPPRESS if sub else False,
                   help="print what would be written and run, change nothing")
    p.add_argument("--force", action="store_true", default=argparse.SUPPRESS if sub else False,
                   help="replace existing files whose content differs")


def _node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node-name", help="this node's name (control-plane: default the host name; "
                                        "node: the join file's, which it must match)")
    p.add_argument("--pod-cidr", help="this node's pod CIDR, e.g. 10.244.1.0/24")
    p.add_argument("--node-ip", help="this node's address (default: the one it reaches the apiserver from)")
    p.add_argument("--mode", default=modes.DEFAULT, help=f"the agent's proxy mode (default {modes.DEFAULT})")
    p.add_argument("--node-netns", default=DEFAULT_NODE_NETNS, metavar="NAME",
                   help=f"name under /run/netns the kubelet finds the node's namespace by (default "
                        f"{DEFAULT_NODE_NETNS}; its unit attaches it to the machine's own)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser, sub=False)
    parser.add_argument("--uninstall", action="store_true",
                        help="stop and remove the units, /etc/kproxy and /var/lib/kproxy")
    sub = parser.add_subparsers(dest="install_command", metavar="ROLE")
    cp = sub.add_parser("control-plane", help="the apiserver (with controllers and scheduler), "
                                              "and a kubelet and agent on this node")
    cp.add_argument("--advertise-address", metavar="IP",
                    help="the address nodes reach the apiserver at (default: this machine's default-route address)")
    cp.add_argument("--service-cluster-ip-range", default=DEFAULT_SERVICE_CIDR, metavar="CIDR",
                    help=f"Service ClusterIPs (default {DEFAULT_SERVICE_CIDR})")
    cp.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR, metavar="CIDR",
                    help=f"all nodes' pod CIDRs together (default {DEFAULT_CLUSTER_CIDR})")
    _node_options(cp)
    _common(cp, sub=True)
    node = sub.add_parser("node", help="a kubelet and agent joining a control plane")
    node.add_argument("--apiserver", metavar="URL", help="the control plane, https://IP:6443")
    node.add_argument("--join-file", metavar="F", help="from `kproxy install issue-node` on the control plane")
    _node_options(node)
    _common(node, sub=True)
    issue = sub.add_parser("issue-node", help="on the control plane: write node N's join file")
    issue.add_argument("name", metavar="N", help="the node's name")
    issue.add_argument("--out", required=True, metavar="F", help="join file to write (0600; - for stdout)")
    issue.add_argument("--node-ip", action="append", default=[], metavar="IP",
                       help="the node's address, for the kubelet's serving certificate; repeatable")
    issue.add_argument("--pod-cidr", help="the node's pod CIDR, recorded in the join file")
    _common(issue, sub=True)


# ---------------------------------------------------------------- input checks

def _cidr(text: str, flag: str) -> str:
    try:
        return str(ipaddress.ip_network(text))
    except ValueError as exc:
        raise CLIError(f"{flag}: {exc}") from None


def _ip(text: str, flag: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise CLIError(f"{flag} {text!r} is not an IP address") from None


def _mode(mode: str) -> str:
    if mode not in (*modes.names(), AUTO):
        raise CLIError(f"--mode {mode!r}: want one of {', '.join((*modes.names(), AUTO))}")
    return mode


def _node_name(name: str) -> str:
    problems = check_dns1123_subdomain(name)
    if problems:
        raise CLIError(f"node name {name!r}: {problems[0]}")
    return name


def _source_address(dest: str) -> str | None:
    """The address this machine sends from toward `dest` (route lookup only, nothing is sent)."""
    out = subprocess.run(["ip", "-o", "route", "get", dest], capture_output=True, text=True).stdout.split()
    return out[out.index("src") + 1] if "src" in out else None


def _kproxy_executable() -> str:
    """The installed entry point next to this interpreter (a venv's bin), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "kproxy")
    found = beside if os.access(beside, os.X_OK) else shutil.which("kproxy")
    if not found:
        raise CLIError("cannot find the installed `kproxy` command (install kproxy with pip first)")
    return os.path.abspath(found)


def _layout(args: argparse.Namespace) -> Layout:
    root = os.path.abspath(args.root) if args.root else "/"
    return Layout(root=root, kproxy=_kproxy_executable(), ip=shutil.which("ip") or "/usr/bin/ip")


# ---------------------------------------------------------------- roles

def _node_spec(args: argparse.Namespace, join: JoinConfig, node_ip: str | None) -> NodeSpec:
    pod_cidr = args.pod_cidr or join.pod_cidr
    if not pod_cidr:
        raise CLIError("give --pod-cidr (the join file has none)")
    pod_cidr = _cidr(pod_cidr, "--pod-cidr")
    if not node_ip:
        raise CLIError("cannot tell this node's address: give --node-ip")
    return NodeSpec(join=join, node_ip=_ip(node_ip, "--node-ip"), pod_cidr=pod_cidr, mode=_mode(args.mode),
                    node_netns=args.node_netns)


def _control_plane(args: argparse.Namespace, layout: Layout) -> int:
    address = args.advertise_address or _source_address("1.1.1.1")
    if not address:
        raise CLIError("cannot tell this machine's address: give --advertise-address")
    address = _ip(address, "--advertise-address")
    service_cidr = _cidr(args.service_cluster_ip_range, "--service-cluster-ip-range")
    cluster_cidr = _cidr(args.cluster_cidr, "--cluster-cidr")
    node_name = _node_name(args.node_name or socket.gethostname())
    node_ip = _ip(args.node_ip, "--node-ip") if args.node_ip else address
    pod_cidr = args.pod_cidr or DEFAULT_CONTROL_PLANE_POD_CIDR
    hosts = bootstrap.serving_hosts_for(address, first_service_ip(service_cidr))
    with tempfile.TemporaryDirectory(prefix="kproxy-install-") as scratch:
        if args.dry_run:
            # change nothing: the existing PKI read only, or a throwaway one to render with
            pki = bootstrap.Pki(layout.apiserver_data)
            if pki.load_pair("ca") is None:
                pki = bootstrap.ensure_pki(scratch, hosts)
        else:
            os.makedirs(layout.data, mode=0o700, exist_ok=True)
            # the apiserver makes the same PKI at its first start; the node credentials need the CA now
            pki = bootstrap.ensure_pki(layout.apiserver_data, hosts)
        admin = pki.load_pair(bootstrap.ADMIN.name)
        if admin is None:
            raise CLIError(f"no {bootstrap.ADMIN.name} certificate in {pki.dir}")
        cp = ControlPlaneSpec(advertise_address=address, service_cidr=service_cidr, admin=admin,
                              ca_pem=pki.ca().cert_pem)
        join = issue_join(pki, server=cp.server, node_name=node_name, node_ips=(node_ip,),
                          cluster_cidr=cluster_cidr, service_cidr=service_cidr, pod_cidr=pod_cidr)
        args.pod_cidr = pod_cidr
        files = render_control_plane(layout, cp, _node_spec(args, join, node_ip))
        return _install(args, layout, files, after_write=lambda: save_credentials(pki, join))


def _read_join(path: str) -> JoinConfig:
    try:
        with open(path, "rb") as f:
            return parse_join(f.read())
    except OSError as exc:
        raise CLIError(f"join file {path}: {exc.strerror}") from None
    except JoinError as exc:
        raise CLIError(f"join file {path}: {exc}") from None


def _node(args: argparse.Namespace, layout: Layout) -> list[File]:
    if not args.apiserver:
        raise CLIError("give --apiserver https://IP:6443 (the control plane)")
    if not args.join_file:
        raise CLIError("give --join-file F (`kproxy install issue-node N --out F` on the control plane)")
    url = urlsplit(args.apiserver)
    if url.scheme != "https" or not url.hostname or url.path not in ("", "/"):
        raise CLIError(f"--apiserver {args.apiserver!r}: want https://HOST:PORT")
    join = _read_join(args.join_file)
    if args.node_name and args.node_name != join.node_name:
        raise CLIError(f"join file {args.join_file} is for node {join.node_name!r}, not {args.node_name!r} "
                       f"(issue one with `kproxy install issue-node {args.node_name}`)")
    join = dataclasses.replace(join, server=args.apiserver.rstrip("/"))
    node_ip = args.node_ip or _source_address(url.hostname)
    return render_node(layout, _node_spec(args, join, node_ip))


def _issue_node(args: argparse.Namespace, layout: Layout) -> int:
    own = _read_join(layout.join_file) if os.path.exists(layout.join_file) else None
    if own is None:
        raise CLIError(f"no control plane installed here ({layout.join_file} is missing)")
    name = _node_name(args.name)
    ips = tuple(_ip(ip, "--node-ip") for ip in args.node_ip)
    pod_cidr = _cidr(args.pod_cidr, "--pod-cidr") if args.pod_cidr else ""
    pki = bootstrap.Pki(layout.apiserver_data)
    try:
        join = issue_join(pki, server=own.server, node_name=name, node_ips=ips,
                          cluster_cidr=own.cluster_cidr, service_cidr=own.service_cidr, pod_cidr=pod_cidr)
    except pki_ca.PKIError as exc:
        raise CLIError(str(exc)) from None
    if args.out == "-":
        if not args.dry_run:
            save_credentials(pki, join)
        sys.stdout.write(dump_join(join).decode())
        return 0
    planned = apply.plan([File(os.path.abspath(args.out), dump_join(join), PRIVATE)])
    apply.check_conflicts(planned, args.force)
    if not args.dry_run:
        write_private(planned[0].file.path, planned[0].file.content)
        save_credentials(pki, join)
    print(f"{'would write' if args.dry_run else 'wrote'} {args.out}: join file of node {name}")
    return 0


def _install(args: argparse.Namespace, layout: Layout, files: list[File],
             after_write: Callable[[], None] = lambda: None) -> int:
    planned = apply.plan(files)
    for line in apply.describe(planned):
        print(("would write " if args.dry_run else "") + line)
    apply.check_conflicts(planned, args.force)
    units = [os.path.basename(f.path) for f in files if f.path.endswith(".service")]
    live = layout.root == "/"
    commands = [["sysctl", "-p", layout.sysctl_file], ["systemctl", "daemon-reload"],
                ["systemctl", "enable", "--now", *units]] if live else []
    if args.dry_run:
        for argv in commands:
            print("would run " + " ".join(argv))
        return 0
    apply.write_files(planned, layout)
    after_write()
    for argv in commands:
        apply.run_command(argv)
    if not live:
        print(f"files written below {layout.root}; systemctl not run (--root)")
    return 0


def run(args: argparse.Namespace) -> int:
    layout = _layout(args)
    try:
        if args.uninstall:
            if args.install_command:
                raise CLIError("--uninstall takes no role")
            if args.dry_run:
                for path in apply.removable(layout):
                    print("would remove " + path)
                return 0
            for path in apply.uninstall(layout, live=layout.root == "/"):
                print("removed " + path)
            return 0
        if args.install_command == "issue-node":
            return _issue_node(args, layout)
        if args.install_command == "control-plane":
            return _control_plane(args, layout)
        if args.install_command == "node":
            return _install(args, layout, _node(args, layout))
        raise CLIError("give a role: control-plane, node or issue-node (or --uninstall)")
    except apply.InstallError as exc:
        raise CLIError(str(exc)) from None
    except pki_ca.PKIError as exc:
        raise CLIError(str(exc)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CLIError(f"unreadable file: {exc}") from None
