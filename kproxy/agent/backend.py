"""The backend protocol every proxy mode implements, and the registry of modes.

A backend is split in two halves:
- `render(state, previous, changes)` is pure and deterministic: the same state gives the same
  ruleset. `previous` (the ruleset it rendered from the state before) and `changes` (the
  tracker's Changes since that state) only let it reuse the fragments of the ServicePorts that
  `changes` does not name, so that rendering one changed Service costs O(that Service); without
  them (or with full Changes) it renders everything. It never looks for what changed itself.
- `apply(ruleset, previous)` performs the kernel I/O in one transaction. `previous` is the
  ruleset the kernel is known to hold; None means "unknown": rewrite everything the backend owns
  (full sync, which also repairs drift). It never leaves a window where a live Service has no
  rules. On failure it raises ApplyError and the kernel keeps what it had before the call.
- `inspect()` reads back what the kernel holds (for `kproxy rules` and drift checks).
- `cleanup()` removes everything the backend ever added in its namespace, and nothing else.
- How often a full sync runs is the backend's call: `full_sync_period` None means every sync
  period (a cheap full sync: nftables, ipvs diff against the kernel over netlink); a number
  stretches full syncs to that many seconds, and then `drifted()`, run every sync period in
  between, must be cheap and report when the kernel lost what the backend wrote (iptables: a
  full restore costs seconds to minutes at scale, a canary chain costs milliseconds).

Backends run all kernel work inside `netns` (kproxy.netns.NetNS, typed as the protocol
kproxy.agent.protocols.Namespace): they call netns.run(fn, ...) or spawn commands from inside
it. They never talk to the apiserver. `config` is an AgentConfig (typed as BackendConfig; None:
its defaults), read as it is: config.py owns every default. `family` is the IP family (4 or 6)
the backend programs: it renders that family's view of the state (kproxy.agent.families); a mode
whose `families` lists both runs dual-stack through kproxy.agent.dualstack.
"""
from __future__ import annotations

import abc
import subprocess
from dataclasses import dataclass
from typing import Any, Callable

from kproxy import modes
from kproxy.agent.config import AgentConfig
from kproxy.agent.protocols import BackendConfig, Namespace
from kproxy.agent.state import Changes, ProxyState
from kproxy.netns import NetNS


class ApplyError(Exception):
    """The kernel refused a transaction; nothing of it took effect."""


class BackendUnavailable(Exception):
    """The kernel or the machine lacks what this mode needs (the message says what)."""


def run_command(netns: Namespace, argv: list[str], input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
    """`argv` run inside `netns` (NetNS.command, check=False: the caller reads the status);
    ApplyError when it cannot run at all (a missing binary) or does not finish within `timeout`."""
    try:
        return netns.command(argv, input=input, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ApplyError(f"{argv[0]} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise ApplyError(f"{argv[0]}: {exc.strerror or exc}") from None


@dataclass
class ApplyResult:
    """What one apply did, for metrics and logs."""

    full: bool
    objects_written: int = 0  # chains / map elements / virtual servers written
    detail: str = ""


class Backend(abc.ABC):
    name: str = ""
    full_sync_period: float | None = None  # seconds between full syncs; None: every sync period
    families: tuple[int, ...] = (4,)  # the IP families this mode can program

    def drifted(self) -> bool:
        """Cheap: True when the kernel no longer holds what the last apply wrote (someone flushed
        it), so the next sync must be full. Called between full syncs, in the backend's netns
        thread, only after a successful apply. Only backends with a full_sync_period need it."""
        return False

    def __init__(self, netns: Namespace | None, config: BackendConfig | None, family: int = 4) -> None:
        # None: the process's own namespace, the configuration's defaults
        self.netns: Namespace = netns if netns is not None else NetNS(None)
        self.config: BackendConfig = config if config is not None else AgentConfig()
        self.family = family

    @classmethod
    def probe(cls, netns: Namespace, config: BackendConfig | None = None) -> None:
        """Raises BackendUnavailable when this mode cannot work in `netns` (with `config`, when
        given: e.g. the configured iptables variant)."""

    @abc.abstractmethod
    def render(self, state: ProxyState, previous: Any | None = None, changes: Changes | None = None) -> Any:
        """Pure: the complete ruleset for `state` (see module doc for `previous` and `changes`)."""

    @abc.abstractmethod
    def apply(self, ruleset: Any, previous: Any | None) -> ApplyResult:
        """Makes the kernel hold `ruleset` (see module doc)."""

    @abc.abstractmethod
    def inspect(self) -> Any:
        """What the kernel holds now, in the backend's own structured form."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Removes everything this backend owns in its namespace."""

    def close(self) -> None:
        """Releases sockets and threads. Does not remove rules."""


_REGISTRY: dict[str, Callable[[], type[Backend]]] = {}


def register(name: str, loader: Callable[[], type[Backend]]) -> None:
    """Registers a mode under `name`; `loader` imports lazily so a mode's dependencies are
    only needed when it is chosen."""
    _REGISTRY[name] = loader


def get(name: str) -> type[Backend]:
    _ensure_builtin()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise BackendUnavailable(f"unknown mode {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    """Every registered mode, whether or not it can load here."""
    _ensure_builtin()
    return sorted(_REGISTRY)


def available() -> list[str]:
    """The registered modes whose implementation imports (not whether the kernel supports them:
    that is each backend's probe())."""
    result = []
    for name in names():
        try:
            get(name)
        except (ImportError, BackendUnavailable):
            continue
        result.append(name)
    return result


def _ensure_builtin() -> None:
    """Registers the modes of kproxy.modes (the one list of modes); each imports only when chosen."""
    import importlib

    for spec in modes.MODES:
        if spec.name in _REGISTRY:
            continue
        module, cls_name = spec.backend

        def _load(module: str = module, cls_name: str = cls_name) -> type[Backend]:
            return getattr(importlib.import_module(module), cls_name)

        register(spec.name, _load)
