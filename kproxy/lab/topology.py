"""The lab's address plan as pure data: namespaces, interfaces, addresses and routes.

Nothing here touches the kernel; `kproxy.lab.netsetup` applies a plan. The plan follows the
team's lab address plan:

- one "net" namespace holds the bridge that joins the nodes and the client;
- node i (1-based) is namespace "<lab>-node<i>" with eth0 = 10.200.0.(10+i)/24 on that bridge,
  pod CIDR 10.244.i.0/24, routes to every other node's pod CIDR via that node's IP, and a
  default route via the bridge's address 10.200.0.1 (a gateway that forwards nothing);
- the client namespace "<lab>-client" has eth0 = 10.200.0.2/24 and routes the Service CIDR
  via node 1;
- pods are the kubelets' (kproxy.kubelet.podnet): namespaces behind their node on routed veths,
  with addresses from the node's pod CIDR.

With `ip_family` "ipv6" or "dual" the nodes, the client and the gateway also hold an address of
fd00:10:200::/64 (node i fd00:10:200::<10+i>), node i's pods take fd00:10:244:<i>::/64 of
fd00:10:244::/56 and Services fd00:10:96::/112, with the same routes over IPv6; "ipv6" gives
pods and Services IPv6 only, "dual" both families with IPv4 first.

Guarantees: every interface name is at most 15 characters (the kernel's IFNAMSIZ - 1), every
address is inside the ranges above, and the same inputs always give the same plan.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_LAB_NAME = "kproxy-lab"
SERVICE_CIDR = "10.96.0.0/12"
CLUSTER_CIDR = "10.244.0.0/16"
NODE_NETWORK = "10.200.0.0/24"
CLIENT_IP = "10.200.0.2"
# The bridge's own address in the net namespace: every node's default gateway, as a real
# node has one. It forwards nothing, so traffic to an address nobody serves is dropped there,
# but on the node such traffic passes FORWARD, where kube-proxy's REJECT rules live.
GATEWAY_IP = "10.200.0.1"
NODE_PORT_RANGE = "30000-32767"
SERVICE_CIDR6 = "fd00:10:96::/112"
CLUSTER_CIDR6 = "fd00:10:244::/56"
NODE_NETWORK6 = "fd00:10:200::/64"
CLIENT_IP6 = "fd00:10:200::2"
GATEWAY_IP6 = "fd00:10:200::1"
IP_FAMILIES = ("ipv4", "ipv6", "dual")
BRIDGE = "br0"
MAX_NODES = 200
IFNAMSIZ = 16  # including the terminating NUL

_LAB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class PlanError(ValueError):
    """The requested lab cannot be laid out (bad name, too many nodes)."""


@dataclass(frozen=True)
class Route:
    """One `ip route` entry: destination, optional gateway, optional device."""

    dest: str
    via: str | None = None
    dev: str | None = None
    scope_link: bool = False


@dataclass(frozen=True)
class NodePlan:
    index: int  # 1-based
    name: str  # Kubernetes Node name, e.g. "node1"
    netns: str
    ip: str  # on the lab bridge
    pod_cidr: str  # one CIDR per family of the lab's pods, comma-separated, primary first
    bridge_port: str  # veth end inside the net namespace
    interface: str  # veth end inside the node namespace
    routes: tuple[Route, ...]
    ip6: str = ""  # on the lab bridge, in an ipv6 or dual lab


@dataclass(frozen=True)
class ClientPlan:
    netns: str
    ip: str
    bridge_port: str
    interface: str
    routes: tuple[Route, ...]
    ip6: str = ""


@dataclass(frozen=True)
class LabPlan:
    name: str
    net_netns: str
    bridge: str
    gateway_ip: str
    nodes: tuple[NodePlan, ...]
    client: ClientPlan
    service_cidr: str = SERVICE_CIDR  # comma-separated in a dual lab, primary first
    cluster_cidr: str = CLUSTER_CIDR  # likewise
    node_port_range: str = NODE_PORT_RANGE
    ip_family: str = "ipv4"
    gateway_ip6: str = ""

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The fixed namespaces of the lab (pods come and go and are not listed)."""
        return (self.net_netns, *(n.netns for n in self.nodes), self.client.netns)

    def node(self, name: str) -> NodePlan:
        for n in self.nodes:
            if n.name == name:
                return n
        raise PlanError(f"no node {name!r} in lab {self.name!r} (nodes: {', '.join(n.name for n in self.nodes)})")


def check_ifname(name: str) -> str:
    """Returns `name` if the kernel accepts it as an interface name, else raises PlanError."""
    if not name or len(name) > IFNAMSIZ - 1 or "/" in name or any(c.isspace() for c in name):
        raise PlanError(f"invalid interface name {name!r} (1-{IFNAMSIZ - 1} chars, no '/' or spaces)")
    return name


def node_ip(index: int) -> str:
    return str(ipaddress.ip_network(NODE_NETWORK).network_address + 10 + index)


def node_pod_cidr(index: int) -> str:
    return f"10.244.{index}.0/24"


def node_ip6(index: int) -> str:
    return f"fd00:10:200::{10 + index}"


def node_pod_cidr6(index: int) -> str:
    """Node `index`'s /64 of fd00:10:244::/56 (index < 256)."""
    return f"fd00:10:244:{index:x}::/64"


def _families(ip_family: str) -> tuple[bool, bool]:
    """(IPv4 pods and Services, IPv6 pods and Services) of a lab of `ip_family`."""
    if ip_family not in IP_FAMILIES:
        raise PlanError(f"--ip-family must be one of {', '.join(IP_FAMILIES)}, not {ip_family!r}")
    return ip_family != "ipv6", ip_family != "ipv4"


def plan_lab(name: str = DEFAULT_LAB_NAME, nodes: int = 2, ip_family: str = "ipv4") -> LabPlan:
    """The whole lab for `nodes` nodes whose pods and Services are of `ip_family` ("ipv4",
    "ipv6" or "dual"). Raises PlanError for a bad name, node count or family."""
    if not _LAB_NAME_RE.match(name):
        raise PlanError(f"invalid lab name {name!r}: lowercase letters, digits and '-', at most 40 chars")
    if not 1 <= nodes <= MAX_NODES:
        raise PlanError(f"--nodes must be between 1 and {MAX_NODES}, not {nodes}")
    v4, v6 = _families(ip_family)
    node_plans = []
    for i in range(1, nodes + 1):
        others = [j for j in range(1, nodes + 1) if j != i]
        routes = tuple(Route(dest=node_pod_cidr(j), via=node_ip(j)) for j in others if v4)
        routes += (Route(dest="default", via=GATEWAY_IP),)
        if v6:
            routes += tuple(Route(dest=node_pod_cidr6(j), via=node_ip6(j)) for j in others)
            routes += (Route(dest="::/0", via=GATEWAY_IP6),)
        node_plans.append(NodePlan(
            index=i,
            name=f"node{i}",
            netns=f"{name}-node{i}",
            ip=node_ip(i),
            pod_cidr=",".join([node_pod_cidr(i)] * v4 + [node_pod_cidr6(i)] * v6),
            bridge_port=check_ifname(f"n{i}"),
            interface="eth0",
            routes=routes,
            ip6=node_ip6(i) if v6 else "",
        ))
    service_cidrs = [SERVICE_CIDR] * v4 + [SERVICE_CIDR6] * v6
    cluster_cidrs = [CLUSTER_CIDR] * v4 + [CLUSTER_CIDR6] * v6
    client_routes = [Route(dest=SERVICE_CIDR, via=node_ip(1)), Route(dest=CLUSTER_CIDR, via=node_ip(1))] * v4
    if v6:
        client_routes += [Route(dest=SERVICE_CIDR6, via=node_ip6(1)), Route(dest=CLUSTER_CIDR6, via=node_ip6(1))]
    client = ClientPlan(
        netns=f"{name}-client",
        ip=CLIENT_IP,
        bridge_port=check_ifname("cl"),
        interface="eth0",
        routes=tuple(client_routes),
        ip6=CLIENT_IP6 if v6 else "",
    )
    return LabPlan(
        name=name,
        net_netns=f"{name}-net",
        bridge=BRIDGE,
        gateway_ip=GATEWAY_IP,
        nodes=tuple(node_plans),
        client=client,
        service_cidr=",".join(service_cidrs),
        cluster_cidr=",".join(cluster_cidrs),
        ip_family=ip_family,
        gateway_ip6=GATEWAY_IP6 if v6 else "",
    )


def node_network_prefixlen() -> int:
    return ipaddress.ip_network(NODE_NETWORK).prefixlen


def node_network6_prefixlen() -> int:
    return ipaddress.ip_network(NODE_NETWORK6).prefixlen
