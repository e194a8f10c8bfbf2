"""`kproxy kubelet --kubeconfig F --node-name N --netns NODE_NS --pod-cidr CIDR`: a node agent
that registers node N and runs the pods bound to it as processes in pod namespaces behind the
node namespace NODE_NS, or with `--runtime containerd` as containers through CRI."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import ssl
import subprocess
import time
from typing import TYPE_CHECKING

from kproxy.cli.service import run_with_client
from kproxy.api.resources import SERVICES
from kproxy.cli.main import CLIError
from kproxy.client.events import EventRecorder
from kproxy.client.informer import Informer
from kproxy.client.kubeconfig import KubeconfigError, load_kubeconfig
from kproxy.client.rest import ApiClient
from kproxy.controllers.cli import parse_duration
from kproxy.kubelet.cgroups import Cgroups
from kproxy.kubelet.node import DEFAULT_MAX_PODS, machine_facts
from kproxy.kubelet.podnet import parse_pod_cidrs
from kproxy.kubelet.podworker import NodeContext
from kproxy.kubelet.runtime import PodNetworks
from kproxy.kubelet.server import DEFAULT_PORT, KubeletServer
from kproxy.netns import NetNS, NetNSError

if TYPE_CHECKING:
    from kproxy.containerd.daemon import Containerd
    from kproxy.kubelet.runtimeapi import CriPodRuntime

log = logging.getLogger(__name__)

# kubelet renews its Lease every quarter of the lease duration (nodeLeaseRenewIntervalFraction)
LEASE_RENEW_FRACTION = 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the apiserver")
    parser.add_argument("--context", help="kubeconfig context (default: current-context)")
    parser.add_argument("--node-name", required=True, help="name of the Node to register")
    parser.add_argument("--netns", required=True, metavar="NODE_NS",
                        help="the node's network namespace: pods get veths into it (it must exist)")
    parser.add_argument("--pod-cidr", required=True,
                        help="the node's pod CIDR, e.g. 10.244.1.0/24, or one per IP family separated by a "
                             "comma for dual-stack pods (10.244.1.0/24,fd00:10:244:1::/64; the first is primary)")
    parser.add_argument("--runtime", choices=["process", "containerd"], default="process",
                        help="process: pods as processes in pod namespaces (default); containerd: pods as "
                             "containers through CRI (kproxy.kubelet.criruntime)")
    parser.add_argument("--containerd-socket", metavar="PATH",
                        help="with --runtime containerd: the CRI socket of a running containerd (default: start "
                             "one of this node's own under ROOT_DIR/containerd, in NODE_NS, with the CNI config "
                             "for the first --pod-cidr)")
    parser.add_argument("--node-ip", help="the node's InternalIP, or one per family separated by a comma "
                                          "(default: the first global address of NODE_NS of each pod CIDR's family)")
    parser.add_argument("--root-dir", default="/var/lib/kproxy-kubelet", help="per-pod files and logs")
    parser.add_argument("--pod-netns-prefix", help="prefix of pod namespace names (default: NODE_NS-pod-)")
    parser.add_argument("--cpu", help="cpu capacity (default: this machine's CPUs)")
    parser.add_argument("--memory", help="memory capacity, a quantity (default: this machine's MemTotal)")
    parser.add_argument("--max-pods", type=int, default=DEFAULT_MAX_PODS, help="pods capacity (default 110)")
    parser.add_argument("--node-status-update-frequency", type=parse_duration, default=60.0, metavar="DURATION",
                        help="how often the node status is written (default 60s; the Lease every 10s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port of the kubelet's HTTPS server (logs, exec) on the node IP in NODE_NS (0: off)")
    parser.add_argument("--address", help="address the kubelet's server listens on (default: the node IP)")
    parser.add_argument("--tls-cert-file", help="the server's certificate (`kproxy pki kubelet-serving`); "
                                                "without it the server is off")
    parser.add_argument("--tls-private-key-file", help="the server certificate's key")
    parser.add_argument("--client-ca-file", help="CA of the client certificates accepted (default: the "
                                                 "kubeconfig's CA, the cluster CA)")
    parser.add_argument("--node-lease-duration-seconds", type=int, default=40, metavar="N",
                        help="the Node Lease's duration; it is renewed every quarter of it (default 40, "
                             "as kubelet's nodeLeaseDurationSeconds)")
    parser.add_argument("--crash-loop-backoff", type=parse_duration, default=10.0, metavar="DURATION",
                        help="first CrashLoopBackOff wait (default 10s, doubling up to 30x that)")


def first_address(netns: str, version: int) -> str | None:
    """The first global address of IP `version` inside `netns`."""
    word = "inet" if version == 4 else "inet6"
    out = subprocess.run(["ip", "-n", netns, f"-{version}", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if word in parts:
            return parts[parts.index(word) + 1].split("/")[0]
    return None


def node_ips(netns: str, pod_cidrs: list[str], given: str | None) -> list[str]:
    """The node's InternalIPs, primary first: --node-ip's, else the namespace's first global
    address of each pod CIDR's family (families without one are left out)."""
    if given:
        return [ip.strip() for ip in given.split(",")]
    found = [first_address(netns, ipaddress.ip_network(c).version) for c in pod_cidrs]
    return [ip for ip in found if ip]


def _context(args: argparse.Namespace, client: ApiClient) -> tuple[NodeContext, str]:
    try:
        pod_cidrs = parse_pod_cidrs(args.pod_cidr)
    except ValueError as exc:
        raise CLIError(f"--pod-cidr: {exc}") from None
    try:
        node_ns = NetNS(args.netns)
    except NetNSError as exc:
        raise CLIError(str(exc)) from None
    ips = node_ips(args.netns, pod_cidrs, args.node_ip)
    if not ips:
        raise CLIError(f"no global address in namespace {args.netns}: give --node-ip")
    host_ip = ips[0]
    os.makedirs(args.root_dir, exist_ok=True)
    cgroups, cgroups_note = Cgroups.detect(args.root_dir)
    networks = PodNetworks(args.netns, ",".join(pod_cidrs), args.pod_netns_prefix or f"{args.netns}-pod-")
    ctx = NodeContext(client=client, node_name=args.node_name, host_ip=host_ip, node_ns=node_ns,
                      networks=networks, root_dir=args.root_dir, services=Informer(client, SERVICES),
                      backoff_initial=args.crash_loop_backoff, backoff_max=30 * args.crash_loop_backoff,
                      events=EventRecorder(client, "kubelet", args.node_name), cgroups=cgroups,
                      cgroups_note=cgroups_note)
    return ctx, ",".join(ips)


def _server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The kubelet server's TLS context, None when it is not served (no --port or certificate)."""
    if not args.port:
        return None
    if not args.tls_cert_file:
        log.warning("kubelet server off: no --tls-cert-file (kubectl logs/exec need it)")
        return None
    try:
        if args.client_ca_file:
            with open(args.client_ca_file, "rb") as f:
                client_ca = f.read()
        else:
            cluster = load_kubeconfig(args.kubeconfig, args.context)
            client_ca = cluster.certificate_authority_data or b""
            if not client_ca and cluster.certificate_authority:
                with open(cluster.certificate_authority, "rb") as f:
                    client_ca = f.read()
        if not client_ca:
            raise CLIError("the kubeconfig has no CA: give --client-ca-file for the kubelet server")
        return KubeletServer.tls_context(args.tls_cert_file, args.tls_private_key_file or args.tls_cert_file,
                                         client_ca)
    except (OSError, ssl.SSLError, KubeconfigError) as exc:
        raise CLIError(f"kubelet server TLS: {exc}") from None


async def _main(args: argparse.Namespace, client: ApiClient, stop: asyncio.Event) -> None:
    from kproxy.kubelet.kubelet import Kubelet

    ctx, internal_ips = _context(args, client)
    host_ip = ctx.host_ip
    tls = _server_tls(args)
    daemon = None
    if args.runtime == "containerd":
        ctx.cri, daemon = await _cri_runtime(args, host_ip)
        ctx.cgroups, ctx.cgroups_note = None, "limits go through the container runtime"
    facts = machine_facts(args.node_name, internal_ips, ",".join(parse_pod_cidrs(args.pod_cidr)), args.root_dir,
                          cpu=args.cpu, memory=args.memory, pods=args.max_pods,
                          kubelet_port=args.port if tls else 0, netns=args.netns)
    kubelet = Kubelet(ctx, facts, status_interval=args.node_status_update_frequency,
                      lease_duration=args.node_lease_duration_seconds,
                      lease_interval=args.node_lease_duration_seconds * LEASE_RENEW_FRACTION)
    server = KubeletServer(kubelet.pod, args.root_dir, tls) if tls else None
    try:
        if server is not None:
            try:
                await server.start(ctx.node_ns, args.address or host_ip, args.port)
            except OSError as exc:
                raise CLIError(f"kubelet server: cannot listen on {args.address or host_ip}:{args.port}: "
                               f"{exc.strerror or exc}") from None
        await kubelet.run(stop)
    finally:
        if server is not None:
            await server.stop()
        if ctx.cri is not None:
            await ctx.cri.close()
        if daemon is not None:
            await asyncio.to_thread(daemon.stop)
        ctx.node_ns.close()


async def _cri_runtime(args: argparse.Namespace, host_ip: str) -> "tuple[CriPodRuntime, Containerd | None]":
    """The CRI runtime, and the containerd this kubelet started (None with --containerd-socket)."""
    from kproxy.containerd.cri import CriClient, CriError
    from kproxy.containerd.daemon import Containerd, ContainerdError
    from kproxy.kubelet.criruntime import CriRuntime

    daemon = None
    socket = args.containerd_socket
    if not socket:
        # the CNI network is the primary (first) pod CIDR's: the CRI runtime runs single-stack pods
        daemon = Containerd(os.path.join(args.root_dir, "containerd"), args.netns, parse_pod_cidrs(args.pod_cidr)[0])
        try:
            await asyncio.to_thread(daemon.start)
        except (ContainerdError, OSError) as exc:
            raise CLIError(f"--runtime containerd: {exc}") from None
        socket = daemon.socket
    client = CriClient(socket)
    try:
        version = await asyncio.to_thread(client.wait_ready, time.monotonic() + 30)
    except CriError as exc:
        client.close()
        if daemon is not None:
            daemon.stop()
        raise CLIError(f"--runtime containerd: no CRI at {socket}: {exc}") from None
    log.info("container runtime: %s %s (CRI %s) at %s", version.runtime_name, version.runtime_version,
             version.runtime_api_version, socket)
    return CriRuntime(client, args.node_name, args.root_dir, host_ip, args.netns), daemon


def run(args: argparse.Namespace) -> int:
    if args.node_lease_duration_seconds < 1:
        raise CLIError("--node-lease-duration-seconds must be at least 1")
    if args.max_pods < 1:
        raise CLIError("--max-pods must be at least 1")
    if not 0 <= args.port < 65536:
        raise CLIError(f"--port {args.port}: not a port number")
    return run_with_client(args, lambda client, stop: _main(args, client, stop))
