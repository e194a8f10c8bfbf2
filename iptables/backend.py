"""IptablesBackend: the kube-proxy iptables model applied with iptables-restore --noflush.

Kernel I/O lives only here; rendering (render.py) and restore text (restore.py) are pure.
All commands run inside the backend's network namespace (self.netns.command).

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

The xtables lock: restores run with `-w 5`. iptables-legacy-restore takes the lock only when -w
is given (then waits up to 5 s for it); iptables-nft-restore accepts and ignores -w. A restore
that still reports "holding the xtables lock" is retried (LOCK_RETRIES attempts).

Not done here: net.ipv4.ip_forward=1 is the node's (the lab's) job.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from kproxy.agent.backend import ApplyError, ApplyResult, Backend, BackendUnavailable
from kproxy.agent.state import ProxyState
from kproxy.netns import NetNS

from . import restore as restore_text
from .names import CANARY_RULE, KUBE_PROXY_CANARY, TABLES, is_owned_chain
from .render import render as render_ruleset
from .ruleset import JumpRule, RenderOptions, Ruleset
from .save import OwnedView, SavedTable, owned_view, parse_save

LOCK_WAIT_SECONDS = 5
FULL_SYNC_PERIOD = 3600.0  # kube-proxy's FullSyncPeriod
COMMAND_TIMEOUT_SECONDS = 1800  # iptables-nft-restore of ~100k chains takes many minutes
LOCK_RETRIES = 3
LOCK_MESSAGE = "holding the xtables lock"
_ERROR_LINE = re.compile(r"(?:Error occurred at line: (\d+))|(?:line (\d+) failed)")


@dataclass(frozen=True)
class Variant:
    """One iptables implementation: its three binaries."""

    name: str  # "nft" | "legacy"
    iptables: str
    save: str
    restore: str
    chains_per_commit: int | None = None  # see restore.py: None = one COMMIT per table

    def available(self) -> bool:
        return all(shutil.which(b) for b in (self.iptables, self.save, self.restore))


VARIANTS = {
    "nft": Variant("nft", "iptables-nft", "iptables-nft-save", "iptables-nft-restore", chains_per_commit=500),
    "legacy": Variant("legacy", "iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore"),
}


@dataclass(frozen=True)
class Inspection:
    """What the kernel holds of ours, from `iptables-save -c` (counters included)."""

    variant: str
    view: OwnedView


def _config_value(config: Any, name: str, default: Any) -> Any:
    section = getattr(config, "iptables", None)
    return getattr(section, name, default) if section is not None else default


def _version_at_least(text: str, want: tuple[int, ...]) -> bool:
    m = re.search(r"v(\d+)\.(\d+)\.(\d+)", text)
    return m is not None and tuple(int(x) for x in m.groups()) >= want


def _works(netns: NetNS, variant: Variant) -> bool:
    if not variant.available():
        return False
    try:
        return netns.command([variant.save, "-t", "filter"], check=False, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _holds_kube_chains(netns: NetNS, variant: Variant) -> bool:
    if not variant.available():
        return False
    out = netns.command([variant.save], check=False, timeout=60).stdout
    return ":KUBE-" in out


class IptablesBackend(Backend):
    name = "iptables"
    full_sync_period = FULL_SYNC_PERIOD

    def __init__(self, netns: Any, config: Any) -> None:
        super().__init__(netns if netns is not None else NetNS(None), config)
        self._variant: Variant | None = None
        self._options: RenderOptions | None = None
        self._sysctls_done = False

    # ------------------------------------------------------------------ probing

    @classmethod
    def probe(cls, netns: Any, config: Any = None) -> None:
        """Raises BackendUnavailable unless some iptables variant works in `netns`; with `config`,
        unless the configured one (iptables.backend) does."""
        netns = netns if netns is not None else NetNS(None)
        if config is not None:
            cls(netns, config).variant  # noqa: B018 (the property probes the configured variant)
            return
        if not any(_works(netns, v) for v in VARIANTS.values()):
            raise BackendUnavailable(
                "iptables mode needs iptables-nft-restore or iptables-legacy-restore working in "
                f"the namespace ({netns!r}); install the iptables package")

    @property
    def variant(self) -> Variant:
        """The chosen implementation: config iptables.backend nft | legacy | auto (auto: the one
        whose tables already hold KUBE-* chains, else nft)."""
        if self._variant is None:
            wanted = _config_value(self.config, "backend", "auto")
            variant: Variant | None
            if wanted in VARIANTS:
                variant = VARIANTS[wanted]
                if not _works(self.netns, variant):
                    raise BackendUnavailable(f"iptables backend {wanted!r}: {variant.restore} is not "
                                             "installed or does not work in the namespace")
            elif wanted == "auto":
                variant = next((v for v in (VARIANTS["legacy"], VARIANTS["nft"])
                                if _holds_kube_chains(self.netns, v)), None)
                if variant is None:
                    variant = next((v for v in (VARIANTS["nft"], VARIANTS["legacy"])
                                    if _works(self.netns, v)), None)
                if variant is None:
                    raise BackendUnavailable("neither iptables-nft nor iptables-legacy works in the namespace")
            else:
                raise BackendUnavailable(f"unknown iptables backend {wanted!r} (want nft, legacy or auto)")
            self._variant = variant
        return self._variant

    @property
    def options(self) -> RenderOptions:
        if self._options is None:
            version = self.netns.command([self.variant.iptables, "--version"], check=False).stdout
            self._options = RenderOptions(
                localhost_nodeports=bool(_config_value(self.config, "localhost_nodeports", True)),
                random_fully=_version_at_least(version, (1, 6, 2)),
            )
        return self._options

    # ------------------------------------------------------------------ render / apply

    def render(self, state: ProxyState, previous: Ruleset | None = None) -> Ruleset:
        return render_ruleset(state, previous, self.options)

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
            self._restore(text)
        if full:
            self._ensure_sysctls(ruleset.options)
        written = text.count("\n:") + text.startswith(":")
        return ApplyResult(full=full, objects_written=written,
                           detail=f"{self.variant.name}: {len(text.splitlines())} restore lines")

    def drifted(self) -> bool:
        """True when the canary chain or its rule is missing from filter or nat (see module doc)."""
        for table in TABLES:
            res = self._run([self.variant.iptables, "-w", str(LOCK_WAIT_SECONDS), "-t", table,
                             "-S", KUBE_PROXY_CANARY])
            if res.returncode != 0 or f"-A {KUBE_PROXY_CANARY} {CANARY_RULE}" not in res.stdout:
                return True
        return False

    def _save_tables(self) -> dict[str, SavedTable]:
        """The kernel's filter and nat tables, from one iptables-save of every table (only on full
        syncs; iptables-nft-save -t T costs about as much as a save of all tables, because it
        fetches the whole ruleset). A failed save raises ApplyError: guessing "empty" would
        re-insert existing jump rules."""
        res = self._run([self.variant.save])
        if res.returncode != 0:
            raise ApplyError(f"{self.variant.save}: {res.stderr.strip() or 'failed'}")
        return {name: table for name, table in parse_save(res.stdout).items() if name in TABLES}

    def _run(self, argv: list[str], text: str | None = None) -> subprocess.CompletedProcess:
        try:
            return self.netns.command(argv, input=text, check=False, timeout=COMMAND_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise ApplyError(f"{argv[0]} did not finish within {COMMAND_TIMEOUT_SECONDS}s") from None
        except OSError as exc:
            raise ApplyError(f"{argv[0]}: {exc.strerror or exc}") from None

    def _restore(self, text: str) -> None:
        argv = [self.variant.restore, "--noflush", "-w", str(LOCK_WAIT_SECONDS)]
        for attempt in range(LOCK_RETRIES):
            res = self._run(argv, text)
            if res.returncode == 0:
                return
            if LOCK_MESSAGE in res.stderr and attempt + 1 < LOCK_RETRIES:
                time.sleep(0.1 * (attempt + 1))
                continue
            raise ApplyError(describe_restore_error(self.variant.restore, text, res.stderr))

    def _ensure_sysctls(self, options: RenderOptions) -> None:
        if self._sysctls_done or not options.localhost_nodeports:
            return
        res = self.netns.command(["sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"], check=False)
        if res.returncode != 0:
            raise ApplyError(f"sysctl net.ipv4.conf.all.route_localnet=1: {res.stderr.strip()}")
        self._sysctls_done = True

    # ------------------------------------------------------------------ inspect / cleanup

    def inspect(self) -> Inspection:
        res = self._run([self.variant.save, "-c"])
        if res.returncode != 0:
            raise ApplyError(f"{self.variant.save}: {res.stderr.strip()}")
        return Inspection(self.variant.name, owned_view(parse_save(res.stdout)))

    def cleanup(self) -> None:
        for variant in VARIANTS.values():
            if not variant.available():
                continue
            res = self._run([variant.save])
            if res.returncode != 0:
                continue  # this variant cannot work here, so it holds nothing of ours
            text = cleanup_restore(owned_view(parse_save(res.stdout)))
            if not text:
                continue
            out = self._run([variant.restore, "--noflush", "-w", str(LOCK_WAIT_SECONDS)], text)
            if out.returncode != 0:
                raise ApplyError(describe_restore_error(variant.restore, text, out.stderr))


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


def describe_restore_error(binary: str, text: str, stderr: str) -> str:
    """One message: which input line failed, that line's text, and the tool's complaint."""
    lines = text.splitlines()
    reason = next((l.strip() for l in stderr.splitlines() if l.strip() and not l.startswith("Try `")), "")
    m = _ERROR_LINE.search(stderr)
    if m:
        number = int(m.group(1) or m.group(2))
        rule = lines[number - 1] if 0 < number <= len(lines) else "?"
        return f"{binary} failed at line {number} ({rule}): {reason}"
    return f"{binary} failed: {reason or stderr.strip() or 'no error output'}"
