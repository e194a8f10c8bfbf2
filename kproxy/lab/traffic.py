"""Traffic from inside a lab namespace: one TCP or UDP request to an echo pod and its answer.

Every failure is typed so a test can tell a rejected Service (Refused) from a black hole
(Timeout) and from a missing route (Unreachable). The socket is opened on the namespace's
thread (kproxy.netns.NetNS), so it lives in that namespace.
"""
from __future__ import annotations

import errno
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass

from kproxy.netns import NetNS

REQUEST = b"hello\n"


class TrafficError(Exception):
    """A request got no answer; subclasses say why."""


class Refused(TrafficError):
    """The connection was actively refused (TCP RST or ICMP port unreachable)."""


class Timeout(TrafficError):
    """No answer within the timeout (a silent drop)."""


class Unreachable(TrafficError):
    """ICMP host/network unreachable, or no route from the namespace."""


class Reset(TrafficError):
    """The connection was established and then reset before a full answer."""


@dataclass(frozen=True)
class Reply:
    """A parsed echo answer: which pod answered and which client address it saw."""

    pod: str
    client_ip: str
    client_port: int

    @classmethod
    def parse(cls, text: str) -> "Reply":
        try:
            pod, addr = text.strip().split(" ")
            ip, port = addr.rsplit(":", 1)
            return cls(pod, ip, int(port))
        except ValueError:
            raise TrafficError(f"not an echo answer: {text!r}") from None


def _classify(exc: OSError, what: str) -> TrafficError:
    if isinstance(exc, socket.timeout) or exc.errno in (errno.ETIMEDOUT, errno.EAGAIN):
        return Timeout(f"{what}: timed out")
    if exc.errno == errno.ECONNREFUSED:
        return Refused(f"{what}: connection refused")
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        return Unreachable(f"{what}: {exc.strerror}")
    if exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return Reset(f"{what}: {exc.strerror}")
    return TrafficError(f"{what}: {exc}")


def _family(ip: str) -> tuple[socket.AddressFamily, str]:
    """The socket family for `ip` and the wildcard address of that family."""
    return (socket.AF_INET6, "::") if ":" in ip else (socket.AF_INET, "0.0.0.0")


def _tcp(ip: str, port: int, timeout: float, source_port: int | None) -> str:
    what = f"tcp {ip}:{port}"
    family, anywhere = _family(ip)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((anywhere, source_port))
        sock.connect((ip, port))
        sock.sendall(REQUEST)
        chunks = []
        while True:
            data = sock.recv(4096)
            if not data:
                break
            chunks.append(data)
            if data.endswith(b"\n"):
                break
        text = b"".join(chunks).decode(errors="replace")
        if not text.endswith("\n"):
            raise Reset(f"{what}: closed after {len(text)} bytes without a full answer")
        return text
    except OSError as exc:
        raise _classify(exc, what) from None
    finally:
        sock.close()


def _udp(ip: str, port: int, timeout: float, source_port: int | None) -> str:
    what = f"udp {ip}:{port}"
    family, anywhere = _family(ip)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        if source_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((anywhere, source_port))
        # A connected socket reports ICMP errors (port unreachable -> ECONNREFUSED).
        sock.connect((ip, port))
        sock.send(REQUEST)
        return sock.recv(4096).decode(errors="replace")
    except OSError as exc:
        raise _classify(exc, what) from None
    finally:
        sock.close()


def _in(netns: NetNS | str | None, fn, *args):
    if isinstance(netns, NetNS):
        return netns.run(fn, *args)
    ns = NetNS(netns)
    try:
        return ns.run(fn, *args)
    finally:
        ns.close()


def tcp_request(netns: NetNS | str | None, ip: str, port: int, timeout: float = 2.0,
                source_port: int | None = None) -> str:
    """Connects from `netns` to ip:port, sends one line and returns the full answer line.
    Raises Refused, Timeout, Unreachable, Reset or TrafficError."""
    return _in(netns, _tcp, ip, port, timeout, source_port)


def udp_request(netns: NetNS | str | None, ip: str, port: int, source_port: int | None = None,
                timeout: float = 2.0) -> str:
    """Sends one datagram from `netns` (from `source_port` if given) and returns the answer.
    Raises Refused (ICMP port unreachable), Timeout, Unreachable or TrafficError."""
    return _in(netns, _udp, ip, port, timeout, source_port)


def tcp_reply(netns: NetNS | str | None, ip: str, port: int, timeout: float = 2.0) -> Reply:
    return Reply.parse(tcp_request(netns, ip, port, timeout))


def udp_reply(netns: NetNS | str | None, ip: str, port: int, source_port: int | None = None,
              timeout: float = 2.0) -> Reply:
    return Reply.parse(udp_request(netns, ip, port, source_port, timeout))


class ContinuousClient:
    """Sends TCP requests back to back from its own thread in `netns` (its own NetNS, so the
    caller can keep using its own), recording every answer and every failure."""

    def __init__(self, netns: str, ip: str, port: int, timeout: float = 2.5, pause: float = 0.01):
        self._ns = NetNS(netns)
        self.ip, self.port, self.timeout, self.pause = ip, port, timeout, pause
        self.answers: Counter = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="continuous-client", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers[tcp_reply(self._ns, self.ip, self.port, self.timeout).pod] += 1
            except TrafficError as exc:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {exc}")
            time.sleep(self.pause)

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failures)

    def __enter__(self) -> "ContinuousClient":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._ns.close()

    def wait_for_more(self, n: int, timeout: float = 60.0) -> None:
        """Waits until `n` more requests have completed (answered or failed); TimeoutError
        after `timeout` seconds."""
        target = self.total + n
        deadline = time.monotonic() + timeout
        while self.total < target:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{n} more requests from the continuous client within {timeout:g}s "
                                   f"(got {n - (target - self.total)})")
            time.sleep(0.05)

