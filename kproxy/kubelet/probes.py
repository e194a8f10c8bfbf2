"""Probe state machines (pure) and the three probe actions (I/O).

A ProbeTracker follows one container's readiness, liveness or startup probe as kubelet's
prober worker does: nothing before initialDelaySeconds, then one probe every periodSeconds;
the result flips to failure after failureThreshold consecutive failures and to success after
successThreshold consecutive successes. Readiness and startup start as failure, liveness as
success; `gave_up` tells when kubelet would kill a container for its startup probe.
Defaults are upstream's: period 10 s, timeout 1 s, success 1, failure 3.
"""
from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from kproxy.netns import NetNS


@dataclass
class ProbeTracker:
    kind: str  # "readiness" | "liveness" | "startup"
    probe: Mapping[str, Any]
    started_at: float  # when the container started
    result: bool = field(init=False)
    next_at: float = field(init=False)
    _successes: int = 0
    _failures: int = 0

    def __post_init__(self) -> None:
        self.result = self.kind == "liveness"
        self.next_at = self.started_at + float(self.probe.get("initialDelaySeconds") or 0)

    @property
    def period(self) -> float:
        return float(self.probe.get("periodSeconds") or 10)

    @property
    def timeout(self) -> float:
        return float(self.probe.get("timeoutSeconds") or 1)

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def gave_up(self) -> bool:
        """A startup probe that failed failureThreshold times in a row before it ever succeeded."""
        return not self.result and self._failures >= int(self.probe.get("failureThreshold") or 3)

    def record(self, ok: bool, now: float) -> bool:
        """Counts one probe outcome at `now`; returns True when the result changed."""
        self.next_at = now + self.period
        if ok:
            self._successes, self._failures = self._successes + 1, 0
            threshold = int(self.probe.get("successThreshold") or 1)
            flip = not self.result and self._successes >= threshold
        else:
            self._failures, self._successes = self._failures + 1, 0
            threshold = int(self.probe.get("failureThreshold") or 3)
            flip = self.result and self._failures >= threshold
        if flip:
            self.result = ok
        return flip


def resolve_port(port: Any, container: Mapping[str, Any]) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        for p in container.get("ports") or ():
            if p.get("name") == port:
                return int(p.get("containerPort") or 0) or None
    return None


def run_probe(probe: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, node_ns: NetNS,
              exec_prefix: Sequence[str]) -> bool:
    """Runs one probe (blocking; call from a thread). tcpSocket and httpGet connect from the
    node's namespace to the pod's IP, as kubelet does; exec runs `exec_prefix + command`
    inside the pod. A probe that cannot run counts as a failure."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    if "exec" in probe:
        command = list((probe.get("exec") or {}).get("command") or [])
        if not command:
            return False
        try:
            done = subprocess.run([*exec_prefix, *command], capture_output=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0
    if "tcpSocket" in probe:
        port = resolve_port((probe.get("tcpSocket") or {}).get("port"), container)
        host = (probe.get("tcpSocket") or {}).get("host") or pod_ip
        return port is not None and node_ns.run(_tcp_connects, host, port, timeout)
    if "httpGet" in probe:
        get = probe.get("httpGet") or {}
        port = resolve_port(get.get("port"), container)
        if port is None:
            return False
        scheme = str(get.get("scheme") or "HTTP").lower()
        url = f"{scheme}://{get.get('host') or pod_ip}:{port}{get.get('path') or '/'}"
        headers = {h.get("name"): h.get("value") for h in get.get("httpHeaders") or () if h.get("name")}
        return node_ns.run(_http_ok, url, headers, timeout)
    return False


def _tcp_connects(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _http_ok(url: str, headers: dict, timeout: float) -> bool:
    """Success is a status in 200-399, as kubelet's HTTP prober judges it."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            return 200 <= resp.status < 400
    except urllib.error.HTTPError as exc:
        return 200 <= exc.code < 400
    except (OSError, ValueError):
        return False
