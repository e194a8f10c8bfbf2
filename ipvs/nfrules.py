"""Pure text for the small netfilter part of IPVS mode: ipset restore and iptables-restore input.

IPVS itself only load-balances; these rules do what it cannot:
- nat KUBE-IPVS-SERVICES (from PREROUTING and OUTPUT) marks for masquerade the traffic to a
  ClusterIP from outside the cluster CIDR (all of it with masquerade_all), to external/LB IPs
  and to NodePorts under the Cluster policy (Local-policy NodePorts keep the client address);
- nat KUBE-IPVS-POSTROUTING masquerades marked packets and hairpin traffic (a pod reaching
  itself through a Service: ipset KUBE-IPVS-LOOP-BACK, dst,dst,src);
- filter KUBE-IPVS-FILTER (from INPUT and OUTPUT) REJECTs virtual servers without endpoints
  (filter runs before IPVS on INPUT, so the client gets a port unreachable, as kube-proxy) and
  DROPs external traffic a Local policy leaves without a local endpoint.
The ipset members are rewritten through a temporary set and `swap`, so a reader never sees a
half-filled set. Guarantee: the same plan always gives the same text.
"""
from __future__ import annotations

from .model import NetfilterPlan

PREFIX = "KUBE-IPVS-"
NAT_SERVICES = "KUBE-IPVS-SERVICES"
NAT_NODE_PORT = "KUBE-IPVS-NODE-PORT"
NAT_POSTROUTING = "KUBE-IPVS-POSTROUTING"
FILTER_CHAIN = "KUBE-IPVS-FILTER"
NAT_CHAINS = (NAT_SERVICES, NAT_NODE_PORT, NAT_POSTROUTING)
FILTER_CHAINS = (FILTER_CHAIN,)

SET_CLUSTER_IP = "KUBE-IPVS-CLUSTER-IP"
SET_EXTERNAL_IP = "KUBE-IPVS-EXTERNAL-IP"
SET_LOOP_BACK = "KUBE-IPVS-LOOP-BACK"
SET_NO_ENDPOINTS = "KUBE-IPVS-NO-ENDPOINTS"
SET_NO_LOCAL = "KUBE-IPVS-NO-LOCAL"
SET_OWNERS = "KUBE-IPVS-OWNERS"  # no rule uses it: "kind ns/name:port" comments for `kproxy rules`
PROTOCOLS = ("TCP", "UDP", "SCTP")


def node_port_set(proto: str, local: bool) -> str:
    return f"KUBE-IPVS-NP{'-LOCAL' if local else ''}-{proto}"


def ipset_types() -> dict[str, str]:
    """Every set we own -> its `ipset create` type and options."""
    sets = {
        SET_CLUSTER_IP: "hash:ip,port family inet hashsize 1024 maxelem 1048576",
        SET_EXTERNAL_IP: "hash:ip,port family inet hashsize 1024 maxelem 1048576",
        SET_NO_ENDPOINTS: "hash:ip,port family inet hashsize 1024 maxelem 1048576",
        SET_NO_LOCAL: "hash:ip,port family inet hashsize 1024 maxelem 1048576",
        SET_LOOP_BACK: "hash:ip,port,ip family inet hashsize 1024 maxelem 1048576",
        SET_OWNERS: "hash:ip,port family inet hashsize 1024 maxelem 1048576 comment",
    }
    for proto in PROTOCOLS:
        for local in (False, True):
            sets[node_port_set(proto, local)] = "bitmap:port range 0-65535"
    return sets


def _sized(kind: str, members: int) -> str:
    """A hash set's options with a hashsize fitting `members` (filling a set that starts at
    1024 buckets rehashes it again and again: measured 0.46 s vs 0.26 s for 12k members).
    The filled twin is swapped in, so the live set takes this size too."""
    if "hashsize 1024" not in kind:
        return kind
    size = 1024
    while size < members:
        size *= 2
    return kind.replace("hashsize 1024", f"hashsize {size}")


def ipset_members(plan: NetfilterPlan) -> dict[str, list[str]]:
    """Set name -> sorted member texts in `ipset add` syntax."""
    ipp = lambda items: sorted(f"{ip},{proto.lower()}:{port}" for ip, proto, port in items)  # noqa: E731
    members = {
        SET_CLUSTER_IP: ipp(plan.cluster_ips),
        SET_EXTERNAL_IP: ipp(plan.external_ips),
        SET_NO_ENDPOINTS: ipp(plan.no_endpoints),
        SET_NO_LOCAL: ipp(plan.no_local),
        SET_LOOP_BACK: sorted(f"{ip},{proto.lower()}:{port},{ip}" for ip, proto, port in plan.loopback),
        SET_OWNERS: sorted(f'{ip},{proto.lower()}:{port} comment "{kind} {owner}"'
                           for ip, proto, port, kind, owner in plan.owners),
    }
    for proto in PROTOCOLS:
        members[node_port_set(proto, False)] = sorted(str(p) for pr, p in plan.node_ports if pr == proto)
        members[node_port_set(proto, True)] = sorted(str(p) for pr, p in plan.local_node_ports if pr == proto)
    return members


def ipset_restore(plan: NetfilterPlan, changed: set[str] | None = None) -> str:
    """`ipset restore` input making every set (or only those in `changed`) hold the plan's
    members: create -exist, fill a temporary twin, swap, destroy the twin."""
    types = ipset_types()
    out: list[str] = []
    for name, members in ipset_members(plan).items():
        if changed is not None and name not in changed:
            continue
        tmp = name[:24] + "-TMP"
        out.append(f"create {name} {types[name]} -exist")
        out.append(f"create {tmp} {_sized(types[name], len(members))} -exist")
        out.append(f"flush {tmp}")
        out.extend(f"add {tmp} {m}" for m in members)
        out.append(f"swap {tmp} {name}")
        out.append(f"destroy {tmp}")
    return "\n".join(out) + "\n" if out else ""


def ipset_delta(old: NetfilterPlan, new: NetfilterPlan) -> str:
    """`ipset restore` input turning the sets of `old` into those of `new` member by member
    (for a partial sync: O(changed members), where ipset_restore rewrites whole sets)."""
    before, after = ipset_members(old), ipset_members(new)
    out: list[str] = []
    for name, members in after.items():
        was = set(before.get(name, ()))
        now = set(members)
        out.extend(f"del {name} {m.split(' comment ', 1)[0]} -exist" for m in sorted(was - now))
        out.extend(f"add {name} {m} -exist" for m in sorted(now - was))
    return "\n".join(out) + "\n" if out else ""


def changed_sets(old: NetfilterPlan | None, new: NetfilterPlan) -> set[str]:
    new_members = ipset_members(new)
    if old is None:
        return set(new_members)
    old_members = ipset_members(old)
    return {name for name, members in new_members.items() if old_members.get(name) != members}


def mark(plan: NetfilterPlan) -> str:
    return hex(1 << plan.masquerade_bit)


def restore_text(plan: NetfilterPlan) -> str:
    """iptables-restore --noflush input rewriting every chain we own (declaring a chain flushes it)."""
    m = mark(plan)
    to_mark = f"-j MARK --or-mark {m}"
    nat = [f":{c} - [0:0]" for c in NAT_CHAINS]
    if plan.masquerade_all or plan.cluster_cidr is None:
        nat.append(f"-A {NAT_SERVICES} -m set --match-set {SET_CLUSTER_IP} dst,dst {to_mark}")
    else:
        nat.append(f"-A {NAT_SERVICES} ! -s {plan.cluster_cidr} -m set --match-set {SET_CLUSTER_IP} dst,dst {to_mark}")
    nat.append(f"-A {NAT_SERVICES} -m set --match-set {SET_EXTERNAL_IP} dst,dst {to_mark}")
    nat.append(f"-A {NAT_SERVICES} -m addrtype --dst-type LOCAL -j {NAT_NODE_PORT}")
    for proto in PROTOCOLS:
        p = proto.lower()
        nat.append(f"-A {NAT_NODE_PORT} -p {p} -m set --match-set {node_port_set(proto, True)} dst -j RETURN")
        nat.append(f"-A {NAT_NODE_PORT} -p {p} -m set --match-set {node_port_set(proto, False)} dst {to_mark}")
    nat.append(f"-A {NAT_POSTROUTING} -m mark --mark {m}/{m} -j MASQUERADE")
    nat.append(f"-A {NAT_POSTROUTING} -m set --match-set {SET_LOOP_BACK} dst,dst,src -j MASQUERADE")
    filt = [f":{FILTER_CHAIN} - [0:0]",
            f"-A {FILTER_CHAIN} -m set --match-set {SET_NO_ENDPOINTS} dst,dst -j REJECT --reject-with icmp-port-unreachable",
            f"-A {FILTER_CHAIN} -m set --match-set {SET_NO_LOCAL} dst,dst -j DROP"]
    return "\n".join(["*filter", *filt, "COMMIT", "*nat", *nat, "COMMIT"]) + "\n"


# (table, built-in chain, our chain): the jumps a full sync inserts when missing.
JUMPS = (
    ("nat", "PREROUTING", NAT_SERVICES),
    ("nat", "OUTPUT", NAT_SERVICES),
    ("nat", "POSTROUTING", NAT_POSTROUTING),
    ("filter", "INPUT", FILTER_CHAIN),
    ("filter", "OUTPUT", FILTER_CHAIN),
)
JUMP_COMMENT = "kproxy ipvs"


def jump_args(chain: str, target: str) -> list[str]:
    return [chain, "-m", "comment", "--comment", JUMP_COMMENT, "-j", target]


def cleanup_text() -> str:
    """iptables-restore --noflush input removing our chains (jumps must be gone first)."""
    out = ["*filter", *(f":{c} - [0:0]" for c in FILTER_CHAINS), *(f"-X {c}" for c in FILTER_CHAINS), "COMMIT",
           "*nat", *(f":{c} - [0:0]" for c in NAT_CHAINS), *(f"-X {c}" for c in NAT_CHAINS), "COMMIT"]
    return "\n".join(out) + "\n"


def parse_owners(save_text: str) -> dict[tuple[str, int, str], tuple[str, str]]:
    """`ipset save KUBE-IPVS-OWNERS` -> {(ip, port, PROTO): (kind, ServicePort key)}."""
    out: dict[tuple[str, int, str], tuple[str, str]] = {}
    for line in save_text.splitlines():
        words = line.split(" ", 3)
        if len(words) < 4 or words[0] != "add" or words[1] != SET_OWNERS or not words[3].startswith("comment "):
            continue
        ip, _, proto_port = words[2].partition(",")
        proto, _, port = proto_port.partition(":")
        kind, _, owner = words[3][len("comment "):].strip().strip('"').partition(" ")
        if port.isdigit():
            out[(ip, int(port), proto.upper())] = (kind, owner)
    return out
