"""Traffic probes and kernel readers shared by the e2e scenarios.

Every wait is a bounded poll: it returns as soon as the traffic shows what is expected and
fails with the last observation when the deadline passes. No sleep is ever an assertion.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from kproxy import modes
from kproxy.lab import traffic
from kproxy.lab.traffic import Reply, TrafficError
from kproxy.netns import NetNS


@dataclass
class Sample:
    """What `n` requests saw: answers per pod, the failures, and the client addresses pods saw."""

    pods: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    client_ips: set[str] = field(default_factory=set)
    errors: Counter = field(default_factory=Counter)  # failure class name -> count

    @property
    def seen(self) -> set[str]:
        return set(self.pods)

    def __str__(self) -> str:
        return f"pods={dict(self.pods)} failures={len(self.failures)} {dict(self.errors)} {self.failures[:2]}"


# Long enough for one SYN retransmission (1 s) on a loaded machine, short enough that a black
# hole is seen quickly. The IPVS VM (software emulation: a Python start there takes seconds of
# both CPUs) sets KPROXY_E2E_REQUEST_TIMEOUT longer: a request was seen to wait 2.5 s there
# while a restarted agent was importing, with nothing changed in the kernel.
REQUEST_TIMEOUT = float(os.environ.get("KPROXY_E2E_REQUEST_TIMEOUT", "2.5"))


def request(netns: NetNS, ip: str, port: int, proto: str = "tcp", timeout: float = REQUEST_TIMEOUT,
            source_port: int | None = None) -> Reply:
    if proto == "tcp":
        return traffic.tcp_reply(netns, ip, port, timeout)
    return traffic.udp_reply(netns, ip, port, source_port=source_port, timeout=timeout)


def sample(netns: NetNS, ip: str, port: int, n: int, proto: str = "tcp", timeout: float = REQUEST_TIMEOUT,
           stop_on_failure: bool = False) -> Sample:
    """`n` requests, one after the other (stopping at the first failure if asked)."""
    s = Sample()
    for _ in range(n):
        try:
            r = request(netns, ip, port, proto, timeout)
        except TrafficError as exc:
            s.failures.append(str(exc))
            s.errors[type(exc).__name__] += 1
            if stop_on_failure:
                break
            continue
        s.pods[r.pod] += 1
        s.client_ips.add(r.client_ip)
    return s


def wait_for_pods(netns: NetNS, ip: str, port: int, expected: set[str], proto: str = "tcp",
                  timeout: float = 60.0, n: int = 30) -> Sample:
    """Polls samples of `n` requests until one is answered by exactly `expected` (every pod seen,
    no other pod, no failure). Returns that sample; AssertionError with the last one otherwise."""
    deadline = time.monotonic() + timeout
    last = Sample()
    while True:
        last = sample(netns, ip, port, n, proto, stop_on_failure=True)
        if last.seen == expected and not last.failures:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{proto} {ip}:{port}: wanted exactly {sorted(expected)} within {timeout:g}s; last sample {last}")
        time.sleep(0.2)


def wait_for_error(netns: NetNS, ip: str, port: int, error: type[TrafficError], proto: str = "tcp",
                   timeout: float = 60.0) -> TrafficError:
    """Polls single requests until one fails with `error`; returns that error."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = request(netns, ip, port, proto)
        except error as exc:
            return exc
        except TrafficError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{proto} {ip}:{port}: wanted {error.__name__} within {timeout:g}s; last: {last!r}")
        time.sleep(0.2)


def poll(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # a probe that fails means "not yet"
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class ContinuousClient(traffic.ContinuousClient):
    """kproxy.lab.traffic.ContinuousClient with the suite's request timeout."""

    def __init__(self, netns: str, ip: str, port: int, timeout: float = REQUEST_TIMEOUT, pause: float = 0.01):
        super().__init__(netns, ip, port, timeout, pause)


# -- iptables in a namespace ------------------------------------------------------------------

IPTABLES_FLAVORS = ("nft", "legacy")


def iptables_save(netns: str, flavor: str, table: str = "nat") -> str:
    out = subprocess.run(["ip", "netns", "exec", netns, f"iptables-{flavor}-save", "-t", table],
                         capture_output=True, text=True, timeout=60)
    return out.stdout if out.returncode == 0 else ""


def agent_flavor(netns: str) -> str:
    """Which iptables backend (nft or legacy) holds kproxy's KUBE-SERVICES chain in `netns`."""
    for flavor in IPTABLES_FLAVORS:
        if ":KUBE-SERVICES" in iptables_save(netns, flavor):
            return flavor
    raise AssertionError(f"no KUBE-SERVICES chain in {netns} (nft or legacy)")


def normalized_ruleset(netns: str) -> dict[str, list[str]]:
    """Every table of both backends without comments, counters and empty tables (a table
    holding only built-in chains with policy ACCEPT and no rule): comparable snapshots."""
    result = {}
    for flavor in IPTABLES_FLAVORS:
        out = subprocess.run(["ip", "netns", "exec", netns, f"iptables-{flavor}-save"],
                             capture_output=True, text=True, timeout=60).stdout
        lines: list[str] = []
        table: list[str] = []
        for line in out.splitlines():
            if not line or line.startswith("#"):
                continue
            if line.startswith(":"):
                line = line.split(" [", 1)[0]  # drop the [packets:bytes] counters
            table.append(line)
            if line == "COMMIT":
                empty = all(l.startswith("*") or l == "COMMIT" or (l.startswith(":") and l.endswith(" ACCEPT"))
                            for l in table)
                if not empty:
                    lines.extend(table)
                table = []
        result[flavor] = lines
    return result


class IptablesProbe:
    """How the scenarios look at and break an iptables-mode node. Each mode has one such probe
    (a later mode adds its own to PROBES): the scenarios stay the same for every mode."""

    def rules_text(self, netns: str) -> str:
        """Every rule kproxy holds in `netns`, as text that contains the Service IPs."""
        flavor = agent_flavor(netns)
        return iptables_save(netns, flavor, "nat") + iptables_save(netns, flavor, "filter")

    def break_dispatch(self, netns: str) -> None:
        """Flushes the nat table by hand (an admin's `iptables -t nat -F`) and checks that the
        Service dispatch is gone. A flushed table is what the agent detects between its hourly
        full syncs (its canary chain); one chain edited by hand waits for the next full sync, as
        with kube-proxy."""
        flavor = agent_flavor(netns)
        out = subprocess.run(
            ["ip", "netns", "exec", netns, "sh", "-c",
             f"iptables-{flavor} -w -t nat -F && iptables-{flavor} -w -t nat -S KUBE-SERVICES"],
            capture_output=True, text=True, check=True).stdout
        assert out.strip() == "-N KUBE-SERVICES", out

    def seed_user_rules(self, netns: str) -> None:
        """Rules that are not kproxy's, in both backends: cleanup must leave them."""
        for flavor in IPTABLES_FLAVORS:
            for rule in (["-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT"],
                         ["-t", "nat", "-A", "POSTROUTING", "-s", "10.9.9.0/24", "-j", "MASQUERADE"],
                         ["-t", "filter", "-N", "USER-CHAIN"]):
                subprocess.run(["ip", "netns", "exec", netns, f"iptables-{flavor}", "-w", *rule],
                               check=True, capture_output=True)

    def has_kproxy_rules(self, netns: str) -> bool:
        try:
            agent_flavor(netns)
        except AssertionError:
            return False
        return True

    def snapshot(self, netns: str) -> object:
        return normalized_ruleset(netns)


def nft(netns: str, *args: str, check: bool = True) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "nft", *args], capture_output=True, text=True,
                          check=check).stdout


class NftablesProbe:
    """nftables mode: everything kproxy holds is the private table `ip kproxy`."""

    def rules_text(self, netns: str) -> str:
        return nft(netns, "list", "table", "ip", "kproxy", check=False)

    def break_dispatch(self, netns: str) -> None:
        nft(netns, "flush", "map", "ip", "kproxy", "service-ips")
        assert "elements" not in nft(netns, "list", "map", "ip", "kproxy", "service-ips")

    def seed_user_rules(self, netns: str) -> None:
        """Another owner's nft table and an iptables-nft rule: cleanup must leave both."""
        subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], check=True, capture_output=True, text=True,
                       input="table ip user {\n chain input {\n  type filter hook input priority 0;\n"
                             "  tcp dport 9999 accept\n }\n}\n")
        subprocess.run(["ip", "netns", "exec", netns, "iptables-nft", "-w", "-t", "nat", "-A", "POSTROUTING",
                        "-s", "10.9.9.0/24", "-j", "MASQUERADE"], check=True, capture_output=True)

    def has_kproxy_rules(self, netns: str) -> bool:
        return "table ip kproxy" in self.rules_text(netns)

    def snapshot(self, netns: str) -> object:
        return nft(netns, "list", "ruleset")


# mode -> the scenario suite's kernel probe (ModeSpec.e2e_probe), made on first use: a mode's
# probe may live in another test package (ipvs: tests/vm/ipvs_probe.py, which imports this one).
PROBES: dict[str, object] = {}
# The modes the scenario suite runs on this host's kernel (the others run in the VM).
HOST_MODES = tuple(spec.name for spec in modes.MODES if not spec.needs_vm)


def probe_for(mode: str):
    if mode not in PROBES:
        spec = modes.spec(mode)
        if spec is None:
            raise AssertionError(f"no kernel probe for mode {mode!r}: it has no ModeSpec in kproxy/modes.py")
        module, cls_name = spec.e2e_probe
        PROBES[mode] = getattr(importlib.import_module(module), cls_name)()
    return PROBES[mode]
