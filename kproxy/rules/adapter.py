"""The adapter protocol: how a proxy mode plugs into `kproxy rules`.

Each mode provides one ModeAdapter (registered here by mode name, imported lazily). The CLI
does the kernel I/O through the mode's own Backend (`backend.inspect()`, `backend.render()`);
an adapter is pure: it only turns those results into the shared model.

    class ModeAdapter(Protocol):
        mode: str
        def from_inspection(self, inspection, node: str) -> NodeRules
            # backend.inspect() -> the model, with the kernel's counters
        def from_ruleset(self, ruleset, node: str) -> NodeRules
            # backend.render(state) -> the model (counters 0); its KernelObject keys must equal
            # those from_inspection gives for the same objects read back from the kernel, so
            # that `kproxy rules diff` compares like with like
        def trace(self, inspection, probe: Probe, local_addresses: Sequence[str]) -> TraceReport
            # the path a new connection's first packet takes through what the kernel holds

Registering a mode: add it to ADAPTERS ("mode" -> ("module", "Class")), or call register().
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol, Sequence

from .model import NodeRules
from .trace import Probe, TraceReport


class ModeAdapter(Protocol):
    mode: str

    def from_inspection(self, inspection: Any, node: str) -> NodeRules: ...

    def from_ruleset(self, ruleset: Any, node: str) -> NodeRules: ...

    def trace(self, inspection: Any, probe: Probe, local_addresses: Sequence[str]) -> TraceReport: ...


class NoAdapter(LookupError):
    """`kproxy rules` cannot explain this mode yet."""


ADAPTERS: dict[str, tuple[str, str]] = {
    "iptables": ("kproxy.rules.iptables", "IptablesAdapter"),
}


def adapter_for(mode: str, registry: dict[str, tuple[str, str]] | None = None) -> ModeAdapter:
    """A fresh adapter for `mode`; NoAdapter names the modes that have one."""
    table = ADAPTERS if registry is None else registry
    try:
        module, cls_name = table[mode]
    except KeyError:
        raise NoAdapter(f"no rules adapter for mode {mode!r} (have: {', '.join(sorted(table))})") from None
    factory: Callable[[], ModeAdapter] = getattr(importlib.import_module(module), cls_name)
    return factory()


def register(mode: str, module: str, cls_name: str) -> None:
    """Adds (or replaces) the adapter of `mode`."""
    ADAPTERS[mode] = (module, cls_name)
