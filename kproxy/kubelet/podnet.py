"""A pod's network as the kubelet's process runtime makes it: a namespace behind the node
namespace on a routed veth. The pod's eth0 holds its /32 with a default route via 169.254.1.1
(a fixed gateway MAC on the node side, proxy_arp on); the node holds a /32 route to the pod
over the veth. A dual-stack pod (two pod CIDRs, one per family) also holds its /128 from the
second CIDR, with an IPv6 default route via fe80::1, the node side's link-local address.
The one home of pod networking (kproxy.lab.netsetup builds only the nodes,
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
POD_GATEWAY_IP6 = "fe80::1"
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
    secondary_ip: str = ""  # the other family's address of a dual-stack pod

    @property
    def ips(self) -> tuple[str, ...]:
        """The pod's addresses, primary first (status.podIPs)."""
        return (self.ip, self.secondary_ip) if self.secondary_ip else (self.ip,)


def pod_plan(prefix: str, pod_cidr: str, namespace: str, name: str, node: str, slot: int) -> PodPlan:
    """Pod `namespace/name` in address slot `slot` of `pod_cidr` (one CIDR, or one per family
    separated by a comma: the pod gets the same slot of each), its namespace named
    `<prefix><namespace>-<name>` (or `<prefix>slot<slot>` when that would be too long)."""
    nets = [ipaddress.ip_network(c) for c in pod_cidr.split(",")]
    net = nets[0]
    secondary = str(nets[1].network_address + slot) if len(nets) > 1 else ""
    netns = f"{prefix}{namespace}-{name}"
    if len(netns) > MAX_NETNS_NAME:
        netns = f"{prefix}slot{slot}"  # a file name under /run/netns has at most 255 bytes
    return PodPlan(name=name, namespace=namespace, node=node, slot=slot, netns=netns,
                   ip=str(net.network_address + slot), host_veth=check_ifname(f"kp{slot}"), interface="eth0",
                   secondary_ip=secondary)


def parse_pod_cidrs(text: str) -> list[str]:
    """--pod-cidr "10.244.1.0/24" or "10.244.1.0/24,fd00:10:244:1::/64" (one per family, the
    primary first): the CIDRs, or ValueError. Each needs room for a few pods; a dual-stack pod
    takes the same slot of both, so the smaller one bounds the pods (kproxy.kubelet.runtime)."""
    try:
        nets = [ipaddress.ip_network(c.strip()) for c in text.split(",")]
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if len(nets) > 2 or (len(nets) == 2 and nets[0].version == nets[1].version):
        raise ValueError(f"{text}: want one CIDR, or two of different IP families")
    for net in nets:
        if net.num_addresses < 8:
            raise ValueError(f"{net}: a network of 8 addresses or more is needed (/29, /125)")
    return [str(n) for n in nets]


def _is_v6(ip: str) -> bool:
    return ipaddress.ip_address(ip).version == 6


def attach_pod_network(pod: PodPlan, node_netns: str) -> None:
    """Creates the pod namespace and its routed veth to the node namespace `node_netns`."""
    netsetup.add_namespace(pod.netns)
    # A veth of an earlier pod in this slot may outlive that pod's namespace for a moment
    # (the kernel destroys namespaces asynchronously).
    netsetup.run(["ip", "-n", node_netns, "link", "del", pod.host_veth], check=False)
    v4 = [ip for ip in pod.ips if not _is_v6(ip)]
    v6 = [ip for ip in pod.ips if _is_v6(ip)]
    node_side = [
        f"link add {pod.host_veth} address {pod.gateway_mac} type veth peer name {pod.interface} netns {pod.netns}"]
    if v6:  # a fixed link-local gateway, usable at once (no duplicate address detection)
        node_side += [f"link set {pod.host_veth} addrgenmode none",
                      f"addr add {POD_GATEWAY_IP6}/64 dev {pod.host_veth} nodad"]
    node_side.append(f"link set {pod.host_veth} up")
    node_side += [f"route replace {ip}/32 dev {pod.host_veth} scope link" for ip in v4]
    node_side += [f"route replace {ip}/128 dev {pod.host_veth}" for ip in v6]
    netsetup.ip_batch(node_netns, node_side)
    settings = {f"net.ipv4.conf.{pod.host_veth}.proxy_arp": "1", f"net.ipv4.conf.{pod.host_veth}.rp_filter": "0"}
    if v6:  # the node routes its pods' IPv6 as the CNI plugins do
        settings["net.ipv6.conf.all.forwarding"] = "1"
    netsetup.sysctl(node_netns, settings)
    pod_side = [f"addr add {ip}/32 dev {pod.interface}" for ip in v4]
    pod_side += [f"addr add {ip}/128 dev {pod.interface} nodad" for ip in v6]
    pod_side.append(f"link set {pod.interface} up")
    if v4:
        pod_side += [
            f"route replace {pod.gateway_ip} dev {pod.interface} scope link",
            f"route replace default via {pod.gateway_ip} dev {pod.interface}",
            f"neigh replace {pod.gateway_ip} lladdr {pod.gateway_mac} dev {pod.interface} nud permanent",
        ]
    if v6:
        pod_side += [
            f"route replace default via {POD_GATEWAY_IP6} dev {pod.interface}",
            f"neigh replace {POD_GATEWAY_IP6} lladdr {pod.gateway_mac} dev {pod.interface} nud permanent",
        ]
    netsetup.ip_batch(pod.netns, pod_side)


def detach_pod_network(pod: PodPlan, node_netns: str) -> None:
    """Stops the pod's processes, deletes its veth pair (with the node's /32 route) at once,
    then its namespace. Idempotent."""
    for pid in netsetup.namespace_pids(pod.netns) if netsetup.namespace_exists(pod.netns) else []:
        netsetup.signal_pid(pid, signal.SIGKILL)
    netsetup.run(["ip", "-n", node_netns, "link", "del", pod.host_veth], check=False)
    netsetup.delete_namespace(pod.netns)
