"""ClusterIP and NodePort allocators.

The allocators keep their state in memory only; the stored Services are the source of truth.
At startup the apiserver rebuilds them from every stored Service (`rebuild`), so an address
can neither leak across a crash nor be handed out twice. All calls happen on the apiserver's
single registry thread, so no locking is needed here.

Guarantees: `allocate_next` never returns a value in use; `allocate` refuses values outside
the range (AllocationError.kind == "range") or in use ("taken"); `release` of a value not held
is a no-op.
"""
from __future__ import annotations

import ipaddress
import random
from typing import Iterable


class AllocationError(Exception):
    """A value could not be allocated. `kind` is "range", "taken" or "full"."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _IntRangeAllocator:
    """Allocates integers in [first, last] (inclusive). `allocate_next` only draws from
    [dynamic_first, last]; values below dynamic_first are given only when asked for."""

    def __init__(self, first: int, last: int, rng: random.Random | None = None, dynamic_first: int | None = None):
        if last < first:
            raise ValueError("empty allocation range")
        self.first = first
        self.last = last
        self.dynamic_first = first if dynamic_first is None else dynamic_first
        self.used: set[int] = set()
        self._dynamic_used = 0
        self._rng = rng or random.Random()

    @property
    def dynamic_size(self) -> int:
        return self.last - self.dynamic_first + 1

    def contains(self, value: int) -> bool:
        return self.first <= value <= self.last

    def _take(self, value: int) -> None:
        self.used.add(value)
        if value >= self.dynamic_first:
            self._dynamic_used += 1

    def allocate(self, value: int) -> None:
        if not self.contains(value):
            raise AllocationError("range", "not in range")
        if value in self.used:
            raise AllocationError("taken", "already allocated")
        self._take(value)

    def allocate_next(self) -> int:
        if self._dynamic_used >= self.dynamic_size:
            raise AllocationError("full", "range is full")
        lo, size = self.dynamic_first, self.dynamic_size
        # Random probing is O(1) while the range is sparse; a linear scan bounds the worst case.
        for _ in range(32):
            value = self._rng.randint(lo, self.last)
            if value not in self.used:
                self._take(value)
                return value
        start = self._rng.randint(lo, self.last)
        for offset in range(size):
            value = lo + (start - lo + offset) % size
            if value not in self.used:
                self._take(value)
                return value
        raise AllocationError("full", "range is full")

    def release(self, value: int) -> None:
        if value in self.used:
            self.used.discard(value)
            if value >= self.dynamic_first:
                self._dynamic_used -= 1

    def reset(self) -> None:
        self.used.clear()
        self._dynamic_used = 0


class ClusterIPAllocator:
    """Service ClusterIPs from a CIDR. The network address (and the broadcast address for
    IPv4) are never handed out; the first usable address is reserved for the `kubernetes`
    Service and only given when asked for explicitly."""

    def __init__(self, cidr: str, rng: random.Random | None = None):
        self.network = ipaddress.ip_network(cidr, strict=True)
        first = int(self.network.network_address) + 1
        last = int(self.network.broadcast_address) - (1 if self.network.version == 4 else 0)
        if self.network.num_addresses < 4:
            raise ValueError(f"service CIDR {cidr} is too small")
        # the first address is the `kubernetes` Service's, never handed out dynamically
        self._range = _IntRangeAllocator(first, last, rng, dynamic_first=first + 1)
        self.reserved = str(ipaddress.ip_address(first))

    @property
    def cidr(self) -> str:
        return str(self.network)

    def _out_of_range(self, ip: str) -> AllocationError:
        return AllocationError(
            "range", f"failed to allocate IP {ip}: provided IP is not in the valid range. "
                     f"The range of valid IPs is {self.network}")

    def allocate(self, ip: str) -> str:
        """Allocates exactly `ip`; raises AllocationError ("range" or "taken")."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise AllocationError("range", f"failed to allocate IP {ip}: not a valid IP address") from None
        if addr.version != self.network.version or addr not in self.network:
            raise self._out_of_range(ip)
        try:
            self._range.allocate(int(addr))
        except AllocationError as exc:
            if exc.kind == "taken":
                raise AllocationError("taken", f"failed to allocate IP {ip}: provided IP is already allocated") from None
            raise self._out_of_range(ip) from None
        return str(addr)

    def allocate_next(self) -> str:
        try:
            return str(ipaddress.ip_address(self._range.allocate_next()))
        except AllocationError:
            raise AllocationError("full", f"failed to allocate a serviceIP: range {self.network} is full") from None

    def release(self, ip: str) -> None:
        try:
            self._range.release(int(ipaddress.ip_address(ip)))
        except ValueError:
            pass

    def in_use(self, ip: str) -> bool:
        try:
            return int(ipaddress.ip_address(ip)) in self._range.used
        except ValueError:
            return False

    def rebuild(self, ips: Iterable[str]) -> list[str]:
        """Resets to exactly `ips` in use; returns those outside the range (ignored)."""
        self._range.reset()
        outside = []
        for ip in ips:
            try:
                self.allocate(ip)
            except AllocationError as exc:
                if exc.kind == "range":
                    outside.append(ip)
        return outside


class NodePortAllocator:
    """NodePorts from a "first-last" range such as 30000-32767."""

    def __init__(self, port_range: str, rng: random.Random | None = None):
        self.first, self.last = parse_port_range(port_range)
        self._range = _IntRangeAllocator(self.first, self.last, rng)

    @property
    def range_text(self) -> str:
        return f"{self.first}-{self.last}"

    def allocate(self, port: int) -> int:
        try:
            self._range.allocate(port)
        except AllocationError as exc:
            if exc.kind == "taken":
                raise AllocationError("taken", "provided port is already allocated") from None
            raise AllocationError(
                "range", f"provided port is not in the valid range. The range of valid ports is {self.range_text}") from None
        return port

    def allocate_next(self) -> int:
        try:
            return self._range.allocate_next()
        except AllocationError:
            raise AllocationError("full", f"range {self.range_text} is full") from None

    def release(self, port: int) -> None:
        self._range.release(port)

    def in_use(self, port: int) -> bool:
        return port in self._range.used

    def rebuild(self, ports: Iterable[int]) -> list[int]:
        self._range.reset()
        outside = []
        for port in ports:
            try:
                self.allocate(port)
            except AllocationError as exc:
                if exc.kind == "range":
                    outside.append(port)
        return outside


def parse_port_range(text: str) -> tuple[int, int]:
    """"30000-32767" -> (30000, 32767); a single port "N" means N-N. Raises ValueError."""
    parts = text.strip().split("-")
    try:
        if len(parts) == 1:
            first = last = int(parts[0])
        elif len(parts) == 2:
            first, last = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: want FIRST-LAST") from None
    if not (1 <= first <= last <= 65535):
        raise ValueError(f"invalid port range {text!r}: want 1 <= FIRST <= LAST <= 65535")
    return first, last
