"""The adapter protocol: how a proxy mode plugs into `kproxy rules`.

Each mode provides one ModeAdapter (registered here by mode name, imported lazily). The CLI
does the kernel I/O through the mode's own Backend (`backend.inspect()`, `backend.render()`);
an adapter is pure: it only turns those results into the shared model.

    class ModeAdapter(Protocol):
        mode: str
        # optional: def read(self, backend) -> inspection
        #     what from_inspection/trace take; runs on the backend's NetNS thread. Without it
        #     the CLI uses backend.inspect(). For a mode whose inspect() is too thin (no
        #     counters, no elements), read() can dump more (e.g. `nft -j list table ...` through
        #     backend.netns.command) without changing the Backend contract.
        def from_inspection(self, inspection, node: str) -> NodeRules
            # backend.inspect() -> the model, with the kernel's counters
        def from_ruleset(self, ruleset, node: str) -> NodeRules
            # backend.render(state) -> the model (counters 0); its KernelObject keys must equal
            # those from_inspection gives for the same objects read back from the kernel, so
            # that `kproxy rules diff` compares like with like
        def trace(self, inspection, probe: Probe, local_addresses: Sequence[str]) -> TraceReport
            # the path a new connection's first packet takes through what the kernel holds

Rules for the model an adapter builds (what `kproxy rules` and its tests rely on):
- one ServiceRules per ServicePort key ("ns/name:port"), frontends from the kernel objects;
- endpoints are what the kernel sends traffic to; `local` True only where the kernel tells
  (e.g. a Local-policy chain/map), else None; readiness is filled in from the apiserver;
- every kernel object of the mode appears once: in a ServiceRules, in `shared` (static
  scaffolding) or in `unowned` (per-service objects nothing reaches);
- `entry` objects (dispatch rules, map elements, virtual servers) carry the counters that make
  a Service port's traffic; KernelObject.key is what diff compares (normalised text).

Registering a mode: its ModeSpec in kproxy/modes.py names the adapter; register() adds others.
A mode listed here may still be unusable on a given host (ipvs without the ip_vs module): the
mode's Backend.probe() says so, and tests that iterate ADAPTERS skip such modes with its reason.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol, Sequence

from kproxy import modes

from .model import NodeRules
from .trace import Probe, TraceReport


class ModeAdapter(Protocol):
    mode: str

    def from_inspection(self, inspection: Any, node: str) -> NodeRules: ...

    def from_ruleset(self, ruleset: Any, node: str) -> NodeRules: ...

    def trace(self, inspection: Any, probe: Probe, local_addresses: Sequence[str]) -> TraceReport: ...


def read(adapter: ModeAdapter, backend: Any) -> Any:
    """What the adapter reads from the kernel: adapter.read(backend) when it has one, else
    backend.inspect(). Call it on the backend's NetNS thread."""
    reader = getattr(adapter, "read", None)
    return reader(backend) if reader is not None else backend.inspect()


class NoAdapter(LookupError):
    """`kproxy rules` cannot explain this mode yet."""


# mode -> (module, class), from the one list of modes; register() adds test or plug-in modes.
ADAPTERS: dict[str, tuple[str, str]] = {spec.name: spec.adapter for spec in modes.MODES}


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
