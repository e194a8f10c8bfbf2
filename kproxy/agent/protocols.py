"""What backends and the agent's parts need of a network namespace and of the configuration,
as typing Protocols: kproxy.netns.NetNS and kproxy.agent.config.AgentConfig satisfy them, and so
can a test's own stand-in. Only the members used are listed; the defaults live in config.py."""
from __future__ import annotations

import subprocess
from typing import Any, Callable, Protocol, Sequence, TypeVar

T = TypeVar("T")


class Namespace(Protocol):
    """A network namespace to run work in (kproxy.netns.NetNS)."""

    @property
    def name(self) -> str | None: ...

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    async def arun(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    def command(self, argv: Sequence[str], input: bytes | str | None = None, check: bool = True,
                timeout: float | None = 120) -> subprocess.CompletedProcess: ...

    def close(self) -> None: ...


class IptablesSettings(Protocol):
    @property
    def backend(self) -> str: ...  # nft | legacy | auto

    @property
    def localhost_nodeports(self) -> bool: ...


class NftablesSettings(Protocol):
    @property
    def endpoint_selection(self) -> str: ...  # random | maglev


class UserspaceSettings(Protocol):
    @property
    def balancer(self) -> str: ...  # maglev | roundrobin

    @property
    def udp_idle_timeout(self) -> float: ...


class IpvsSettings(Protocol):
    @property
    def scheduler(self) -> str: ...  # "": rr


class BackendConfig(Protocol):
    """The sections of an AgentConfig that backends read."""

    @property
    def iptables(self) -> IptablesSettings: ...

    @property
    def nftables(self) -> NftablesSettings: ...

    @property
    def userspace(self) -> UserspaceSettings: ...

    @property
    def ipvs(self) -> IpvsSettings: ...
