"""A fixed set of ServicePorts covering every feature of the iptables model, used by the golden
test and the tracer table. Node "node-1" (10.200.0.11) with pod CIDR 10.244.1.0/24 inside cluster
CIDR 10.244.0.0/16; endpoints in 10.244.2.0/24 live on another node."""
from __future__ import annotations

from kproxy.agent.state import Endpoint, ProxyState, ServicePort

NODE_IP = "10.200.0.11"
CLUSTER_CIDR = "10.244.0.0/16"
LOCAL_POD = "10.244.1.99"  # a pod on this node that is no endpoint
EXTERNAL_CLIENT = "10.200.0.2"


def local(ip: str, port: int = 8080, **kw) -> Endpoint:
    return Endpoint(ip, port, node_name="node-1", is_local=True, **kw)


def remote(ip: str, port: int = 8080, **kw) -> Endpoint:
    return Endpoint(ip, port, node_name="node-2", is_local=False, **kw)


def sp(name: str, port: int, cluster_ip: str, endpoints=(), *, namespace="default", port_name="",
       protocol="TCP", **kw) -> ServicePort:
    return ServicePort(namespace=namespace, name=name, port_name=port_name, protocol=protocol, port=port,
                       cluster_ips=(cluster_ip,), endpoints=tuple(sorted(endpoints)), **kw)


SERVICES = [
    sp("web", 80, "10.96.0.10", [local("10.244.1.2"), local("10.244.1.3"), remote("10.244.2.2")],
       port_name="http"),
    sp("multi", 80, "10.96.0.11", [local("10.244.1.6"), remote("10.244.2.6")], port_name="http"),
    sp("multi", 443, "10.96.0.11", [local("10.244.1.6", 8443), remote("10.244.2.6", 8443)], port_name="https"),
    sp("dns", 53, "10.96.0.53", [local("10.244.1.53", 53), remote("10.244.2.53", 53)],
       namespace="kube-system", port_name="dns", protocol="UDP"),
    sp("nodeport", 80, "10.96.0.20", [local("10.244.1.7"), remote("10.244.2.7")], node_port=30080),
    sp("etp-local", 80, "10.96.0.21", [local("10.244.1.4"), remote("10.244.2.4")], node_port=30081,
       external_ips=("192.0.2.10",), external_policy_local=True, health_check_node_port=32001),
    sp("etp-local-none", 80, "10.96.0.26", [remote("10.244.2.8")], node_port=30082,
       external_policy_local=True, health_check_node_port=32002),
    sp("itp-local", 80, "10.96.0.22", [local("10.244.1.5"), remote("10.244.2.5")], internal_policy_local=True),
    sp("itp-local-none", 80, "10.96.0.27", [remote("10.244.2.9")], internal_policy_local=True),
    sp("affinity", 80, "10.96.0.23", [local("10.244.1.8"), remote("10.244.2.10")],
       session_affinity_timeout=10800),
    sp("empty", 80, "10.96.0.24", [], node_port=30083, external_ips=("192.0.2.11",)),
    sp("lb", 80, "10.96.0.25", [local("10.244.1.10"), remote("10.244.2.11")], node_port=30084,
       load_balancer_ips=("198.51.100.10",), load_balancer_source_ranges=("203.0.113.0/24",)),
    sp("terminating", 80, "10.96.0.28", [local("10.244.1.11", ready=False, serving=True, terminating=True),
                                         remote("10.244.2.12", ready=False, serving=False, terminating=True)]),
    sp("notready", 80, "10.96.0.29", [local("10.244.1.12", ready=False, serving=False)]),
]


def state(services=SERVICES, **kw) -> ProxyState:
    kw.setdefault("node_ips", (NODE_IP,))
    kw.setdefault("cluster_cidr", CLUSTER_CIDR)
    return ProxyState(node_name="node-1", services={s.key: s for s in services}, **kw)


# ------------------------------------------------------------------ the same Services dual-stack

NODE_IP6 = "fd00:200::11"
CLUSTER_CIDR6 = "fd00:10:244::/56"
_V6_PREFIXES = (("10.96.0.", "fd00:10:96::"), ("10.244.", "fd00:10:244:"), ("192.0.2.", "2001:db8::"),
                ("198.51.100.", "2001:db8:100::"), ("10.200.0.", "fd00:200::"))


def to_ipv6(address: str) -> str:
    """The IPv6 twin of one of this fixture's IPv4 addresses (10.244.1.2 -> fd00:10:244:1::2)."""
    if address == "203.0.113.0/24":
        return "2001:db8:113::/64"
    for v4, v6 in _V6_PREFIXES:
        if address.startswith(v4):
            rest = address[len(v4):]
            return v6 + (rest.replace(".", "::", 1) if v4 == "10.244." else rest)
    raise ValueError(address)


def dual_stack(s: ServicePort) -> ServicePort:
    """`s` with an IPv6 twin of each of its addresses and endpoints added after the IPv4 ones."""
    from dataclasses import replace

    both = lambda values: tuple(values) + tuple(map(to_ipv6, values))  # noqa: E731
    return replace(s, cluster_ips=both(s.cluster_ips), external_ips=both(s.external_ips),
                   load_balancer_ips=both(s.load_balancer_ips),
                   load_balancer_source_ranges=both(s.load_balancer_source_ranges),
                   endpoints=tuple(sorted(s.endpoints + tuple(replace(e, ip=to_ipv6(e.ip)) for e in s.endpoints))))


def dual_stack_state(**kw) -> ProxyState:
    """state() of every Service dual-stack, the node with both families' addresses and CIDRs."""
    kw.setdefault("node_ips", (NODE_IP, NODE_IP6))
    kw.setdefault("cluster_cidr", f"{CLUSTER_CIDR},{CLUSTER_CIDR6}")
    return state([dual_stack(s) for s in SERVICES], **kw)
