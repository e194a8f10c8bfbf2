"""Which proxy mode a node's agent programmed, for `kproxy rules` without --mode.

First the agent itself: GET /proxyMode on its metrics address (as kube-proxy serves it), from
inside the node's namespace. When no agent answers, what the namespace holds, most specific
first (KERNEL_ORDER): ipvs and userspace mode also keep KUBE-SERVICES chains, so the iptables
chains alone only mean iptables mode when nothing else of ours is there. When nothing is found,
the iptables view, saying so.

decide() is pure; ask_agent() and kernel_findings() do the I/O, each in the given namespace, and
turn every failure into a note (the caller prints one line, never a traceback).
"""
from __future__ import annotations

import http.client
import subprocess
from dataclasses import dataclass
from typing import Any, Mapping

from kproxy import modes
from kproxy.agent.protocols import Namespace

MODES = modes.names()
KERNEL_ORDER = modes.detect_order()  # ModeSpec.detect_rank
DEFAULT_MODE = modes.DEFAULT
AGENT_TIMEOUT_SECONDS = 2.0
IPVS_DEVICE = "kube-ipvs0"


@dataclass(frozen=True)
class Detection:
    """The mode to read and how it was chosen. source: flag | lab | agent | kernel | default."""

    mode: str
    source: str
    reason: str

    def to_dict(self) -> dict:
        return {"mode": self.mode, "source": self.source, "reason": self.reason}

    def line(self) -> str:
        return f"reading {self.mode} mode: {self.reason}"


@dataclass(frozen=True)
class AgentAnswer:
    """What the agent's /proxyMode said at `address`: its body, or why there was none."""

    address: str
    body: str | None = None
    error: str = ""


def decide(agent: AgentAnswer | None, found: Mapping[str, str]) -> Detection:
    """The mode to read (pure). `agent`: the /proxyMode answer (None: not asked); `found`: mode ->
    what the namespace holds of it (see kernel_findings)."""
    notes = []
    if agent is not None:
        answer = (agent.body or "").strip()
        if agent.body is not None and answer in MODES:
            return Detection(answer, "agent", f"the agent's /proxyMode at {agent.address} answered {answer!r}")
        if agent.body is not None:
            notes.append(f"the agent at {agent.address} answered {answer[:40]!r}, not a mode")
        else:
            notes.append(f"no agent answered at {agent.address} ({agent.error or 'no answer'})")
    present = [m for m in KERNEL_ORDER if found.get(m)]
    if present:
        mode = present[0]
        also = [f"{m}: {found[m]}" for m in present[1:]]
        reason = f"the namespace holds {found[mode]}" + (f" (also {'; '.join(also)})" if also else "")
        return Detection(mode, "kernel", "; ".join(notes + [reason]))
    notes.append(f"no kproxy rules found in the namespace, showing the {DEFAULT_MODE} view")
    return Detection(DEFAULT_MODE, "default", "; ".join(notes))


def agent_address(metrics_bind_address: str) -> tuple[str, int] | None:
    """Where to reach the agent's metrics listener (host, port): a wildcard bind is reached on
    loopback. None when the listener is disabled ("")."""
    if not metrics_bind_address:
        return None
    from kproxy.agent.config import parse_bind_address

    host, port = parse_bind_address(metrics_bind_address)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port


def _get_proxy_mode(host: str, port: int, timeout: float) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/proxyMode")
        response = conn.getresponse()
        body = response.read(256).decode("utf-8", "replace")
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        return body
    finally:
        conn.close()


def ask_agent(netns: Namespace, metrics_bind_address: str,
              timeout: float = AGENT_TIMEOUT_SECONDS) -> AgentAnswer | None:
    """The agent's /proxyMode, asked from inside `netns` (None when the listener is disabled)."""
    try:
        where = agent_address(metrics_bind_address)
    except ValueError as exc:
        return AgentAnswer(metrics_bind_address, error=str(exc))
    if where is None:
        return None
    host, port = where
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        return AgentAnswer(address, body=netns.run(_get_proxy_mode, host, port, timeout))
    except (OSError, http.client.HTTPException) as exc:
        return AgentAnswer(address, error=getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)


# ------------------------------------------------------------------ the namespace's kernel state


def _nft_table() -> str:
    from kproxy.nftables import wire as w
    from kproxy.nftables.model import TABLE
    from kproxy.nftables.nlsocket import NftSocket

    sock = NftSocket()
    try:
        tables = [w.decode_string(a.get(w.TABLE_NAME, b"")) for a in sock.dump(w.MSG_GETTABLE)]
    finally:
        sock.close()
    return f"the nf_tables table {TABLE!r}" if TABLE in tables else ""


def _ipvs_virtual_servers() -> int:
    """Virtual servers in this thread's namespace (/proc/self/net follows the process's)."""
    try:
        with open("/proc/thread-self/net/ip_vs") as f:
            return sum(1 for line in f if line.split()[:1] and line.split()[0] in ("TCP", "UDP", "SCTP", "FWM"))
    except FileNotFoundError:
        return 0


def _userspace_proxy() -> str:
    import socket

    from kproxy.userspace.daemon import CONTROL_NAME

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(CONTROL_NAME)
    except OSError:
        return ""
    finally:
        s.close()
    return "the userspace proxy process"


def _iptables_chains(netns: Namespace) -> str:
    from kproxy.iptables import driver as iptables_driver

    held = [ipt.variant.iptables for ipt in iptables_driver.installed(netns)
            if ":KUBE-SERVICES " in (ipt.try_save("-t", "nat", timeout=60) or "")]
    return f"the KUBE-SERVICES chain in the nat table ({', '.join(held)})" if held else ""


def kernel_findings(netns: Namespace) -> tuple[dict[str, str], list[str]]:
    """(mode -> what `netns` holds of that mode, notes on checks that could not run)."""
    found: dict[str, str] = {}
    notes: list[str] = []

    def check(mode: str, probe: Any) -> None:
        try:
            evidence = probe()
        except (OSError, subprocess.SubprocessError) as exc:
            notes.append(f"{mode}: {getattr(exc, 'strerror', None) or exc}")
            return
        except Exception as exc:  # a check that crashes must not stop the others (as automode)
            notes.append(f"{mode}: {type(exc).__name__}: {exc}")
            return
        if evidence:
            found[mode] = evidence

    check("nftables", lambda: netns.run(_nft_table))

    def ipvs() -> str:
        if netns.command(["ip", "-o", "link", "show", "dev", IPVS_DEVICE], check=False).returncode == 0:
            return f"the {IPVS_DEVICE} interface"
        count = netns.run(_ipvs_virtual_servers)
        return f"IPVS virtual servers ({count})" if count else ""

    check("ipvs", ipvs)
    check("userspace", lambda: netns.run(_userspace_proxy))
    check("iptables", lambda: _iptables_chains(netns))
    return found, notes


def detect(netns: Namespace, metrics_bind_address: str) -> Detection:
    """The mode the agent of `netns` runs (see module doc)."""
    agent = ask_agent(netns, metrics_bind_address)
    if agent is not None and agent.body is not None and agent.body.strip() in MODES:
        return decide(agent, {})
    found, notes = kernel_findings(netns)
    detection = decide(agent, found)
    if notes and detection.source == "default":
        return Detection(detection.mode, detection.source, f"{detection.reason} (could not check {'; '.join(notes)})")
    return detection

