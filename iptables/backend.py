"""IptablesBackend: the kube-proxy iptables model applied with iptables-restore --noflush.

Kernel I/O lives only here; rendering (render.py) and restore text (restore.py) are pure.
All commands go through the iptables driver (driver.py), inside the backend's namespace.

Guarantees:
- apply(ruleset, None) is a full sync: it reads the kernel's filter and nat tables once, then in
  one restore writes every chain we own, deletes stale per-service chains and inserts (-I at the
  top) only the jump rules from built-in chains that are missing, so they are never duplicated;
  then it sets the sysctl the model needs
  (net.ipv4.conf.all.route_localnet=1 when localhost NodePorts are on). Applying the same
  ruleset twice leaves iptables-save identical.
- apply(ruleset, previous) writes only chains that differ from `previous`.
- Full syncs are due every FULL_SYNC_PERIOD (kube-proxy's one hour), not every sync period: a full
  restore costs seconds (legacy) to minutes (nft) at 10k Services. Between them, drifted() reads
  the KUBE-PROXY-CANARY chain that every full restore writes into filter and nat (one
  `iptables -S CHAIN` per table, milliseconds): when it or its rule is gone someone flushed or
  deleted our tables, and the proxier makes the next sync full.
- On failure apply raises ApplyError naming the failing restore line and its rule; iptables-restore
  commits nothing of the COMMIT section that fails, but earlier sections of the same input may
  already be committed (filter before nat; with iptables-nft, whose big tables are written in
  sections of Variant.chains_per_commit chains, earlier sections of the same table, each
  referencing only complete chains); the next full sync rewrites everything.
- cleanup() removes, for both iptables-nft and iptables-legacy, our jump rules and every chain we
  own (declared = flushed, then -X), in one restore per variant, and nothing else.

Variant choice, the xtables lock and restore error diagnosis: driver.py.

IPv6: a backend made with family=6 renders the state's IPv6 view with the same chain model and
writes it with ip6tables-restore (the same variant); localhost NodePorts are IPv4-only, as
upstream's. The agent runs one of each through kproxy.agent.dualstack.

Not done here: net.ipv4.ip_forward=1 is the node's (the lab's) job.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kproxy.agent.backend import ApplyError, ApplyResult, Backend, BackendUnavailable
from kproxy.agent.families import IPV4, family_view
from kproxy.agent.protocols import BackendConfig, Namespace
from kproxy.agent.state import Changes, ProxyState
from kproxy.netns import NetNS

from . import driver as iptables_driver
from . import restore as restore_text
from .driver import Iptables, Variant, variants
from .names import CANARY_RULE, KUBE_PROXY_CANARY, TABLES, is_owned_chain
from .render import render as render_ruleset
from .ruleset import JumpRule, RenderOptions, Ruleset
from .save import OwnedView, SavedTable, owned_view, parse_save

FULL_SYNC_PERIOD = 3600.0  # kube-proxy's FullSyncPeriod


@dataclass(frozen=True)
class Inspection:
    """What the kernel holds of ours, from `iptables-save -c` (counters included)."""

    variant: str
    view: OwnedView


def _version_at_least(text: str, want: tuple[int, ...]) -> bool:
    m = re.search(r"v(\d+)\.(\d+)\.(\d+)", text)
    return m is not None and tuple(int(x) for x in m.groups()) >= want


class IptablesBackend(Backend):
    name = "iptables"
    full_sync_period = FULL_SYNC_PERIOD
    families = (4, 6)

    def __init__(self, netns: Namespace | None, config: BackendConfig | None, family: int = IPV4) -> None:
        super().__init__(netns, config, family)
        self._driver: Iptables | None = None
        self._options: RenderOptions | None = None
        self._sysctls_done = False

    # ------------------------------------------------------------------ probing

    @classmethod
    def probe(cls, netns: Namespace | None, config: BackendConfig | None = None, family: int = IPV4) -> None:
        """Raises BackendUnavailable unless some iptables variant of `family` works in `netns`;
        with `config`, unless the configured one (iptables.backend) does."""
        netns = netns if netns is not None else NetNS(None)
        if config is not None:
            cls(netns, config, family).driver  # noqa: B018 (the property probes the configured variant)
            return
        if not any(Iptables(netns, v).works() for v in variants(family).values()):
            tool = "ip6tables" if family == 6 else "iptables"
            raise BackendUnavailable(
                f"iptables mode needs {tool}-nft-restore or {tool}-legacy-restore working in "
                f"the namespace ({netns!r}); install the iptables package")

    @property
    def driver(self) -> Iptables:
        """The chosen implementation's commands (config iptables.backend, see driver.choose)."""
        if self._driver is None:
            self._driver = iptables_driver.choose(self.netns, self.config.iptables.backend, self.family)
        return self._driver

    @property
    def variant(self) -> Variant:
        return self.driver.variant

    @property
    def options(self) -> RenderOptions:
        if self._options is None:
            self._options = RenderOptions(
                localhost_nodeports=self.config.iptables.localhost_nodeports and self.family == IPV4,
                random_fully=_version_at_least(self.driver.version(), (1, 6, 2)),
            )
        return self._options

    # ------------------------------------------------------------------ render / apply

    def render(self, state: ProxyState, previous: Ruleset | None = None,
               changes: Changes | None = None) -> Ruleset:
        return render_ruleset(family_view(state, self.family), previous, changes, self.options)

    def apply(self, ruleset: Ruleset, previous: Ruleset | None) -> ApplyResult:
        full = previous is None
        if previous is None:
            saved = self._save_tables()
            existing = {t: set(saved[t].chains) if t in saved else set() for t in TABLES}
            missing = [j for j in ruleset.jumps if not has_jump(saved, j)]
            text = restore_text.full_restore(ruleset, existing, missing, self.variant.chains_per_commit)
        else:
            text = restore_text.partial_restore(ruleset, previous, self.variant.chains_per_commit)
        if text:
            self.driver.restore(text)
        if full:
            self._ensure_sysctls(ruleset.options)
        written = text.count("\n:") + text.startswith(":")
        return ApplyResult(full=full, objects_written=written,
                           detail=f"{self.variant.name}: {len(text.splitlines())} restore lines")

    def drifted(self) -> bool:
        """True when the canary chain or its rule is missing from filter or nat (see module doc)."""
        for table in TABLES:
            res = self.driver.command(table, "-S", KUBE_PROXY_CANARY)
            if res.returncode != 0 or f"-A {KUBE_PROXY_CANARY} {CANARY_RULE}" not in res.stdout:
                return True
        return False

    def _save_tables(self) -> dict[str, SavedTable]:
        """The kernel's filter and nat tables, from one iptables-save of every table (only on full
        syncs; iptables-nft-save -t T costs about as much as a save of all tables, because it
        fetches the whole ruleset)."""
        return {name: table for name, table in parse_save(self.driver.save()).items() if name in TABLES}

    def _ensure_sysctls(self, options: RenderOptions) -> None:
        if self._sysctls_done or not options.localhost_nodeports:
            return
        res = self.netns.command(["sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"], check=False)
        if res.returncode != 0:
            raise ApplyError(f"sysctl net.ipv4.conf.all.route_localnet=1: {res.stderr.strip()}")
        self._sysctls_done = True

    # ------------------------------------------------------------------ inspect / cleanup

    def inspect(self) -> Inspection:
        return Inspection(self.variant.name, owned_view(parse_save(self.driver.save("-c"))))

    def cleanup(self) -> None:
        for driver in iptables_driver.installed(self.netns, self.family):
            saved = driver.try_save()
            if saved is None:
                continue  # this variant cannot work here, so it holds nothing of ours
            text = cleanup_restore(owned_view(parse_save(saved)))
            if text:
                driver.restore(text)


def has_jump(saved: dict[str, SavedTable], jump: JumpRule) -> bool:
    """True when the built-in chain already holds a rule with the jump's target and comment."""
    table = saved.get(jump.table)
    if table is None:
        return False
    return any(rule.target == jump.target and rule.comment == jump.comment
               for rule in table.rules.get(jump.chain, ()))


def cleanup_restore(view: OwnedView) -> str:
    """Restore text removing our jump rules and chains: declare (flush) every owned chain, delete
    the jump rules, then -X the chains. "" when nothing of ours is there."""
    out: list[str] = []
    for table in TABLES:
        chains = sorted(c for c in view.chains.get(table, {}) if is_owned_chain(table, c))
        jumps = [(chain, rule) for t, chain, rule in view.jumps if t == table]
        if not chains and not jumps:
            continue
        out.append(f"*{table}")
        out.extend(f":{c} - [0:0]" for c in chains)
        out.extend(f"-D {chain} {rule.text}" for chain, rule in jumps)
        out.extend(f"-X {c}" for c in chains)
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""
