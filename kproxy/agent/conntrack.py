"""Stale conntrack cleanup.

After rules change, connection-tracking entries created under the old rules keep steering
packets of connectionless protocols (kubernetes #19029, #59368): an entry DNATed to a removed
endpoint, or one created while the Service had no endpoints (#48370, the REJECT/blackhole
entry). `plan_flush()` computes, purely, which UDP/SCTP entries to delete; `flush()` lists the
namespace's entries over ctnetlink (kproxy.netlink.conntrack) and deletes those matching. Only
matching entries are deleted, never the whole table (#122740).

TCP has one such case: a SYN that reached the node before the Service's rules did (a client
faster than the proxy) was routed as plain traffic, and its entry, confirmed without any
translation, keeps every retransmission of that SYN untranslated until it expires (120 s in
SYN_SENT), so the connection attempt fails although the rules are in place. `plan_unanswered()`
names the frontends that just got a usable endpoint; `flush_unanswered()` lists SYN_SENT entries
once and deletes those to such a frontend that were never translated (the reply tuple still
names the frontend), typically none.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Iterable

from kproxy.agent.families import FAMILIES, IPV6, service_view
from kproxy.agent.policy import categorize_in
from kproxy.agent.protocols import Namespace
from kproxy.agent.state import ProxyState, ServicePort
from kproxy.netlink.conntrack import TCP_CONNTRACK_SYN_SENT, ConntrackSocket, Entry

log = logging.getLogger(__name__)

FLUSHED_PROTOCOLS = ("UDP", "SCTP")


@dataclass(frozen=True)
class ConntrackFilter:
    """Delete entries of `protocol` whose original destination is orig_dst:orig_port (orig_dst
    None: any address) and, when reply_src is set, whose reply comes from reply_src:reply_port
    (the endpoint the entry was DNATed to)."""

    protocol: str  # "udp" | "sctp"
    orig_dst: str | None
    orig_port: int
    reply_src: str | None = None
    reply_port: int | None = None
    ip_family: int = 0  # 4 | 6; 0: the family of orig_dst / reply_src (IPv4 when neither is set)

    @property
    def family(self) -> str:
        if self.ip_family:
            return "ipv6" if self.ip_family == IPV6 else "ipv4"
        return "ipv6" if _is_v6(self.orig_dst or self.reply_src) else "ipv4"

    def matches(self, entry: Entry) -> bool:
        """Whether `conntrack -D` with argv() would delete `entry`."""
        return (entry.family == self.family and entry.protocol == self.protocol
                and entry.orig.dport == self.orig_port
                and (self.orig_dst is None or entry.orig.dst == self.orig_dst)
                and (self.reply_src is None or entry.reply.src == self.reply_src)
                and (self.reply_port is None or entry.reply.sport == self.reply_port))

    def argv(self) -> list[str]:
        """The same deletion as a `conntrack` command (for logs and operators)."""
        argv = ["conntrack", "-D", "-f", self.family, "-p", self.protocol]
        if self.orig_dst:
            argv += ["--orig-dst", self.orig_dst]
        argv += ["--orig-port-dst", str(self.orig_port)]
        if self.reply_src:
            argv += ["--reply-src", self.reply_src]
            if self.reply_port is not None:
                argv += ["--reply-port-src", str(self.reply_port)]
        return argv


def _is_v6(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return False


def frontends(sp: ServicePort) -> list[tuple[str | None, int]]:
    """Every (destination IP, port) a client can use to reach `sp`; a NodePort is matched on
    any destination address (node IPs, localhost)."""
    out: list[tuple[str | None, int]] = [(ip, sp.port) for ip in sp.cluster_ips]
    out += [(ip, sp.port) for ip in sp.external_ips]
    out += [(ip, sp.port) for ip in sp.load_balancer_ips]
    if sp.node_port:
        out.append((None, sp.node_port))
    return out


def serving_endpoints(sp: ServicePort, state: ProxyState) -> set[tuple[str, int]]:
    """The endpoints traffic to `sp` (a ServicePort of `state`) can be sent to from this node."""
    return {(e.ip, e.port) for e in categorize_in(sp, state).reachable}


def newly_served(old: ServicePort | None, new: ServicePort, old_eps: set[tuple[str, int]],
                 new_eps: set[tuple[str, int]]) -> bool:
    """`new` has a usable endpoint and `old` had none, did not exist or had another protocol.
    `old_eps`/`new_eps` are their serving_endpoints()."""
    if not new_eps:
        return False
    if old is None or old.protocol != new.protocol:
        return True
    return not old_eps


def plan_flush(previous: ProxyState | None, current: ProxyState, keys: Iterable[str] | None = None
               ) -> tuple[ConntrackFilter, ...]:
    """The entries to delete after moving the kernel from `previous` to `current`.

    `keys` limits the work to these ServicePort keys (a partial sync's changes); None: all.
    - An endpoint that could receive traffic before and cannot now: delete entries to each of
      the old frontends replied from that endpoint.
    - A ServicePort that had no usable endpoint (or did not exist) and now has one: delete the
      entries to each of its frontends (whatever they were, they did not reach an endpoint).
    Only UDP and SCTP ServicePorts are considered. Each family's part of a ServicePort is
    planned on its own (kproxy.agent.families.service_view): an IPv6 endpoint is flushed from
    the IPv6 frontends, and a NodePort newly served in one family flushes that family's entries.
    The result is sorted and duplicate-free.
    """
    prev_services = previous.services if previous is not None else {}
    if keys is None:
        keys = set(prev_services) | set(current.services)
    out: set[ConntrackFilter] = set()
    for key in keys:
        for family in FAMILIES:
            _plan_port(family, prev_services.get(key), current.services.get(key), previous, current, out)
    return tuple(sorted(out, key=lambda f: (f.protocol, f.orig_dst or "", f.orig_port, f.reply_src or "",
                                            f.reply_port or 0, f.ip_family)))


def _plan_port(family: int, old: ServicePort | None, new: ServicePort | None, previous: ProxyState | None,
               current: ProxyState, out: set[ConntrackFilter]) -> None:
    """plan_flush's filters for one ServicePort key in one family, added to `out`."""
    old = service_view(old, family) if old is not None and old.protocol in FLUSHED_PROTOCOLS else None
    new = service_view(new, family) if new is not None and new.protocol in FLUSHED_PROTOCOLS else None
    old_eps = serving_endpoints(old, previous) if old is not None and previous is not None else set()
    new_eps = serving_endpoints(new, current) if new is not None else set()
    # entries are per protocol: after a protocol change nothing of the old one still serves
    same_protocol = old is not None and new is not None and old.protocol == new.protocol
    if old is not None:
        still_serving = new_eps if same_protocol else set()
        for ip, port in old_eps - still_serving:
            for dst, dport in frontends(old):
                out.add(ConntrackFilter(old.protocol.lower(), dst, dport, ip, port, _family_tag(dst, family)))
    if new is not None and newly_served(old, new, old_eps, new_eps):
        for dst, dport in frontends(new):
            out.add(ConntrackFilter(new.protocol.lower(), dst, dport, ip_family=_family_tag(dst, family)))


def _family_tag(dst: str | None, family: int) -> int:
    """A filter's explicit family: only where its addresses do not say it (a NodePort's
    any-destination filter in IPv6), so IPv4 filters read as before."""
    return family if dst is None and family == IPV6 else 0


def _entries_to_port(sock: ConntrackSocket, f: ConntrackFilter, listed: dict) -> list[Entry]:
    """The entries of f's family and protocol to its port (one listing each, indexed by port:
    a sync's filters times a busy node's entries would be too many comparisons)."""
    by_port = listed.get((f.family, f.protocol))
    if by_port is None:
        by_port = listed[f.family, f.protocol] = {}
        for entry in sock.entries(f.family, f.protocol):
            by_port.setdefault(entry.orig.dport, []).append(entry)
    return by_port.get(f.orig_port, [])


def flush(netns: Namespace, filters: Iterable[ConntrackFilter]) -> int:
    """Deletes the entries matching each filter inside `netns` (kproxy.netns.NetNS): one
    listing per family and protocol, then the matches. Returns how many filters were carried
    out. A filter that matches nothing is not an error; a failure is logged and the other
    filters still run."""
    return netns.run(_flush, list(filters))


def _flush(filters: list[ConntrackFilter]) -> int:
    if not filters:
        return 0
    try:
        sock = ConntrackSocket()
    except OSError as exc:
        log.warning("conntrack cleanup: netlink socket: %s", exc)
        return 0
    count = 0
    listed: dict = {}
    with sock:
        for f in filters:
            try:
                sock.delete([e for e in _entries_to_port(sock, f, listed) if f.matches(e)])
            except OSError as exc:
                log.warning("conntrack cleanup (%s): %s", " ".join(f.argv()), exc)
                continue
            count += 1
    return count


# ------------------------------------------------------------------ TCP: attempts older than the rules

Frontend = tuple[str | None, int]  # (destination IP or None for any: a NodePort, port)


def plan_unanswered(previous: ProxyState | None, current: ProxyState, keys: Iterable[str] | None = None
                    ) -> frozenset[Frontend]:
    """The frontends of TCP ServicePorts that had no usable endpoint (or did not exist) and now
    have one: where an entry made before the rules may hold a connection attempt back."""
    prev_services = previous.services if previous is not None else {}
    if keys is None:
        keys = current.services.keys()
    out: set[Frontend] = set()
    for key in keys:
        new = current.services.get(key)
        if new is None or new.protocol != "TCP":
            continue
        old = prev_services.get(key)
        if old is new and previous is not None and previous.node_zone == current.node_zone:
            continue  # an unchanged ServicePort is the same object
        old_eps = serving_endpoints(old, previous) if old is not None and previous is not None else set()
        if newly_served(old, new, old_eps, serving_endpoints(new, current)):
            out.update(frontends(new))
    return frozenset(out)


def untranslated_attempts(entries: Iterable[Entry], wanted: frozenset[Frontend]) -> list[Entry]:
    """The TCP entries in SYN_SENT to a wanted frontend whose reply tuple still comes from that
    frontend (no DNAT, no IPVS: made before the rules)."""
    any_address = {port for ip, port in wanted if ip is None}
    out = []
    for e in entries:
        if e.protocol != "tcp" or e.tcp_state != TCP_CONNTRACK_SYN_SENT:
            continue
        if (e.orig.dst, e.orig.dport) not in wanted and e.orig.dport not in any_address:
            continue
        if e.reply.src == e.orig.dst and e.reply.sport == e.orig.dport:
            out.append(e)
    return out


def flush_unanswered(netns: Namespace, wanted: frozenset[Frontend]) -> int:
    """Deletes, inside `netns`, the untranslated SYN_SENT entries to `wanted` frontends (one
    listing per address family, the matches deleted together). Returns how many were deleted;
    failures are logged, never raised."""
    return netns.run(_flush_unanswered, wanted)


def _flush_unanswered(wanted: frozenset[Frontend]) -> int:
    families = {"ipv6" if _is_v6(ip) else "ipv4" for ip, _ in wanted if ip is not None}
    if any(ip is None for ip, _ in wanted):
        families |= {"ipv4", "ipv6"}
    if not families:
        return 0
    deleted = 0
    try:
        with ConntrackSocket() as sock:
            for family in sorted(families):
                stuck = untranslated_attempts(sock.entries(family, "tcp"), wanted)
                deleted += sock.delete(stuck)
                for e in stuck:
                    log.info("deleted a connection attempt older than the rules: tcp %s:%d -> %s:%d",
                             e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport)
    except OSError as exc:
        log.warning("conntrack cleanup of connection attempts: %s", exc)
    return deleted
