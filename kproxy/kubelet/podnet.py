"""A pod's network as the kubelet's process runtime makes it: a namespace behind the node
namespace on a routed veth. The pod's eth0 holds its /32 with a default route via 169.254.1.1
(a fixed gateway MAC on the node side, proxy_arp on); the node holds a /32 route to the pod
over the veth. The one home of pod networking (kproxy.lab.netsetup builds only the nodes,
the bridge and the client).

Guarantees: everything is created inside the pod's namespace and the node namespace given;
`detach_pod_network` is idempotent.
"""
from __future__ import annotations

import ipaddress
import signal
from dataclasses import dataclass

from kproxy.lab import netsetup
from kproxy.lab.topology import check_ifname

POD_GATEWAY_IP = "169.254.1.1"
# Every node-side pod veth carries this MAC; each veth is its own link, so they never clash,
# and the pod can hold a permanent neighbour entry for its gateway.
POD_GATEWAY_MAC = "ee:ee:ee:ee:ee:ee"
MAX_NETNS_NAME = 200


@dataclass(frozen=True)
class PodPlan:
    """Where one pod lives: its namespace, address and the veth pair to its node."""

    name: str
    namespace: str  # Kubernetes namespace
    node: str  # Kubernetes Node name
    slot: int  # host part of the pod IP inside the node's pod CIDR
    netns: str
    ip: str
    host_veth: str  # inside the node namespace
    interface: str  # inside the pod namespace
    gateway_ip: str = POD_GATEWAY_IP
    gateway_mac: str = POD_GATEWAY_MAC


def pod_plan(prefix: str, pod_cidr: str, namespace: str, name: str, node: str, slot: int) -> PodPlan:
    """Pod `namespace/name` in address slot `slot` of `pod_cidr`, its namespace named
    `<prefix><namespace>-<name>` (or `<prefix>slot<slot>` when that would be too long)."""
    net = ipaddress.ip_network(pod_cidr)
    netns = f"{prefix}{namespace}-{name}"
    if len(netns) > MAX_NETNS_NAME:
        netns = f"{prefix}slot{slot}"  # a file name under /run/netns has at most 255 bytes
    return PodPlan(name=name, namespace=namespace, node=node, slot=slot, netns=netns,
                   ip=str(net.network_address + slot), host_veth=check_ifname(f"kp{slot}"), interface="eth0")


def attach_pod_network(pod: PodPlan, node_netns: str) -> None:
    """Creates the pod namespace and its routed veth to the node namespace `node_netns`."""
    netsetup.add_namespace(pod.netns)
    # A veth of an earlier pod in this slot may outlive that pod's namespace for a moment
    # (the kernel destroys namespaces asynchronously).
    netsetup.run(["ip", "-n", node_netns, "link", "del", pod.host_veth], check=False)
    netsetup.ip_batch(node_netns, [
        f"link add {pod.host_veth} address {pod.gateway_mac} type veth peer name {pod.interface} netns {pod.netns}",
        f"link set {pod.host_veth} up",
        f"route replace {pod.ip}/32 dev {pod.host_veth} scope link",
    ])
    netsetup.sysctl(node_netns, {
        f"net.ipv4.conf.{pod.host_veth}.proxy_arp": "1",
        f"net.ipv4.conf.{pod.host_veth}.rp_filter": "0",
    })
    netsetup.ip_batch(pod.netns, [
        f"addr add {pod.ip}/32 dev {pod.interface}",
        f"link set {pod.interface} up",
        f"route replace {pod.gateway_ip} dev {pod.interface} scope link",
        f"route replace default via {pod.gateway_ip} dev {pod.interface}",
        f"neigh replace {pod.gateway_ip} lladdr {pod.gateway_mac} dev {pod.interface} nud permanent",
    ])


def detach_pod_network(pod: PodPlan, node_netns: str) -> None:
    """Stops the pod's processes, deletes its veth pair (with the node's /32 route) at once,
    then its namespace. Idempotent."""
    for pid in netsetup.namespace_pids(pod.netns) if netsetup.namespace_exists(pod.netns) else []:
        netsetup.signal_pid(pid, signal.SIGKILL)
    netsetup.run(["ip", "-n", node_netns, "link", "del", pod.host_veth], check=False)
    netsetup.delete_namespace(pod.netns)
