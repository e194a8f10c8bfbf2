"""`kproxy kubelet --kubeconfig F --node-name N --netns NODE_NS --pod-cidr CIDR`: a node agent
that registers node N and runs the pods bound to it as processes in pod namespaces behind the
node namespace NODE_NS."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import subprocess

from kproxy.cli.service import run_with_client
from kproxy.api.resources import SERVICES
from kproxy.cli.main import CLIError
from kproxy.client.events import EventRecorder
from kproxy.client.informer import Informer
from kproxy.client.rest import ApiClient
from kproxy.controllers.cli import parse_duration
from kproxy.kubelet.cgroups import Cgroups
from kproxy.kubelet.node import DEFAULT_MAX_PODS, machine_facts
from kproxy.kubelet.podworker import NodeContext
from kproxy.kubelet.runtime import PodNetworks
from kproxy.netns import NetNS, NetNSError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the apiserver")
    parser.add_argument("--context", help="kubeconfig context (default: current-context)")
    parser.add_argument("--node-name", required=True, help="name of the Node to register")
    parser.add_argument("--netns", required=True, metavar="NODE_NS",
                        help="the node's network namespace: pods get veths into it (it must exist)")
    parser.add_argument("--pod-cidr", required=True, help="the node's pod CIDR, e.g. 10.244.1.0/24")
    parser.add_argument("--runtime", choices=["process"], default="process",
                        help="how containers run (process: commands of this machine in a pod namespace)")
    parser.add_argument("--node-ip", help="the node's InternalIP (default: the first global IPv4 of NODE_NS)")
    parser.add_argument("--root-dir", default="/var/lib/kproxy-kubelet", help="per-pod files and logs")
    parser.add_argument("--pod-netns-prefix", help="prefix of pod namespace names (default: NODE_NS-pod-)")
    parser.add_argument("--cpu", help="cpu capacity (default: this machine's CPUs)")
    parser.add_argument("--memory", help="memory capacity, a quantity (default: this machine's MemTotal)")
    parser.add_argument("--max-pods", type=int, default=DEFAULT_MAX_PODS, help="pods capacity (default 110)")
    parser.add_argument("--node-status-update-frequency", type=parse_duration, default=60.0, metavar="DURATION",
                        help="how often the node status is written (default 60s; the Lease every 10s)")
    parser.add_argument("--crash-loop-backoff", type=parse_duration, default=10.0, metavar="DURATION",
                        help="first CrashLoopBackOff wait (default 10s, doubling up to 30x that)")


def first_ipv4(netns: str) -> str | None:
    """The first global IPv4 address inside `netns`."""
    out = subprocess.run(["ip", "-n", netns, "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            return parts[parts.index("inet") + 1].split("/")[0]
    return None


def _context(args: argparse.Namespace, client: ApiClient) -> tuple[NodeContext, str]:
    try:
        net = ipaddress.ip_network(args.pod_cidr)
    except ValueError as exc:
        raise CLIError(f"--pod-cidr: {exc}") from None
    if net.version != 4 or net.prefixlen > 29:
        raise CLIError(f"--pod-cidr {args.pod_cidr}: an IPv4 network of /29 or larger is needed")
    try:
        node_ns = NetNS(args.netns)
    except NetNSError as exc:
        raise CLIError(str(exc)) from None
    host_ip = args.node_ip or first_ipv4(args.netns)
    if not host_ip:
        raise CLIError(f"no IPv4 address in namespace {args.netns}: give --node-ip")
    os.makedirs(args.root_dir, exist_ok=True)
    cgroups, cgroups_note = Cgroups.detect(args.root_dir)
    networks = PodNetworks(args.netns, str(net), args.pod_netns_prefix or f"{args.netns}-pod-")
    ctx = NodeContext(client=client, node_name=args.node_name, host_ip=host_ip, node_ns=node_ns,
                      networks=networks, root_dir=args.root_dir, services=Informer(client, SERVICES),
                      backoff_initial=args.crash_loop_backoff, backoff_max=30 * args.crash_loop_backoff,
                      events=EventRecorder(client, "kubelet", args.node_name), cgroups=cgroups,
                      cgroups_note=cgroups_note)
    return ctx, host_ip


async def _main(args: argparse.Namespace, client: ApiClient, stop: asyncio.Event) -> None:
    from kproxy.kubelet.kubelet import Kubelet

    ctx, host_ip = _context(args, client)
    facts = machine_facts(args.node_name, host_ip, str(ipaddress.ip_network(args.pod_cidr)), args.root_dir,
                          cpu=args.cpu, memory=args.memory, pods=args.max_pods)
    try:
        await Kubelet(ctx, facts, status_interval=args.node_status_update_frequency).run(stop)
    finally:
        ctx.node_ns.close()


def run(args: argparse.Namespace) -> int:
    if args.max_pods < 1:
        raise CLIError("--max-pods must be at least 1")
    return run_with_client(args, lambda client, stop: _main(args, client, stop))
