"""Backends of every mode for kernel tests, made in a namespace and cleaned up after.

A mode id is a mode name ("nftables", "userspace", "ipvs", "iptables"), "MODE-VARIANT" for the
iptables variant a mode uses ("iptables-legacy", "userspace-legacy"), or a bare variant ("nft",
"legacy": iptables mode with it). Without a variant, modes use iptables-nft, so a test's outcome
does not depend on what the namespace already holds.

tests/kernel/conftest.py turns these into the `backend` fixture; modules that build backends
themselves (a second agent, a proxier) use config_for and open_backend directly.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any, Iterator

import pytest

from kproxy.agent import backend as backends
from kproxy.agent.config import AgentConfig, IptablesConfig
from kproxy.agent.state import ProxyState, changes_between
from kproxy.iptables.driver import VARIANTS
from kproxy.netns import NetNS
from tests import nsutil


def config_for(mode_id: str, **overrides: Any) -> AgentConfig:
    """The AgentConfig of `mode_id`; an override that is a dict changes fields of that config
    section (iptables={"localhost_nodeports": False}), any other sets an AgentConfig field."""
    mode, _, variant = mode_id.partition("-")
    if mode in VARIANTS:
        mode, variant = "iptables", mode
    base = AgentConfig(mode=mode, iptables=IptablesConfig(backend=variant or "nft"))
    changes = {name: replace(getattr(base, name), **value) if isinstance(value, dict) else value
               for name, value in overrides.items()}
    return replace(base, **changes)


def skip_unless_available(node: str, config: AgentConfig) -> None:
    """pytest.skip (naming why) when this kernel or machine lacks what config's mode needs (ipvs
    outside the test VM, a missing iptables variant)."""
    netns = NetNS(node)
    try:
        backends.get(config.mode).probe(netns, config)
    except backends.BackendUnavailable as exc:
        pytest.skip(f"{config.mode}: {exc}")
    finally:
        netns.close()


@contextlib.contextmanager
def open_backend(node: str, config: AgentConfig, cls: type | None = None,
                 dual_stack: bool = False) -> Iterator[Any]:
    """A backend of config's mode (or of `cls`, e.g. a subclass recording calls) in namespace
    `node`, skipped when unavailable; with dual_stack, both families as the agent runs them
    (kproxy.agent.cli.dual_stack: skipped unless IPv6 is programmed too). On exit, even after a
    failure: its kernel state removed, conntrack flushed, the backend and namespace handle closed."""
    skip_unless_available(node, config)
    netns = NetNS(node)
    try:
        if dual_stack:
            from kproxy.agent.cli import dual_stack as make_dual_stack

            backend = make_dual_stack(cls or backends.get(config.mode), netns, config)
            if len(getattr(backend, "families", ())) != 2:
                backend.close()
                pytest.skip(f"{config.mode}: IPv6 is not programmed here")
        else:
            backend = (cls or backends.get(config.mode))(netns, config)
        try:
            yield backend
        finally:
            try:
                backend.cleanup()
            finally:
                for family in ("ipv4", "ipv6"):
                    nsutil.run(["ip", "netns", "exec", node, "conntrack", "-F", "-f", family], check=False)
                backend.close()
    finally:
        netns.close()


# the state each recent ruleset was rendered from (id -> (ruleset, state)), so that a test can
# render from `previous` the way the proxier does: told what changed since
_RENDERED_FROM: dict[int, tuple[Any, ProxyState]] = {}


def render(backend: Any, state: ProxyState, previous: Any = None) -> Any:
    """backend.render(state, previous, changes) with the Changes since the state `previous` was
    rendered from (here; full when that is not known)."""
    entry = _RENDERED_FROM.get(id(previous))
    before = entry[1] if entry is not None and entry[0] is previous else None
    ruleset = backend.render(state, previous, changes_between(before, state))
    _RENDERED_FROM[id(ruleset)] = (ruleset, state)
    while len(_RENDERED_FROM) > 64:  # a test keeps a few rulesets; forget the oldest
        del _RENDERED_FROM[next(iter(_RENDERED_FROM))]
    return ruleset


def sync(backend: Any, state: ProxyState, previous: Any = None, full: bool = True) -> Any:
    """Renders `state` (reusing `previous`'s unchanged parts) and applies it: a full sync, or
    with full=False only what changed since `previous`. Returns the rendered ruleset."""
    ruleset = render(backend, state, previous)
    backend.apply(ruleset, None if full else previous)
    return ruleset
