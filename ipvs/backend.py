"""IpvsBackend: the kube-proxy IPVS model programmed through generic netlink.

Kernel I/O lives only here (render.py and nfrules.py are pure). All of it runs on the
namespace's thread: apply/inspect/cleanup are called through netns.run by the proxier, and
every public method here re-enters netns.run itself so tests and CLIs may call them directly.

Guarantees:
- apply(ruleset, None) (full sync) dumps the kernel's virtual servers, reads every real server
  in one read of /proc/net/ip_vs (procfs.py; per-virtual-server dumps if that fails), and
  sends only the difference (add / edit / delete) in batched netlink messages; virtual
  servers the ruleset does not hold are deleted. This namespace's IPVS table
  is owned by kproxy (as kube-proxy owns its node's).
- apply(ruleset, previous) touches only virtual servers whose entry differs from `previous`.
- A real server that leaves a virtual server is first set to weight 0 (no new connections,
  established ones continue) and deleted once it has no connections or DRAIN_SECONDS passed
  (graceful termination); it is checked again on every later apply.
- Addresses: the dummy interface kube-ipvs0 holds exactly the ruleset's addresses.
- The netfilter part: ipsets through netlink (ipvs/ipset.py; a full sync reads every set of
  ours and sends only the members that differ, a partial sync only the members that changed
  since the last apply) and a few iptables chains (through kproxy.iptables.driver), rewritten
  when their text changed or when a full sync's iptables-save shows them changed since our last
  write.
- Order within an apply: the set changes that widen (masquerade members, set creations,
  removed reject/drop members) and the iptables rules first, then IPVS, then the addresses
  (new, then stale), then the set changes that narrow. So no virtual server forwards a packet
  before its masquerade member exists (a SYN forwarded unmasqueraded would leave a conntrack
  entry without NAT that loses every retry from that client port, nfrules.split_around_ipvs),
  and no new address is local before its virtual server exists (the local stack would reset
  the SYN).
- IPVS has no transactions: a failed apply raises ApplyError and may leave part of the change
  in the kernel; the proxier then makes the next sync full, which repairs everything.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import subprocess
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from kproxy.agent.backend import ApplyError, ApplyResult, Backend, BackendUnavailable, run_command
from kproxy.agent.families import IPV4, family_view
from kproxy.agent.protocols import BackendConfig, Namespace
from kproxy.agent.state import Changes, ProxyState
from kproxy.iptables import driver as iptables_driver
from kproxy.iptables.driver import Iptables
from kproxy.netns import NetNS

from . import nfrules, procfs
from .ipset import IpsetError, IpsetSocket, SetOp
from .model import IpvsRuleset, RealServer, ServiceEntry, VirtualServer, VSKey
from .netlink import (CMD_DEL_DEST, CMD_DEL_SERVICE, CMD_NEW_DEST, CMD_NEW_SERVICE, CMD_SET_DEST,
                      CMD_SET_SERVICE, DestStatus, IpvsError, IpvsSocket, Request)
from .render import options_from_config, render as render_ruleset

log = logging.getLogger(__name__)

DUMMY_DEVICE = "kube-ipvs0"
DRAIN_SECONDS = 30.0
COMMAND_TIMEOUT = 600
SYSCTLS = {
    "net.ipv4.vs.conntrack": "1",  # iptables masquerade sees IPVS-forwarded packets
    "net.ipv4.vs.expire_nodest_conn": "1",  # connections to a deleted real server end at once
    "net.ipv4.vs.expire_quiescent_template": "1",  # persistence to a weight-0 server expires
}


@dataclass(frozen=True)
class KernelService:
    server: VirtualServer
    dests: tuple[DestStatus, ...]


@dataclass(frozen=True)
class Inspection:
    """What the kernel holds: virtual servers with real servers and counters, dummy addresses,
    and which Service port each virtual server serves (VSKey -> (frontend kind, ServicePort
    key), from the KUBE-IPVS-OWNERS ipset's comments)."""

    services: tuple[KernelService, ...]
    addresses: frozenset[str]
    draining: frozenset[tuple[VSKey, RealServer]] = field(default_factory=frozenset)
    owners: Mapping[VSKey, tuple[str, str]] = field(default_factory=dict)
    # virtual servers whose new connections the filter DROPs while they have no real server (a
    # Local policy without a local endpoint); the others without real servers are REJECTed
    dropped: frozenset[VSKey] = field(default_factory=frozenset)
    # firewalled LB virtual servers (loadBalancerSourceRanges) -> the sources they accept
    allowed_sources: Mapping[VSKey, tuple[str, ...]] = field(default_factory=dict)

    def as_map(self) -> dict[VSKey, tuple[VirtualServer, tuple[RealServer, ...]]]:
        """VSKey -> (virtual server, real servers with weight > 0), for comparing with a ruleset."""
        return {s.server.key: (s.server, tuple(sorted(d.server for d in s.dests if d.server.weight > 0)))
                for s in self.services}


def desired_map(ruleset: IpvsRuleset) -> dict[VSKey, tuple[VirtualServer, tuple[RealServer, ...]]]:
    return {k: (e.server, e.reals) for k, e in ruleset.services.items()}


def parse_addresses(ip_addr_output: str) -> set[str]:
    """The IPv4 addresses in `ip -o -4 addr show` output."""
    return {line.split()[3].split("/")[0] for line in ip_addr_output.splitlines() if " inet " in line}


def plan_dests(entry: ServiceEntry, kernel: list[DestStatus]) -> tuple[list[Request], set[RealServer]]:
    """Pure: the dest requests turning `kernel` into entry.reals, and the real servers that
    are (now) draining: present in the kernel, not wanted, with connections (TCP and SCTP
    only: an unwanted UDP real server is deleted at once)."""
    vs = entry.server
    want = {(r.address, r.port): r for r in entry.reals}
    have = {(d.server.address, d.server.port): d for d in kernel}
    reqs: list[Request] = []
    drain: set[RealServer] = set()
    for addr, real in want.items():
        cur = have.get(addr)
        if cur is None:
            reqs.append(Request(CMD_NEW_DEST, vs, real))
        elif cur.server.weight != real.weight or cur.fwd_method != 0:
            reqs.append(Request(CMD_SET_DEST, vs, real))
    for addr, cur in have.items():
        if addr in want:
            continue
        # UDP has no connection end to wait for (kube-proxy deletes at once too)
        if cur.active + cur.inactive == 0 or vs.protocol == "UDP":
            reqs.append(Request(CMD_DEL_DEST, vs, cur.server))
            continue
        if cur.server.weight != 0:
            reqs.append(Request(CMD_SET_DEST, vs, RealServer(cur.server.address, cur.server.port, 0)))
        drain.add(RealServer(cur.server.address, cur.server.port, 0))
    return reqs, drain


class IpvsBackend(Backend):
    name = "ipvs"

    def __init__(self, netns: Namespace | None, config: BackendConfig | None) -> None:
        super().__init__(netns, config)
        try:
            self.options = options_from_config(self.config)
        except ValueError as exc:
            raise BackendUnavailable(str(exc)) from None
        self.drain_seconds = DRAIN_SECONDS
        self._sock: IpvsSocket | None = None
        self._ipset_sock: IpsetSocket | None = None
        self._draining: dict[tuple[VSKey, RealServer], float] = {}  # -> deadline (monotonic)
        self._netfilter_applied: Any = None
        self._rules_written: tuple[str, tuple[str, ...]] | None = None  # (restore text, save lines after)
        self._setup_done = False
        self._iptables: Iptables | None = None
        self._warned_procfs = False

    # ------------------------------------------------------------------ probing

    @classmethod
    def probe(cls, netns: Namespace | None, config: BackendConfig | None = None) -> None:
        netns = netns if netns is not None else NetNS(None)
        if config is not None:
            try:
                options_from_config(config)
            except ValueError as exc:
                raise BackendUnavailable(str(exc)) from None
        subprocess.run(["modprobe", "-q", "ip_vs"], capture_output=True, check=False)

        def _try() -> None:
            IpvsSocket().close()

        def _try_ipset() -> None:
            with IpsetSocket() as sock:
                for kind in {t.kind for t in nfrules.set_types().values()}:
                    sock.revision(kind)

        try:
            netns.run(_try)
        except (IpvsError, OSError) as exc:
            raise BackendUnavailable(f"ipvs mode needs the kernel's IPVS (ip_vs module): {exc}") from None
        try:
            netns.run(_try_ipset)
        except (IpsetError, OSError) as exc:
            raise BackendUnavailable(f"ipvs mode needs the kernel's ipset (ip_set modules): {exc}") from None
        for tool in ("ip",):
            res = subprocess.run(["which", tool], capture_output=True, check=False)
            if res.returncode != 0:
                raise BackendUnavailable(f"ipvs mode needs the {tool} command")

    # ------------------------------------------------------------------ helpers

    def _ipsets(self) -> IpsetSocket:
        if self._ipset_sock is None:
            try:
                self._ipset_sock = IpsetSocket()
            except IpsetError as exc:
                raise ApplyError(str(exc)) from None
        return self._ipset_sock

    def _socket(self) -> IpvsSocket:
        if self._sock is None:
            try:
                self._sock = IpvsSocket()
            except (IpvsError, OSError) as exc:
                raise ApplyError(f"IPVS netlink: {exc}") from None
        return self._sock

    def _run(self, argv: list[str], text: str | None = None) -> subprocess.CompletedProcess:
        return run_command(self.netns, argv, text, COMMAND_TIMEOUT)

    def _must(self, argv: list[str], text: str | None = None) -> str:
        res = self._run(argv, text)
        if res.returncode != 0:
            raise ApplyError(f"{' '.join(argv[:3])}: {res.stderr.strip() or 'failed'}")
        return res.stdout

    def _iptables_driver(self) -> Iptables:
        """The iptables driver for the netfilter rules (config iptables.backend, as iptables mode)."""
        if self._iptables is None:
            try:
                self._iptables = iptables_driver.choose(self.netns, self.config.iptables.backend)
            except BackendUnavailable as exc:
                raise ApplyError(f"the ipvs netfilter rules need iptables: {exc}") from None
        return self._iptables

    # ------------------------------------------------------------------ render / apply

    def render(self, state: ProxyState, previous: IpvsRuleset | None = None,
               changes: Changes | None = None) -> IpvsRuleset:
        # IPVS mode programs IPv4 only: the IPv6 half of a dual-stack cluster (ClusterIPs,
        # endpoints, the node's IPv6 addresses) never reaches its ipsets or virtual servers
        view = family_view(state, IPV4, previous.view if previous is not None else None, changes)
        return replace(render_ruleset(view, self.options, previous, changes), view=view)

    def apply(self, ruleset: IpvsRuleset, previous: IpvsRuleset | None) -> ApplyResult:
        return self.netns.run(self._apply, ruleset, previous)

    def _apply(self, ruleset: IpvsRuleset, previous: IpvsRuleset | None) -> ApplyResult:
        full = previous is None
        old: Mapping[VSKey, ServiceEntry] = {} if previous is None else previous.services
        t0 = time.monotonic()
        if not self._setup_done or full:
            self._setup()
        # what the dummy interface holds: read once per full sync, else known from `previous`
        bound = self._dummy_addresses() if previous is None else set(previous.addresses)
        # masquerade members before the virtual servers that need them (see nfrules.split_around_ipvs)
        set_ops_after = self._netfilter_before(ruleset, full)
        t1 = time.monotonic()
        sock = self._socket()
        reqs: list[Request] = []
        deletes: list[Request] = []
        table = None  # every real server in one read (procfs.py), for a full sync
        keys: Iterable[VSKey]
        if full:
            kernel = {vs.key: vs for vs in sock.services()}
            keys = ruleset.services.keys()
            stale = [vs for key, vs in kernel.items() if key not in ruleset.services]
            table = self._dest_table()
        else:
            kernel = None
            keys = [k for k, e in ruleset.services.items() if old.get(k) != e]
            stale = [e.server for k, e in old.items() if k not in ruleset.services]
        for key in keys:
            entry = ruleset.services[key]
            current = kernel.get(key) if kernel is not None else (old[key].server if key in old else None)
            if current is None:
                reqs.append(Request(CMD_NEW_SERVICE, entry.server))
                reqs.extend(Request(CMD_NEW_DEST, entry.server, r) for r in entry.reals)
                self._forget_drains(key)
                continue
            if current != entry.server:
                reqs.append(Request(CMD_SET_SERVICE, entry.server))
            in_kernel = table[key] if table is not None and key in table else self._dests(sock, entry.server)
            dest_reqs, drain = plan_dests(entry, in_kernel)
            reqs.extend(dest_reqs)
            self._track_drains(key, drain, entry)
        deletes.extend(Request(CMD_DEL_SERVICE, vs) for vs in stale)
        for vs in stale:
            self._forget_drains(vs.key)
        reqs.extend(self._expire_drains(sock, ruleset, skip=set(keys)))
        try:
            trips = sock.execute(reqs + deletes)
        except IpvsError as exc:
            raise ApplyError(str(exc)) from None
        t2 = time.monotonic()
        # a new address only once its virtual server exists (IPVS sees packets to local
        # addresses only): before that, a SYN to it would reach the local stack and be reset
        self._sync_addresses(ruleset.addresses, bound)
        self._netfilter_after(ruleset, set_ops_after)
        t3 = time.monotonic()
        return ApplyResult(full=full, objects_written=len(reqs) + len(deletes),
                           detail=f"{len(reqs) + len(deletes)} IPVS requests in {trips} sends, "
                                  f"{len(self._draining)} real servers draining; seconds: setup and netfilter "
                                  f"before {t1 - t0:.3f}, ipvs {t2 - t1:.3f}, addresses and netfilter after "
                                  f"{t3 - t2:.3f}")

    def _dest_table(self) -> dict[VSKey, list[DestStatus]] | None:
        """/proc's table of every real server, or None (then each virtual server's real
        servers are dumped over netlink) when this kernel's file is missing or unreadable."""
        try:
            return procfs.read()
        except (OSError, procfs.ProcFormatError) as exc:
            if not self._warned_procfs:
                self._warned_procfs = True
                log.warning("reading %s failed (%s): full syncs dump each virtual server's real servers",
                            procfs.PATH, exc)
            return None

    def _dests(self, sock: IpvsSocket, vs: VirtualServer) -> list[DestStatus]:
        try:
            return sock.dests(vs)
        except IpvsError as exc:
            if exc.errno == errno.ESRCH:
                return []
            raise ApplyError(str(exc)) from None

    def _track_drains(self, key: VSKey, drain: set[RealServer], entry: ServiceEntry) -> None:
        wanted = {(r.address, r.port) for r in entry.reals}
        for (k, real) in list(self._draining):
            if k == key and (real.address, real.port) in wanted:
                del self._draining[(k, real)]
        now = time.monotonic()
        for real in drain:
            self._draining.setdefault((key, real), now + self.drain_seconds)

    def _forget_drains(self, key: VSKey) -> None:
        for item in [d for d in self._draining if d[0] == key]:
            del self._draining[item]

    def _expire_drains(self, sock: IpvsSocket, ruleset: IpvsRuleset, skip: set) -> list[Request]:
        """DEL requests for draining real servers (of virtual servers not re-planned in this
        apply) whose connections ended or whose deadline passed."""
        out: list[Request] = []
        now = time.monotonic()
        by_key: dict[VSKey, list[RealServer]] = {}
        for (key, real) in self._draining:
            if key not in skip:
                by_key.setdefault(key, []).append(real)
        for key, reals in by_key.items():
            entry = ruleset.services.get(key)
            if entry is None:
                self._forget_drains(key)
                continue
            counts = {(d.server.address, d.server.port): d for d in self._dests(sock, entry.server)}
            for real in reals:
                cur = counts.get((real.address, real.port))
                if cur is None:
                    del self._draining[(key, real)]
                elif cur.active + cur.inactive == 0 or now >= self._draining[(key, real)]:
                    out.append(Request(CMD_DEL_DEST, entry.server, real))
                    del self._draining[(key, real)]
        return out

    def _setup(self) -> None:
        """Module sysctls and the dummy interface (idempotent)."""
        for key, value in SYSCTLS.items():
            path = "/proc/sys/" + key.replace(".", "/")
            try:
                with open(path, "w") as f:
                    f.write(value)
            except OSError as exc:
                raise ApplyError(f"sysctl {key}={value}: {exc.strerror}") from None
        if not self._setup_done and self._run(["ip", "link", "show", DUMMY_DEVICE]).returncode != 0:
            self._must(["ip", "link", "add", DUMMY_DEVICE, "type", "dummy"])
        self._setup_done = True

    def _dummy_addresses(self) -> set[str]:
        res = self._run(["ip", "-o", "-4", "addr", "show", "dev", DUMMY_DEVICE])
        if res.returncode != 0:  # deleted since the last sync (by hand, or a cleanup): re-create
            self._must(["ip", "link", "add", DUMMY_DEVICE, "type", "dummy"])
            return set()
        return parse_addresses(res.stdout)

    def _sync_addresses(self, want: frozenset[str], have: set[str]) -> None:
        """Binds the missing dummy addresses and removes the unwanted ones, in one `ip -batch`
        (additions first)."""
        lines = [f"addr replace {a}/32 dev {DUMMY_DEVICE}" for a in sorted(want - have)]
        lines += [f"addr del {a}/32 dev {DUMMY_DEVICE}" for a in sorted(have - want)]
        if lines:
            self._must(["ip", "-force", "-batch", "-"], "\n".join(lines) + "\n")

    def _netfilter_before(self, ruleset: IpvsRuleset, full: bool) -> list[SetOp]:
        """First half of the ipsets and the few iptables rules: returns the set operations
        that must wait until the IPVS changes are in (nfrules.split_around_ipvs). A full sync
        reads the kernel's sets and sends what differs, a partial one the members that changed
        since the last apply. The rules are rewritten only when their text changed or, at a full
        sync, when `iptables-save` shows our lines differ from what it showed after our last
        write (someone changed or deleted them): in steady state a full sync costs one
        iptables-save, not a restore and a check per jump."""
        plan = ruleset.netfilter
        previous = None if full else self._netfilter_applied
        if previous == plan:
            return []
        self._netfilter_applied = None  # until both halves are known to be in place
        try:
            if previous is None:  # compare with the kernel's sets: send only what differs
                sock = self._ipsets()
                names = set(sock.names())
                current = {name: sock.members(name) for name in nfrules.set_types() if name in names}
                ops = nfrules.ipset_sync_ops(plan, current)
            else:  # only the members that changed since the last apply
                ops = nfrules.ipset_delta_ops(previous, plan)
            before, after = nfrules.split_around_ipvs(ops)
            if before:
                self._ipsets().execute(before)
        except IpsetError as exc:
            raise ApplyError(str(exc)) from None
        text = nfrules.restore_text(plan)
        written = self._rules_written
        if written is None or written[0] != text or (full and self._our_iptables_lines() != written[1]):
            self._write_iptables(text)
            self._rules_written = (text, self._our_iptables_lines())
        return after

    def _netfilter_after(self, ruleset: IpvsRuleset, ops: list[SetOp]) -> None:
        try:
            if ops:
                self._ipsets().execute(ops)
        except IpsetError as exc:
            raise ApplyError(str(exc)) from None
        self._netfilter_applied = ruleset.netfilter

    def _write_iptables(self, text: str) -> None:
        iptables = self._iptables_driver()
        iptables.restore(text)
        for table, chain, target in nfrules.JUMPS:
            args = nfrules.jump_args(chain, target)
            if iptables.command(table, "-C", *args).returncode != 0:
                iptables.must(table, "-I", args[0], "1", *args[1:])

    def _our_iptables_lines(self) -> tuple[str, ...]:
        """Every line of `iptables-save` (nat and filter) that names one of our chains or sets,
        with its table, in order: our chains, their rules and the jumps to them."""
        out = self._iptables_driver().save()
        table = ""
        lines = []
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif nfrules.PREFIX in line and table in ("nat", "filter"):
                lines.append(f"{table} {line}")
        return tuple(lines)

    # ------------------------------------------------------------------ inspect / cleanup

    def inspect(self) -> Inspection:
        return self.netns.run(self._inspect)

    def _inspect(self) -> Inspection:
        sock = self._socket()
        try:
            services = tuple(KernelService(vs, tuple(sorted(sock.dests(vs), key=lambda d: d.server)))
                             for vs in sorted(sock.services(), key=lambda v: v.key))
        except IpvsError as exc:
            raise ApplyError(str(exc)) from None
        res = self._run(["ip", "-o", "-4", "addr", "show", "dev", DUMMY_DEVICE])
        addrs = frozenset(parse_addresses(res.stdout) if res.returncode == 0 else ())
        try:
            owners = nfrules.owners_from_members(self._ipsets().members(nfrules.SET_OWNERS))
            dropped = nfrules.keys_from_members(self._ipsets().members(nfrules.SET_NO_LOCAL))
            allowed = nfrules.allowed_sources_from_members(
                *(self._ipsets().members(name) for name in
                  (nfrules.SET_LB_FIREWALL, nfrules.SET_LB_SOURCE_CIDR, nfrules.SET_LB_SOURCE_IP)))
        except IpsetError:  # never synced here (or the set was destroyed): no owners to show
            owners, dropped, allowed = {}, frozenset(), {}
        return Inspection(services, addrs, frozenset(self._draining), owners, dropped, allowed)

    def cleanup(self) -> None:
        self.netns.run(self._cleanup)

    def _cleanup(self) -> None:
        try:
            sock = IpvsSocket()
        except (IpvsError, OSError):
            sock = None  # no IPVS here: nothing of ours in it
        if sock is not None:
            with sock:
                try:
                    sock.flush()
                except IpvsError as exc:
                    raise ApplyError(str(exc)) from None
        if self._run(["ip", "link", "show", DUMMY_DEVICE]).returncode == 0:
            self._must(["ip", "link", "del", DUMMY_DEVICE])
        for iptables in iptables_driver.installed(self.netns):
            if iptables.try_save("-t", "nat") is None:
                continue  # this variant cannot work here, so it holds nothing of ours
            for table, chain, target in nfrules.JUMPS:
                args = nfrules.jump_args(chain, target)
                while iptables.command(table, "-D", *args).returncode == 0:
                    pass
            saved = iptables.save()
            if f":{nfrules.NAT_SERVICES}" in saved or f":{nfrules.FILTER_CHAIN}" in saved:
                iptables.restore(nfrules.cleanup_text())
        try:
            with IpsetSocket() as ipsets:
                ours = [n for n in ipsets.names() if n.startswith(nfrules.PREFIX)]
                for name in ours:  # one at a time: a set still referenced elsewhere stays
                    with contextlib.suppress(IpsetError):
                        ipsets.execute([SetOp("destroy", name)])
        except IpsetError:
            pass  # no ipset in this kernel: nothing of ours in it
        self._draining.clear()
        self._netfilter_applied = None
        self._rules_written = None
        self._setup_done = False

    def close(self) -> None:
        for attr in ("_sock", "_ipset_sock"):
            sock = getattr(self, attr)
            if sock is not None:
                setattr(self, attr, None)
                self.netns.run(sock.close)
