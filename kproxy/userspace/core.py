"""The proxy's decisions without I/O: which endpoint a new connection or UDP flow goes to, which
one to try next after a refusal, and which UDP flows have gone idle or lost their endpoint.
The asyncio driver (proxy.py) only carries these decisions out; tests drive them directly.

Selection ("balancer"):
- "maglev" (default): a Maglev table over the listener's endpoints, keyed by the client's
  5-tuple, so the same flow maps to the same endpoint and a change of the endpoint set moves few.
- "roundrobin": the next endpoint in turn.
With ClientIP session affinity, either way, a client's endpoint is remembered and reused while
its last connection is younger than the timeout (refreshed by every connection, as kube-proxy's
`recent` match does); once it has been idle longer, the balancer chooses afresh.
Either way, a refused connect moves on to the next endpoint in a fixed order (each endpoint is
tried at most once), and terminating endpoints are only used when nothing else is left (the
plan already lists only usable ones).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Iterator

from kproxy import fastpath

BALANCERS = ("maglev", "roundrobin")
MAGLEV_TABLE_SIZE = 4099  # prime; per listener, so smaller than the 65537 default


@functools.lru_cache(maxsize=4096)  # one parse per endpoint, not one per connection
def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Connect:
    """Command: open a connection (or UDP socket) to `endpoint` ("ip:port")."""

    endpoint: str

    @property
    def host_port(self) -> tuple[str, int]:
        return _split(self.endpoint)


@dataclass(frozen=True)
class GiveUp:
    """Command: every endpoint refused (or there is none); reset the client."""

    tried: tuple[str, ...]


class Attempt:
    """One client's connection attempt: yields Connect commands in order until one succeeds.

    start() -> Connect | GiveUp; failed() -> the next Connect or GiveUp; succeeded() records the
    winner (for affinity). The order is `endpoints` rotated to start at index `first` (what
    Balancer.order() returns, without building the list per connection). Never yields the same
    endpoint twice."""

    __slots__ = ("_endpoints", "_first", "_i", "_on_success", "tried")

    def __init__(self, endpoints: tuple[str, ...], first: int = 0,
                 on_success: Callable[[str], None] | None = None) -> None:
        self._endpoints = endpoints
        self._first = first
        self._i = 0
        self._on_success = on_success
        self.tried: list[str] = []

    def start(self) -> Connect | GiveUp:
        return self._next()

    def failed(self) -> Connect | GiveUp:
        return self._next()

    def _next(self) -> Connect | GiveUp:
        n = len(self._endpoints)
        if self._i >= n:
            return GiveUp(tuple(self.tried))
        ep = self._endpoints[(self._first + self._i) % n]
        self._i += 1
        self.tried.append(ep)
        return Connect(ep)

    def succeeded(self) -> str:
        ep = self.tried[-1]
        if self._on_success is not None:
            self._on_success(ep)
        return ep


@dataclass
class Balancer:
    """Endpoint choice for one listener (see module doc). Rebuilt when the endpoints change."""

    endpoints: tuple[str, ...]
    affinity_timeout: int | None = None
    kind: str = "maglev"
    _maglev: fastpath.Maglev | None = field(default=None, init=False, repr=False)
    _maglev_first: tuple[int, ...] = field(default=(), init=False, repr=False)  # Maglev index -> ours
    _first_of: dict[str, int] = field(default_factory=dict, init=False, repr=False)  # name -> first index
    _next: int = field(default=0, init=False)
    _affinity: dict[str, tuple[str, float]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in BALANCERS:
            raise ValueError(f"unknown balancer {self.kind!r} (want {' or '.join(BALANCERS)})")
        self.endpoints = tuple(self.endpoints)
        for i, ep in enumerate(self.endpoints):
            self._first_of.setdefault(ep, i)
        if self.kind == "maglev" and self.endpoints:
            self._maglev = fastpath.Maglev(list(self.endpoints), size=MAGLEV_TABLE_SIZE)
            self._maglev_first = tuple(self._first_of[name] for name in self._maglev.names)

    def order(self, client_ip: str, client_port: int, local_ip: str, local_port: int, protocol: int,
              now: float) -> list[str]:
        """Every endpoint, the chosen one first, then the rest in a fixed rotation after it."""
        if not self.endpoints:
            return []
        i = self._first(client_ip, client_port, local_ip, local_port, protocol, now)
        return list(self.endpoints[i:] + self.endpoints[:i])

    def _first(self, client_ip: str, client_port: int, local_ip: str, local_port: int, protocol: int,
               now: float) -> int:
        """The index in `endpoints` of the chosen endpoint (its first occurrence)."""
        if self.affinity_timeout is not None:
            remembered = self._affinity.get(client_ip)
            if remembered and remembered[0] in self._first_of and now - remembered[1] <= self.affinity_timeout:
                return self._first_of[remembered[0]]
        if self._maglev is not None:
            key = fastpath.flow_record(client_ip, client_port, local_ip, local_port, protocol)
            return self._maglev_first[self._maglev.index(key)]
        ep = self.endpoints[self._next % len(self.endpoints)]
        self._next += 1
        return self._first_of[ep]

    def attempt(self, client_ip: str, client_port: int, local_ip: str, local_port: int, protocol: int,
                now: float) -> Attempt:
        """The Connect commands in order() for this connection."""
        if not self.endpoints:
            return Attempt(())
        first = self._first(client_ip, client_port, local_ip, local_port, protocol, now)
        if self.affinity_timeout is None:
            return Attempt(self.endpoints, first)
        return Attempt(self.endpoints, first, lambda ep: self.remember(client_ip, ep, now))

    def remember(self, client_ip: str, endpoint: str, now: float) -> None:
        """Records that `client_ip` was served by `endpoint` at `now` (ClientIP affinity only)."""
        if self.affinity_timeout is not None:
            self._affinity[client_ip] = (endpoint, now)

    def keep_affinity(self, old: "Balancer") -> None:
        """Takes over `old`'s remembered clients whose endpoint is still here (a listener's
        balancer is rebuilt when its endpoints change; a client stays with its endpoint)."""
        if self.affinity_timeout is not None and old.affinity_timeout is not None:
            kept = set(self.endpoints)
            self._affinity = {c: (ep, t) for c, (ep, t) in old._affinity.items() if ep in kept}

    def expire_affinity(self, now: float) -> None:
        """Forgets remembered clients whose affinity timed out."""
        if self.affinity_timeout is None:
            return
        for client, (_, seen) in list(self._affinity.items()):
            if now - seen > self.affinity_timeout:
                del self._affinity[client]


@dataclass
class UdpFlow:
    client: tuple[str, int]
    endpoint: str
    last_seen: float
    upstream: object = None  # the driver's socket/transport for this flow


class UdpFlows:
    """UDP flows of one listener, keyed by client address: a flow keeps its endpoint until it is
    idle for `idle_timeout` seconds or its endpoint leaves the listener (then the next datagram
    picks again, as a conntrack flush would). At most `max_flows` flows: the least recently used
    one is evicted to make room."""

    def __init__(self, idle_timeout: float, max_flows: int = 65536) -> None:
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        self._flows: dict[tuple[str, int], UdpFlow] = {}

    def __len__(self) -> int:
        return len(self._flows)

    def __iter__(self) -> Iterator[UdpFlow]:
        return iter(list(self._flows.values()))

    def get(self, client: tuple[str, int], now: float) -> UdpFlow | None:
        flow = self._flows.get(client)
        if flow is not None:
            flow.last_seen = now
            self._flows[client] = self._flows.pop(client)  # most recently used last
        return flow

    def add(self, client: tuple[str, int], endpoint: str, now: float, upstream: object = None) -> list[UdpFlow]:
        """Adds a flow; returns the flows evicted to stay within max_flows (to be closed)."""
        evicted = []
        while len(self._flows) >= self.max_flows:
            oldest = next(iter(self._flows))
            evicted.append(self._flows.pop(oldest))
        self._flows[client] = UdpFlow(client, endpoint, now, upstream)
        return evicted

    def remove(self, client: tuple[str, int]) -> UdpFlow | None:
        return self._flows.pop(client, None)

    def expire(self, now: float) -> list[UdpFlow]:
        """Removes and returns the flows idle longer than idle_timeout."""
        gone = [f for f in self._flows.values() if now - f.last_seen > self.idle_timeout]
        for f in gone:
            del self._flows[f.client]
        return gone

    def retain_endpoints(self, endpoints: set[str]) -> list[UdpFlow]:
        """Removes and returns the flows whose endpoint is not in `endpoints`."""
        gone = [f for f in self._flows.values() if f.endpoint not in endpoints]
        for f in gone:
            del self._flows[f.client]
        return gone
