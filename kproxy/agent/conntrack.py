"""Stale conntrack cleanup.

After rules change, connection-tracking entries created under the old rules keep steering
packets of connectionless protocols (kubernetes #19029, #59368): an entry DNATed to a removed
endpoint, or one created while the Service had no endpoints (#48370, the REJECT/blackhole
entry). `plan_flush()` computes, purely, which UDP/SCTP entries to delete; `flush()` deletes
them with the `conntrack` CLI inside the namespace. Only matching entries are deleted, never the
whole table (#122740).

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
import subprocess
from dataclasses import dataclass
from typing import Any, Iterable

from kproxy.agent.state import ProxyState, ServicePort

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

    def argv(self) -> list[str]:
        family = "ipv6" if _is_v6(self.orig_dst or self.reply_src) else "ipv4"
        argv = ["conntrack", "-D", "-f", family, "-p", self.protocol]
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


def serving_endpoints(sp: ServicePort) -> set[tuple[str, int]]:
    """The endpoints traffic to `sp` can be sent to under either traffic policy."""
    return {(e.ip, e.port) for e in sp.internal_endpoints() + sp.external_endpoints()}


def newly_served(old: ServicePort | None, new: ServicePort, old_eps: set[tuple[str, int]] | None = None,
                 new_eps: set[tuple[str, int]] | None = None) -> bool:
    """`new` has a usable endpoint and `old` had none, did not exist or had another protocol.
    `old_eps`/`new_eps` are their serving_endpoints() when the caller has them already."""
    if not (serving_endpoints(new) if new_eps is None else new_eps):
        return False
    if old is None or old.protocol != new.protocol:
        return True
    return not (serving_endpoints(old) if old_eps is None else old_eps)


def plan_flush(previous: ProxyState | None, current: ProxyState, keys: Iterable[str] | None = None
               ) -> tuple[ConntrackFilter, ...]:
    """The entries to delete after moving the kernel from `previous` to `current`.

    `keys` limits the work to these ServicePort keys (a partial sync's changes); None: all.
    - An endpoint that could receive traffic before and cannot now: delete entries to each of
      the old frontends replied from that endpoint.
    - A ServicePort that had no usable endpoint (or did not exist) and now has one: delete the
      entries to each of its frontends (whatever they were, they did not reach an endpoint).
    Only UDP and SCTP ServicePorts are considered. The result is sorted and duplicate-free.
    """
    prev_services = previous.services if previous is not None else {}
    if keys is None:
        keys = set(prev_services) | set(current.services)
    out: set[ConntrackFilter] = set()
    for key in keys:
        old = prev_services.get(key)
        new = current.services.get(key)
        old = old if old is not None and old.protocol in FLUSHED_PROTOCOLS else None
        new = new if new is not None and new.protocol in FLUSHED_PROTOCOLS else None
        old_eps = serving_endpoints(old) if old is not None else set()
        new_eps = serving_endpoints(new) if new is not None else set()
        # entries are per protocol: after a protocol change nothing of the old one still serves
        same_protocol = old is not None and new is not None and old.protocol == new.protocol
        if old is not None:
            still_serving = new_eps if same_protocol else set()
            for ip, port in old_eps - still_serving:
                for dst, dport in frontends(old):
                    out.add(ConntrackFilter(old.protocol.lower(), dst, dport, ip, port))
        if new is not None and newly_served(old, new, old_eps, new_eps):
            for dst, dport in frontends(new):
                out.add(ConntrackFilter(new.protocol.lower(), dst, dport))
    return tuple(sorted(out, key=lambda f: (f.protocol, f.orig_dst or "", f.orig_port, f.reply_src or "",
                                            f.reply_port or 0)))


def _run(netns: Any, argv: list[str], what: str) -> subprocess.CompletedProcess | None:
    """Runs one conntrack command inside `netns`; None (logged) when it could not be run."""
    try:
        return netns.command(argv, check=False, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("conntrack %s failed: %s", what, exc)
        return None


def flush(netns: Any, filters: Iterable[ConntrackFilter]) -> int:
    """Deletes the entries matching each filter inside `netns` (kproxy.netns.NetNS). Returns
    how many deletions were run. A filter that matches nothing is not an error; a failing
    conntrack command is logged and the others still run."""
    count = 0
    for f in filters:
        result = _run(netns, f.argv(), "cleanup")
        if result is None:
            continue
        # conntrack exits 1 with "0 flow entries have been deleted" when nothing matched
        if result.returncode != 0 and "0 flow entries" not in result.stderr:
            log.warning("%s: %s", " ".join(f.argv()), result.stderr.strip())
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
        if old is not new and newly_served(old, new):  # an unchanged ServicePort is the same object
            out.update(frontends(new))
    return frozenset(out)


@dataclass(frozen=True)
class TcpEntry:
    family: str  # ipv4 | ipv6
    src: str
    dst: str
    sport: int
    dport: int

    def delete_argv(self) -> list[str]:
        return ["conntrack", "-D", "-f", self.family, "-p", "tcp", "-s", self.src, "-d", self.dst,
                "--sport", str(self.sport), "--dport", str(self.dport), "--state", "SYN_SENT"]


def untranslated_attempts(listing: str, family: str, wanted: frozenset[Frontend]) -> list[TcpEntry]:
    """From `conntrack -L -p tcp --state SYN_SENT` output: the entries to a wanted frontend whose
    reply tuple still comes from that frontend (no DNAT, no IPVS: made before the rules)."""
    any_address = {port for ip, port in wanted if ip is None}
    out = []
    for line in listing.splitlines():
        values: dict[str, list[str]] = {}
        for word in line.split():
            name, eq, value = word.partition("=")
            if eq:
                values.setdefault(name, []).append(value)
        try:
            (src, rsrc), (dst, _), (sport, rsport), (dport, _) = (values[k][:2] for k in ("src", "dst", "sport", "dport"))
            sport_n, dport_n, rsport_n = int(sport), int(dport), int(rsport)
        except (KeyError, ValueError):
            continue  # not an entry line (or one without a reply tuple)
        if (dst, dport_n) not in wanted and dport_n not in any_address:
            continue
        if rsrc == dst and rsport_n == dport_n:
            out.append(TcpEntry(family, src, dst, sport_n, dport_n))
    return out


def flush_unanswered(netns: Any, wanted: frozenset[Frontend]) -> int:
    """Deletes, inside `netns`, the untranslated SYN_SENT entries to `wanted` frontends (one
    listing per address family, one deletion per entry found). Returns how many were deleted;
    failures are logged, never raised."""
    families = {"ipv6" if _is_v6(ip) else "ipv4" for ip, _ in wanted if ip is not None}
    if any(ip is None for ip, _ in wanted):
        families |= {"ipv4", "ipv6"}
    deleted = 0
    for family in sorted(families):
        listing = _run(netns, ["conntrack", "-L", "-f", family, "-p", "tcp", "--state", "SYN_SENT"], "listing")
        if listing is None:
            continue
        for entry in untranslated_attempts(listing.stdout, family, wanted):
            result = _run(netns, entry.delete_argv(), "cleanup")
            if result is not None and result.returncode == 0:
                deleted += 1
                log.info("deleted a connection attempt older than the rules: tcp %s:%d -> %s:%d",
                         entry.src, entry.sport, entry.dst, entry.dport)
    return deleted
