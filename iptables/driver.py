"""The one iptables driver: which implementation (iptables-nft or iptables-legacy) to use, and
its commands inside a network namespace. The iptables, ipvs and userspace backends and
`kproxy rules` use it; nothing else spawns iptables, iptables-save or iptables-restore.

- Namespace-correct: every command goes through NetNS.command, so it runs inside the namespace
  from any thread (directly when already on the namespace's thread).
- choose(netns, wanted): the configured variant (nft | legacy, checked to work) or, for "auto",
  the one whose tables already hold KUBE-* chains (legacy first), else the first that works
  (nft first). installed(netns): every variant whose binaries exist (cleanup, detection).
- Iptables.restore(text) writes with `--noflush -w 5`: iptables-legacy-restore takes the xtables
  lock only when -w is given (then waits up to 5 s for it); iptables-nft-restore accepts and
  ignores -w. A restore that still reports "holding the xtables lock" is retried (LOCK_RETRIES
  attempts); any other failure raises ApplyError naming the failing input line and its text.
- Failures to run at all (missing binary, timeout) raise ApplyError, never a traceback.
- Per IP family: VARIANTS are iptables', VARIANTS6 ip6tables' (the same tools for IPv6 tables);
  choose() and installed() take the family, 4 by default.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass

from kproxy.agent.backend import ApplyError, BackendUnavailable, run_command
from kproxy.agent.protocols import Namespace

LOCK_WAIT_SECONDS = 5
LOCK_RETRIES = 3
LOCK_MESSAGE = "holding the xtables lock"
COMMAND_TIMEOUT_SECONDS = 1800  # iptables-nft-restore of ~100k chains takes many minutes
PROBE_TIMEOUT_SECONDS = 30
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
VARIANTS6 = {
    "nft": Variant("nft", "ip6tables-nft", "ip6tables-nft-save", "ip6tables-nft-restore", chains_per_commit=500),
    "legacy": Variant("legacy", "ip6tables-legacy", "ip6tables-legacy-save", "ip6tables-legacy-restore"),
}


def variants(family: int = 4) -> dict[str, Variant]:
    """The variants programming `family`'s tables (iptables for 4, ip6tables for 6)."""
    return VARIANTS6 if family == 6 else VARIANTS


class Iptables:
    """One variant's commands in one network namespace (kproxy.netns.NetNS)."""

    def __init__(self, netns: Namespace, variant: Variant) -> None:
        self.netns = netns
        self.variant = variant

    def __repr__(self) -> str:
        return f"Iptables({self.variant.name}, {self.netns!r})"

    def run(self, argv: list[str], input: str | None = None,
            timeout: float = COMMAND_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
        """argv in the namespace (check=False); ApplyError when it cannot run or times out."""
        return run_command(self.netns, argv, input, timeout)

    def command(self, table: str, *args: str) -> subprocess.CompletedProcess:
        """`iptables -w 5 -t table args...` (check=False: -C and -D loops read the status)."""
        return self.run([self.variant.iptables, "-w", str(LOCK_WAIT_SECONDS), "-t", table, *args])

    def must(self, table: str, *args: str) -> str:
        """command(), raising ApplyError with the tool's complaint when it fails."""
        res = self.command(table, *args)
        if res.returncode != 0:
            raise ApplyError(f"{self.variant.iptables} -t {table} {' '.join(args[:2])}: "
                             f"{res.stderr.strip() or 'failed'}")
        return res.stdout

    def try_save(self, *args: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> str | None:
        """iptables-save output (args: e.g. "-t", "nat" or "-c"), or None when the save fails
        (the variant cannot work here, so it holds nothing)."""
        res = self.run([self.variant.save, *args], timeout=timeout)
        return res.stdout if res.returncode == 0 else None

    def save(self, *args: str) -> str:
        """iptables-save output; a failed save raises ApplyError (guessing "empty" would make
        callers re-insert rules that exist)."""
        res = self.run([self.variant.save, *args])
        if res.returncode != 0:
            raise ApplyError(f"{self.variant.save}: {res.stderr.strip() or 'failed'}")
        return res.stdout

    def restore(self, text: str) -> None:
        """iptables-restore --noflush of `text`, retried while another writer holds the lock."""
        argv = [self.variant.restore, "--noflush", "-w", str(LOCK_WAIT_SECONDS)]
        for attempt in range(LOCK_RETRIES):
            res = self.run(argv, text)
            if res.returncode == 0:
                return
            if LOCK_MESSAGE in res.stderr and attempt + 1 < LOCK_RETRIES:
                time.sleep(0.1 * (attempt + 1))
                continue
            raise ApplyError(describe_restore_error(self.variant.restore, text, res.stderr))

    def version(self) -> str:
        """`iptables --version` output ("" when it fails)."""
        return self.run([self.variant.iptables, "--version"]).stdout

    def works(self) -> bool:
        """True when the binaries exist and can read a table in this namespace."""
        if not self.variant.available():
            return False
        try:
            return self.try_save("-t", "filter", timeout=PROBE_TIMEOUT_SECONDS) is not None
        except ApplyError:
            return False

    def holds_kube_chains(self) -> bool:
        if not self.variant.available():
            return False
        return ":KUBE-" in (self.try_save(timeout=2 * PROBE_TIMEOUT_SECONDS) or "")


def choose(netns: Namespace, wanted: str, family: int = 4) -> Iptables:
    """The driver of `family` for config iptables.backend `wanted` (nft | legacy | auto, see the
    module doc); BackendUnavailable when it does not work here or `wanted` is unknown."""
    known = variants(family)
    if wanted in known:
        driver = Iptables(netns, known[wanted])
        if not driver.works():
            raise BackendUnavailable(f"iptables backend {wanted!r}: {driver.variant.restore} is not "
                                     "installed or does not work in the namespace")
        return driver
    if wanted != "auto":
        raise BackendUnavailable(f"unknown iptables backend {wanted!r} (want nft, legacy or auto)")
    drivers = {name: Iptables(netns, v) for name, v in known.items()}
    chosen = next((drivers[n] for n in ("legacy", "nft") if drivers[n].holds_kube_chains()), None)
    chosen = chosen or next((drivers[n] for n in ("nft", "legacy") if drivers[n].works()), None)
    if chosen is None:
        tool = known["nft"].iptables.split("-")[0]
        raise BackendUnavailable(f"neither {tool}-nft nor {tool}-legacy works in the namespace")
    return chosen


def installed(netns: Namespace, family: int = 4) -> list[Iptables]:
    """A driver per variant of `family` whose binaries exist (cleanup and detection look at each)."""
    return [Iptables(netns, v) for v in variants(family).values() if v.available()]


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
