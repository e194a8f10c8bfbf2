"""A single-node topology for kernel tests: a client namespace, a node namespace and pod
namespaces running echo servers, wired as the lab's address plan (node 1).

    client (10.200.0.2/24) --veth-- node (10.200.0.11/24, ip_forward, default via the client)
    node --routed veth (proxy_arp, /32 route)--> pod k (10.244.1.k/32, default via 169.254.1.1)

The client routes the Service CIDR 10.96.0.0/12, the pod CIDR and the test external ranges 192.0.2.0/24 and
198.51.100.0/24 via the node. Every pod runs `python -m kproxy.lab.echo` on port 8080 (TCP and
UDP), answering "<pod> <client-ip>:<client-port>". All namespaces come from tests.nsutil and are
deleted (their processes killed) when the context exits, even after a failure.

With ipv6=True the same wiring carries IPv6 too (dual-stack): client fd00:200::2/64, node
fd00:200::11/64, pod k fd00:10:244:1::k/128 (default via fe80::1, the host veth's pinned MAC),
the client routing fd00:10:96::/112, the pod range and 2001:db8::/32 via the node (the echo
server answers on both families). Each pod's `ip6` is its IPv6 address.

Use:
    with single_node(["a", "b"]) as topo:
        topo.tcp(topo.client, "10.96.0.10", 80)   -> ("a", "10.200.0.11")  (pod name, seen source)
"""
from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Iterator

from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.netns import NetNS
from tests import nsutil

CLUSTER_CIDR = "10.244.0.0/16"
CLIENT_IP = "10.200.0.2"
NODE_IP = "10.200.0.11"
POD_PORT = 8080
ROUTED_VIA_NODE = ("10.96.0.0/12", "10.244.0.0/16", "192.0.2.0/24", "198.51.100.0/24")
CLUSTER_CIDR6 = "fd00:10:244::/56"
CLIENT_IP6 = "fd00:200::2"
NODE_IP6 = "fd00:200::11"
ROUTED_VIA_NODE6 = ("fd00:10:96::/112", "fd00:10:244::/56", "2001:db8::/32")
GATEWAY6 = "fe80::1"
READY_TIMEOUT = 120.0  # a wait, not a threshold: echo servers start slowly on a loaded machine or under TCG
GATEWAY_MAC = "ee:ee:ee:ee:ee:ee"  # every host-side pod veth (as Calico does)


def ep(topo, pod: str, local: bool = True, **kw) -> Endpoint:
    """An endpoint for `pod` of the topology on POD_PORT; local ones are on node "n1"."""
    return Endpoint(topo.pods[pod].ip, POD_PORT, is_local=local, node_name="n1" if local else "n2", **kw)


def service(name: str, cluster_ip: str, endpoints=(), port: int = 80, protocol: str = "TCP", **kw) -> ServicePort:
    """A one-port ServicePort in "default" with one ClusterIP."""
    return ServicePort("default", name, "", protocol, port, cluster_ips=(cluster_ip,),
                       endpoints=tuple(sorted(endpoints)), **kw)


def state(*services: ServicePort, **kw) -> ProxyState:
    """The ProxyState of node "n1" (NODE_IP, pod CIDR CLUSTER_CIDR) holding `services`."""
    kw.setdefault("cluster_cidr", CLUSTER_CIDR)
    kw.setdefault("node_ips", (NODE_IP,))
    return ProxyState("n1", services={s.key: s for s in services}, **kw)


TRIES = 40  # P(one of 3 endpoints never chosen in 40 tries) = 3*(2/3)^40 < 1e-6


def pods_reached(topo, ns: str, ip: str, port: int, tries: int = TRIES, proto: str = "tcp") -> set[str]:
    """The pods answering `tries` new connections (tcp) or exchanges (udp) from `ns` to ip:port."""
    call = topo.tcp if proto == "tcp" else topo.udp
    return {call(ns, ip, port)[0] for _ in range(tries)}


def _ip(ns: str, *args: str) -> None:
    nsutil.run(["ip", "-n", ns, *args])


def _sysctl(ns: str, key: str, value: str) -> None:
    nsutil.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"])


@dataclass
class Pod:
    name: str
    ip: str
    netns: str
    process: subprocess.Popen
    ip6: str | None = None


@dataclass
class Topology:
    client: str
    node: str
    pods: dict[str, Pod] = field(default_factory=dict)
    _handles: dict[str, NetNS] = field(default_factory=dict)

    def ns(self, name: str) -> NetNS:
        """A NetNS handle (thread inside the namespace) for running client code there."""
        if name not in self._handles:
            self._handles[name] = NetNS(name)
        return self._handles[name]

    def tcp(self, ns: str, ip: str, port: int, timeout: float = 5.0, source: str | None = None,
            source_port: int = 0) -> tuple[str, str]:
        """One TCP exchange from namespace `ns`: (pod name, source address the pod saw).
        A fixed `source_port` can be used again at once (the socket closes with a reset, not
        TIME_WAIT). Raises ConnectionRefusedError / TimeoutError like a plain socket."""
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET

        def exchange() -> str:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                if source or source_port:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((source or ("::" if family == socket.AF_INET6 else "0.0.0.0"), source_port))
                s.connect((ip, port))
                s.sendall(b"hello\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    data += chunk
                if source_port:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return data.decode()
        return _parse_reply(self.ns(ns).run(exchange))

    def udp(self, ns: str, ip: str, port: int, timeout: float = 5.0, source_port: int = 0) -> tuple[str, str]:
        """One UDP request/answer from namespace `ns`: (pod name, source address the pod saw).
        The socket is connected, so an ICMP port unreachable raises ConnectionRefusedError."""
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET

        def exchange() -> str:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source_port))
                s.connect((ip, port))
                s.send(b"hello\n")
                return s.recv(512).decode()
        return _parse_reply(self.ns(ns).run(exchange))

    def run(self, ns: str, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return nsutil.run(["ip", "netns", "exec", ns, *argv], check=check)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


def _parse_reply(text: str) -> tuple[str, str]:
    parts = text.split()
    if len(parts) != 2:
        raise AssertionError(f"unexpected echo reply {text!r}")
    return parts[0], parts[1].rsplit(":", 1)[0]


def _wait_listening(netns: str, port: int, proc: subprocess.Popen, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    handle = NetNS(netns)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"echo server in {netns} exited with {proc.returncode}")

            def probe() -> bool:
                with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
                    s.settimeout(0.5)
                    return s.connect_ex((host, port)) == 0
            if handle.run(probe):
                return
            time.sleep(0.05)
        raise RuntimeError(f"echo server in {netns} not listening after {READY_TIMEOUT}s")
    finally:
        handle.close()


@contextlib.contextmanager
def single_node(pod_names: list[str], tag: str = "ipt", ipv6: bool = False) -> Iterator[Topology]:
    """Builds the topology with one pod per name (10.244.1.2, .3, ...; with ipv6 also
    fd00:10:244:1::2, ...); tears it all down."""
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(nsutil.netns(f"{tag}-client"))
        node = stack.enter_context(nsutil.netns(f"{tag}-node"))
        topo = Topology(client=client, node=node)
        stack.callback(topo.close)
        for ns in (client, node):  # no duplicate address detection: addresses usable at once
            _sysctl(ns, "net.ipv6.conf.all.accept_dad", "0")
            _sysctl(ns, "net.ipv6.conf.default.accept_dad", "0")
        _ip(node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", client)
        _ip(client, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        _ip(client, "link", "set", "eth0", "up")
        _ip(node, "addr", "add", f"{NODE_IP}/24", "dev", "eth0")
        _ip(node, "link", "set", "eth0", "up")
        for cidr in ROUTED_VIA_NODE:
            _ip(client, "route", "add", cidr, "via", NODE_IP)
        # A real node has a default route; without one, a packet to a Service IP that no DNAT
        # rule took gets "network unreachable" from routing before the filter REJECT can answer.
        # No ICMP redirects: forwarding back out eth0 would tell the client to route via itself,
        # and the client would then ignore the REJECT's port-unreachable.
        _ip(node, "route", "add", "default", "via", CLIENT_IP)
        _sysctl(node, "net.ipv4.conf.all.send_redirects", "0")
        _sysctl(node, "net.ipv4.conf.eth0.send_redirects", "0")
        _sysctl(node, "net.ipv4.ip_forward", "1")
        _sysctl(node, "net.ipv4.conf.all.rp_filter", "0")
        if ipv6:
            _ip(client, "-6", "addr", "add", f"{CLIENT_IP6}/64", "dev", "eth0", "nodad")
            _ip(node, "-6", "addr", "add", f"{NODE_IP6}/64", "dev", "eth0", "nodad")
            for cidr in ROUTED_VIA_NODE6:
                _ip(client, "-6", "route", "add", cidr, "via", NODE_IP6)
            _ip(node, "-6", "route", "add", "default", "via", CLIENT_IP6)
            _sysctl(node, "net.ipv6.conf.all.forwarding", "1")
            # ICMPv6 errors are rate limited per destination (1/s): a test's rejects come in bursts
            _sysctl(node, "net.ipv6.icmp.ratelimit", "0")
        for index, name in enumerate(pod_names):
            ip = f"10.244.1.{index + 2}"
            pod_ns = stack.enter_context(nsutil.netns(f"{tag}-{name}"))
            _sysctl(pod_ns, "net.ipv6.conf.default.accept_dad", "0")
            host_if = f"vp{index}"
            _ip(node, "link", "add", host_if, "address", GATEWAY_MAC, "type", "veth", "peer", "name", "eth0",
                "netns", pod_ns)
            _ip(pod_ns, "addr", "add", f"{ip}/32", "dev", "eth0")
            _ip(pod_ns, "link", "set", "eth0", "up")
            _ip(pod_ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
            _ip(pod_ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
            # the gateway is not an address of the node: pin its MAC (the host veth's) instead of ARP
            _ip(pod_ns, "neigh", "replace", "169.254.1.1", "lladdr", GATEWAY_MAC, "dev", "eth0", "nud", "permanent")
            _ip(node, "link", "set", host_if, "up")
            _sysctl(node, f"net.ipv4.conf.{host_if}.proxy_arp", "1")
            _ip(node, "route", "add", f"{ip}/32", "dev", host_if)
            proc = subprocess.Popen(
                ["ip", "netns", "exec", pod_ns, sys.executable, "-m", "kproxy.lab.echo",
                 "--name", name, "--port", str(POD_PORT)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
            stack.callback(_stop, proc)
            topo.pods[name] = Pod(name, ip, pod_ns, proc)
            if ipv6:
                topo.pods[name].ip6 = _pod_ipv6(node, pod_ns, host_if, index)
        for pod in topo.pods.values():
            _wait_listening(pod.netns, POD_PORT, pod.process)
        for pod in topo.pods.values():
            if pod.ip6 is not None:
                _wait_listening(pod.netns, POD_PORT, pod.process, "::1")
        yield topo


def _pod_ipv6(node: str, pod_ns: str, host_if: str, index: int) -> str:
    """Gives the pod its IPv6 address and routes; returns the address."""
    ip6 = f"fd00:10:244:1::{index + 2:x}"
    _ip(pod_ns, "-6", "addr", "add", f"{ip6}/128", "dev", "eth0", "nodad")
    _ip(pod_ns, "-6", "neigh", "replace", GATEWAY6, "lladdr", GATEWAY_MAC, "dev", "eth0", "nud", "permanent")
    _ip(pod_ns, "-6", "route", "add", "default", "via", GATEWAY6, "dev", "eth0")
    _ip(node, "-6", "route", "add", f"{ip6}/128", "dev", host_if)
    return ip6


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
