"""Applies a lab plan (kproxy.lab.topology) to the kernel with iproute2 and sysctl, and tears it
down: the nodes, the bridge and the client, and the namespace helpers both the lab and the
kubelet's pod networks (kproxy.kubelet.podnet) use.

Guarantees:
- everything is created inside namespaces named by the plan; the caller's namespace is never
  touched (no link, address, route or rule is added outside the plan's namespaces);
- `create_*` raise NetSetupError with the failing command's message, and leave whatever they
  created for `teardown` to remove (the caller owns cleanup);
- `teardown` and `delete_namespace` are idempotent: they kill the processes inside each namespace,
  delete it, and ignore namespaces that are already gone.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from typing import Iterable, Sequence

from kproxy.lab.topology import (
    ClientPlan, LabPlan, NodePlan, Route, node_network6_prefixlen, node_network_prefixlen,
)


class NetSetupError(RuntimeError):
    """A command that builds the lab network failed."""


def run(argv: Sequence[str], input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise NetSetupError(f"{argv[0]} not found: install iproute2") from exc
    if check and proc.returncode != 0:
        detail = "; ".join(l.strip() for l in (proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise NetSetupError(f"{' '.join(argv)}: {detail or 'exit ' + str(proc.returncode)}")
    return proc


def ip_batch(netns: str, lines: Iterable[str]) -> None:
    """Runs iproute2 commands inside `netns` in one process (`ip -n NS -batch -`)."""
    text = "\n".join(lines) + "\n"
    run(["ip", "-n", netns, "-batch", "-"], input=text)


def sysctl(netns: str, settings: dict[str, str]) -> None:
    args = [f"{k}={v}" for k, v in settings.items()]
    run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *args])


def _route_line(route: Route) -> str:
    parts = ["route", "replace", route.dest]
    if route.via:
        parts += ["via", route.via]
    if route.dev:
        parts += ["dev", route.dev]
    if route.scope_link:
        parts += ["scope", "link"]
    return " ".join(parts)


def list_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def namespace_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/run/netns", name))


def add_namespace(name: str) -> None:
    run(["ip", "netns", "add", name])
    ip_batch(name, ["link set lo up"])


def create_lab_network(plan: LabPlan) -> None:
    """Creates the net namespace with its bridge, every node, and the client."""
    add_namespace(plan.net_netns)
    _no_dad(plan, plan.net_netns)
    ip_batch(plan.net_netns, [
        f"link add {plan.bridge} type bridge",
        f"addr add {plan.gateway_ip}/{node_network_prefixlen()} dev {plan.bridge}",
        *_ip6_address(plan.gateway_ip6, plan.bridge),
        f"link set {plan.bridge} up",
    ])
    # The gateway answers ARP and pings but forwards nothing (ip_forward stays 0 here).
    for node in plan.nodes:
        _create_node(plan, node)
    _create_client(plan, plan.client)


def _attach_to_bridge(plan: LabPlan, port: str, netns: str, interface: str) -> None:
    ip_batch(plan.net_netns, [
        f"link add {port} type veth peer name {interface} netns {netns}",
        f"link set {port} master {plan.bridge}",
        f"link set {port} up",
    ])


def _no_dad(plan: LabPlan, netns: str) -> None:
    """The IPv6 addresses of links made in `netns` from now on are usable at once: no
    duplicate address detection (the lab plans every address), which would otherwise keep a
    fresh lab's link-local addresses, and so IPv6 between nodes, unusable for seconds."""
    if plan.gateway_ip6:
        sysctl(netns, {"net.ipv6.conf.default.accept_dad": "0", "net.ipv6.conf.all.accept_dad": "0"})


def _create_node(plan: LabPlan, node: NodePlan) -> None:
    add_namespace(node.netns)
    _no_dad(plan, node.netns)
    _attach_to_bridge(plan, node.bridge_port, node.netns, node.interface)
    prefix = node_network_prefixlen()
    ip_batch(node.netns, [
        f"addr add {node.ip}/{prefix} dev {node.interface}",
        *_ip6_address(node.ip6, node.interface),
        f"link set {node.interface} up",
        *(_route_line(r) for r in node.routes),
    ])
    # A node forwards between pods, other nodes and the client; rp_filter would drop the
    # asymmetric paths that masquerade-free ClusterIP traffic takes. ICMP errors are not rate
    # limited, so every request to a rejecting Service is refused rather than every other one
    # (the default limit allows about one ICMP error per second per client). No ICMP redirects:
    # a node that forwarded a not-yet-programmed ClusterIP to its gateway would otherwise teach
    # the client to bypass it for that address for good.
    sysctl(node.netns, {
        "net.ipv4.icmp_ratelimit": "0",
        "net.ipv4.conf.all.send_redirects": "0",
        "net.ipv4.conf.default.send_redirects": "0",
        f"net.ipv4.conf.{node.interface}.send_redirects": "0",
        "net.ipv4.ip_forward": "1",
        "net.ipv4.conf.all.rp_filter": "0",
        "net.ipv4.conf.default.rp_filter": "0",
        f"net.ipv4.conf.{node.interface}.rp_filter": "0",
        # IPv6 likewise: forwarding, no ICMPv6 rate limit (routes stay as planned: forwarding
        # makes the node ignore router advertisements)
        **({"net.ipv6.conf.all.forwarding": "1", "net.ipv6.icmp.ratelimit": "0"} if node.ip6 else {}),
    })


def _create_client(plan: LabPlan, client: ClientPlan) -> None:
    add_namespace(client.netns)
    _no_dad(plan, client.netns)
    _attach_to_bridge(plan, client.bridge_port, client.netns, client.interface)
    prefix = node_network_prefixlen()
    ip_batch(client.netns, [
        f"addr add {client.ip}/{prefix} dev {client.interface}",
        *_ip6_address(client.ip6, client.interface),
        f"link set {client.interface} up",
        *(_route_line(r) for r in client.routes),
    ])
    # The client keeps its routes to node 1 whatever any node says.
    sysctl(client.netns, {
        "net.ipv4.conf.all.accept_redirects": "0",
        "net.ipv4.conf.default.accept_redirects": "0",
        f"net.ipv4.conf.{client.interface}.accept_redirects": "0",
        **({"net.ipv6.conf.all.accept_redirects": "0", f"net.ipv6.conf.{client.interface}.accept_redirects": "0"}
           if client.ip6 else {}),
    })


def _ip6_address(ip6: str, interface: str) -> list[str]:
    """The `ip` line giving `interface` its IPv6 lab address (none without one); no duplicate
    address detection, so it is usable at once."""
    return [f"addr add {ip6}/{node_network6_prefixlen()} dev {interface} nodad"] if ip6 else []


def namespace_pids(name: str) -> list[int]:
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def delete_namespace(name: str, grace: float = 0.0) -> None:
    """Stops every process inside `name` (SIGTERM, then SIGKILL after `grace` seconds), then
    deletes the namespace. Does nothing if it does not exist."""
    if not namespace_exists(name):
        return
    pids = namespace_pids(name)
    if grace > 0 and pids:
        for pid in pids:
            signal_pid(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
    for pid in namespace_pids(name):
        signal_pid(pid, signal.SIGKILL)
    run(["ip", "netns", "del", name], check=False)


def lab_namespaces(plan: LabPlan, existing: Iterable[str]) -> list[str]:
    """The namespaces in `existing` that belong to the lab: its pods first (the kubelets' pods
    are named `<node namespace>-pod-...`), then nodes (any number, so a lab whose node count is
    unknown is still found), client and net."""
    pod = re.compile(rf"^{re.escape(plan.name)}-(node[0-9]+-)?pod-.+$")
    pattern = re.compile(rf"^{re.escape(plan.name)}-(node[0-9]+|client|net)$")
    mine = [n for n in existing if pattern.match(n) or pod.match(n)]
    return sorted(mine, key=lambda n: (not pod.match(n), n.endswith("-net"), n))


def teardown(plan: LabPlan) -> list[str]:
    """Deletes every namespace of the lab (pods, nodes, client, net). Returns what it deleted."""
    deleted = []
    for name in lab_namespaces(plan, list_namespaces()):
        delete_namespace(name)
        deleted.append(name)
    return deleted


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
