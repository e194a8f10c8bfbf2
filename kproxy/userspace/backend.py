"""UserspaceBackend: `kproxy agent --mode userspace`.

The listeners live in a separate proxy process per namespace (daemon.py, started on the first
apply, reached through control.py), so restarting the agent drops no connection.

render(state) is the pure Plan (plan.py). apply(plan, previous):
1. opens every listener the plan needs (in the agent's namespace, in the proxy process) and
   updates the endpoints of the others, learning each listener's port;
2. writes the redirect rules for those ports with the iptables mode's own apply (full restore
   when `previous` is None, else only the chains that changed), so traffic moves to a listener
   only after it listens;
3. closes the listeners no rule points at any more.
So a Service never has a window without a listener or a rule. A failed rule apply raises
ApplyError; the listeners stay open and the next (full) sync retries.
inspect() returns the open listeners and the kernel rules; cleanup() removes the rules (the
iptables mode's cleanup: both iptables variants) and stops the proxy process. close() (agent
exit) leaves the proxy process and the rules in place.

Config (optional section `userspace` of the agent config, read with defaults): balancer
"maglev" | "roundrobin", udp_idle_timeout seconds; `iptables.localhostNodePorts` (kube-proxy's
option) decides whether NodePorts answer on 127.0.0.0/8.
ServicePorts the mode cannot proxy (SCTP) are logged in one line whenever that list changes
(so at the first sync after start), and handed to the proxy process so `kproxy rules` shows them.
"""
from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from typing import Any

from kproxy.agent.backend import ApplyError, ApplyResult, Backend, BackendUnavailable
from kproxy.agent.families import IPV4, family_view
from kproxy.agent.protocols import BackendConfig, Namespace
from kproxy.agent.state import Changes, ProxyState
from kproxy.iptables import driver as iptables_driver
from kproxy.iptables.backend import IptablesBackend
from kproxy.iptables.ruleset import Ruleset
from kproxy.userspace.core import BALANCERS
from kproxy.userspace.plan import Plan, render_plan, render_rules
from kproxy.userspace.control import ProxyControl, ProxyControlError
from kproxy.userspace.proxy import ListenerInfo

log = logging.getLogger(__name__)

# Replies to connections the proxy opened from a client's address (IP_TRANSPARENT, see
# proxy.transparent_source) are addressed to that client; the socket match marks them and the
# policy route delivers them locally to our socket instead of forwarding them.
TPROXY_CHAIN = "KPROXY-TPROXY"
TPROXY_COMMENT = "kproxy userspace: replies to transparent proxy connections"
TPROXY_MARK = "0x10000/0x10000"
TPROXY_TABLE = "1717"


def transparent_restore(saved_mangle: str) -> str:
    """iptables-restore text (mangle) making the socket-match rule and its jump exist; the jump
    is inserted only when missing (pure)."""
    lines = ["*mangle", f":{TPROXY_CHAIN} - [0:0]",
             f"-A {TPROXY_CHAIN} -m socket --transparent -j MARK --set-xmark {TPROXY_MARK}"]
    if TPROXY_COMMENT not in saved_mangle:
        lines.append(f'-I PREROUTING 1 -m comment --comment "{TPROXY_COMMENT}" -j {TPROXY_CHAIN}')
    return "\n".join(lines + ["COMMIT", ""])


def transparent_cleanup(saved_mangle: str) -> str:
    """Restore text removing the jump and the chain; "" when neither is there (pure)."""
    if f":{TPROXY_CHAIN}" not in saved_mangle:
        return ""
    lines = ["*mangle", f":{TPROXY_CHAIN} - [0:0]"]
    if TPROXY_COMMENT in saved_mangle:
        lines.append(f'-D PREROUTING -m comment --comment "{TPROXY_COMMENT}" -j {TPROXY_CHAIN}')
    return "\n".join(lines + [f"-X {TPROXY_CHAIN}", "COMMIT", ""])


@dataclass(frozen=True)
class Inspection:
    listeners: tuple[ListenerInfo, ...]
    rules: Any  # kproxy.iptables.backend.Inspection
    skipped: tuple[tuple[str, str], ...] = ()  # (ServicePort key, reason) not programmed


class UserspaceBackend(Backend):
    name = "userspace"

    def __init__(self, netns: Namespace | None, config: BackendConfig | None) -> None:
        super().__init__(netns, config)
        balancer = self.config.userspace.balancer
        if balancer not in BALANCERS:
            raise BackendUnavailable(f"userspace balancer {balancer!r}: want {' or '.join(BALANCERS)}")
        self._rules = IptablesBackend(self.netns, self.config)
        self.proxy = ProxyControl(self.netns, balancer=balancer,
                                  udp_idle_timeout=float(self.config.userspace.udp_idle_timeout))
        self._applied: Ruleset | None = None
        self._localhost_nodeports = self.config.iptables.localhost_nodeports
        self._skipped_logged: tuple[tuple[str, str], ...] | None = None

    @classmethod
    def probe(cls, netns: Namespace | None, config: BackendConfig | None = None) -> None:
        """Needs only iptables (for the redirect rules) and sockets; checks the iptables part."""
        try:
            IptablesBackend.probe(netns, config)
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"userspace mode redirects with iptables: {exc}") from None

    def render(self, state: ProxyState, previous: Plan | None = None, changes: Changes | None = None) -> Plan:
        # the userspace mode serves IPv4 only: a dual-stack cluster's IPv6 half never reaches
        # its listeners or rules
        return render_plan(family_view(state, IPV4), self._localhost_nodeports)

    def apply(self, plan: Plan, previous: Plan | None) -> ApplyResult:
        self._log_skipped(plan.skipped)
        try:
            ports = self.proxy.update(plan.listeners, plan.target_ip, plan.skipped)
        except ProxyControlError as exc:
            raise ApplyError(str(exc)) from None
        rules = render_rules(plan, ports, self._applied)
        known = None if previous is None else self._applied
        try:
            result = self._rules.apply(rules, known)
        except ApplyError:
            self._applied = None
            raise
        self._applied = rules
        if known is None:
            self._ensure_transparent_replies()
        try:
            closed = self.proxy.retire(set(plan.listeners))
        except ProxyControlError as exc:
            raise ApplyError(str(exc)) from None
        return ApplyResult(full=result.full, objects_written=result.objects_written,
                           detail=f"{len(plan.listeners)} listeners ({len(closed)} closed); {result.detail}")

    def _log_skipped(self, skipped: tuple[tuple[str, str], ...]) -> None:
        """One line naming the ServicePorts this mode does not program, when that list changes."""
        if skipped == self._skipped_logged:
            return
        self._skipped_logged = skipped
        if skipped:
            reasons: dict[str, list[str]] = {}
            for key, why in skipped:
                reasons.setdefault(why, []).append(key)
            log.warning("not programmed: %s", "; ".join(f"{why}: {', '.join(keys)}" for why, keys in reasons.items()))

    def _ensure_transparent_replies(self) -> None:
        """The mangle rule and policy route of TPROXY_* (full syncs only; idempotent)."""
        iptables = self._rules.driver
        iptables.restore(transparent_restore(iptables.try_save("-t", "mangle") or ""))
        steps: list[list[str]] = []
        rules = self.netns.command(["ip", "-4", "rule", "show"], check=False).stdout
        if f"lookup {TPROXY_TABLE}" not in rules:
            steps.append(["ip", "-4", "rule", "add", "fwmark", TPROXY_MARK, "lookup", TPROXY_TABLE,
                          "priority", TPROXY_TABLE])
        steps.append(["ip", "-4", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", TPROXY_TABLE])
        for argv in steps:
            res = self.netns.command(argv, check=False)
            if res.returncode != 0:
                raise ApplyError(f"{' '.join(argv[:4])}: {res.stderr.strip() or 'failed'}")

    def _remove_transparent_replies(self) -> None:
        for iptables in iptables_driver.installed(self.netns):
            text = transparent_cleanup(iptables.try_save("-t", "mangle") or "")
            if text:
                iptables.restore(text)
        while f"lookup {TPROXY_TABLE}" in self.netns.command(["ip", "-4", "rule", "show"], check=False).stdout:
            if self.netns.command(["ip", "-4", "rule", "del", "lookup", TPROXY_TABLE], check=False).returncode:
                break
        self.netns.command(["ip", "-4", "route", "flush", "table", TPROXY_TABLE], check=False)

    def inspect(self) -> Inspection:
        try:
            listeners, skipped = self.proxy.listeners_and_skipped()
        except ProxyControlError as exc:
            raise ApplyError(str(exc)) from None
        return Inspection(tuple(listeners), self._rules.inspect(), tuple(skipped))

    def cleanup(self) -> None:
        self.proxy.stop_daemon()
        self._applied = None
        try:
            self._rules.cleanup()
            self._remove_transparent_replies()
        except (OSError, subprocess.SubprocessError) as exc:
            raise ApplyError(f"cleanup: {exc}") from None

    def close(self) -> None:
        self.proxy.close()
