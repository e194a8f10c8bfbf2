"""The KubeProxyConfiguration `conntrack` section applied to the kernel, as kube-proxy does.

`plan_conntrack()` is pure: it turns the configuration and the CPU count into the sysctl values
to write; `apply_plan()` is the thin executor, run on the agent's namespace thread (the
net.netfilter sysctls under /proc/sys/net belong to the namespace of the thread that opens them).

kube-proxy's rules, kept here:
- nf_conntrack_max = max(maxPerCore * cores, min), only when maxPerCore > 0.
- the conntrack hash table gets max/4 buckets, written to the nf_conntrack module parameter
  `hashsize` only when it is smaller. That parameter is global and the kernel refuses writes
  from outside the initial network namespace, so it is skipped there (with a reason).
- each timeout is written only when it is > 0; tcp_be_liberal only when true.
- a value already in place is not written again.
nf_conntrack_max is per namespace only on kernels that make it writable outside the initial
namespace; where it is read-only the outcome says so and the agent logs it.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Any

SYSCTL_ROOT = "/proc/sys"
HASHSIZE_PATH = "/sys/module/nf_conntrack/parameters/hashsize"
CONNTRACK_MAX = "net/netfilter/nf_conntrack_max"
TIMEOUT_SYSCTLS = (  # ConntrackConfig field -> sysctl (seconds)
    ("tcp_established_timeout", "net/netfilter/nf_conntrack_tcp_timeout_established"),
    ("tcp_close_wait_timeout", "net/netfilter/nf_conntrack_tcp_timeout_close_wait"),
    ("udp_timeout", "net/netfilter/nf_conntrack_udp_timeout"),
    ("udp_stream_timeout", "net/netfilter/nf_conntrack_udp_timeout_stream"),
)
TCP_BE_LIBERAL = "net/netfilter/nf_conntrack_tcp_be_liberal"


@dataclass(frozen=True)
class ConntrackPlan:
    """Sysctls to set (name under /proc/sys, value) in order, and the smallest hashsize wanted
    (None: leave it)."""

    sysctls: tuple[tuple[str, int], ...]
    hashsize: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one setting: "set", "unchanged", "read-only", "missing" (the kernel
    has no such sysctl here, e.g. nf_conntrack not loaded), "skipped" or "failed"."""

    name: str
    value: int
    status: str
    detail: str = ""

    def describe(self) -> str:
        text = f"{self.name} = {self.value}: {self.status}"
        return f"{text} ({self.detail})" if self.detail else text


def cpu_count() -> int:
    """CPUs this process may run on (kube-proxy scales the conntrack limit by them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def plan_conntrack(config: Any, cores: int) -> ConntrackPlan:
    """The settings kube-proxy applies for ConntrackConfig `config` on a node with `cores` CPUs."""
    sysctls: list[tuple[str, int]] = []
    hashsize = None
    if config.max_per_core > 0:
        limit = max(config.max_per_core * cores, config.min)
        sysctls.append((CONNTRACK_MAX, limit))
        hashsize = limit // 4
    for attr, name in TIMEOUT_SYSCTLS:
        seconds = int(getattr(config, attr))
        if seconds > 0:
            sysctls.append((name, seconds))
    if config.tcp_be_liberal:
        sysctls.append((TCP_BE_LIBERAL, 1))
    return ConntrackPlan(tuple(sysctls), hashsize)


def in_initial_netns() -> bool:
    """Whether the calling thread is in the initial network namespace (that of pid 1)."""
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return False


def _read_int(path: str) -> int:
    with open(path, encoding="ascii") as f:
        return int(f.read().split()[0])


def _write(name: str, path: str, value: int) -> Outcome:
    try:
        if _read_int(path) == value:
            return Outcome(name, value, "unchanged")
        with open(path, "w", encoding="ascii") as f:
            f.write(str(value))
    except FileNotFoundError:
        return Outcome(name, value, "missing", "the kernel has no such setting here")
    except PermissionError:
        return Outcome(name, value, "read-only", "the kernel does not let it be set in this network namespace")
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return Outcome(name, value, "read-only", "read-only file system")
        return Outcome(name, value, "failed", exc.strerror or str(exc))
    return Outcome(name, value, "set")


def apply_plan(plan: ConntrackPlan) -> list[Outcome]:
    """Applies `plan` in the calling thread's network namespace; one Outcome per setting,
    never raising for a setting the kernel refuses."""
    outcomes = [_write(name, os.path.join(SYSCTL_ROOT, name), value) for name, value in plan.sysctls]
    if plan.hashsize is not None:
        name = "nf_conntrack hashsize"
        if not in_initial_netns():
            outcomes.append(Outcome(name, plan.hashsize, "skipped",
                                    "a global module parameter; the kernel refuses it outside the initial "
                                    "network namespace"))
        else:
            try:
                current = _read_int(HASHSIZE_PATH)
            except OSError as exc:
                outcomes.append(Outcome(name, plan.hashsize, "missing", exc.strerror or str(exc)))
            else:
                if current >= plan.hashsize:
                    outcomes.append(Outcome(name, plan.hashsize, "unchanged", f"already {current}"))
                else:
                    outcomes.append(_write(name, HASHSIZE_PATH, plan.hashsize))
    return outcomes
