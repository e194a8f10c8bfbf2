"""The registry of proxy modes: one ModeSpec per mode, the only place that lists modes.

Every place that needs the modes reads them from here: the backend registry
(kproxy/agent/backend.py), `kproxy rules` adapters (kproxy/rules/adapter.py) and mode detection
(kproxy/rules/detect.py), the agent config (which section holds a mode's sync periods),
`--mode auto` (kproxy/agent/automode.py), setup.py (which top-level folders to install), the VM
harness (which folders to copy into RAM) and the scenario suite (tests/e2e/helpers.py).
tests/unit/test_modes.py checks that each of them knows every mode and lists none of its own.

Adding a mode: one ModeSpec below plus the mode's own package (its Backend, its rules adapter,
its e2e probe). Classes are named as (module, class) strings and imported only when the mode is
used, so a mode's dependencies are needed only on nodes that run it.

Standard library only and no kproxy imports: setup.py runs this file with runpy at build time,
before kproxy is importable.
"""
from __future__ import annotations

from typing import NamedTuple


class ModeSpec(NamedTuple):
    name: str  # the value of --mode / KubeProxyConfiguration.mode
    backend: tuple[str, str]  # (module, class) of its kproxy.agent.backend.Backend
    adapter: tuple[str, str]  # (module, class) of its kproxy.rules.adapter.ModeAdapter
    sync_section: str  # AgentConfig section whose syncPeriod, minSyncPeriod, masquerade* it uses
    auto_rank: int  # `--mode auto` probes the lowest rank first
    detect_rank: int  # `kproxy rules` trusts a namespace's evidence of the lowest rank first
    package: str | None  # top-level folder installed as kproxy.<package>; None: inside kproxy/
    e2e_probe: tuple[str, str]  # (module, class) the scenario suite looks at a node's rules with
    needs_vm: bool = False  # the host kernel lacks it: its kernel and e2e tests run in the VM


DEFAULT = "iptables"  # upstream's default when the mode is empty

MODES: tuple[ModeSpec, ...] = (
    ModeSpec(
        name="iptables",
        backend=("kproxy.iptables.backend", "IptablesBackend"),
        adapter=("kproxy.rules.iptables", "IptablesAdapter"),
        sync_section="iptables",
        auto_rank=2,
        detect_rank=3,  # ipvs and userspace keep KUBE-SERVICES too: iptables only when alone
        package="iptables",
        e2e_probe=("tests.e2e.helpers", "IptablesProbe"),
    ),
    ModeSpec(
        name="nftables",
        backend=("kproxy.nftables.backend", "NftablesBackend"),
        adapter=("kproxy.rules.nftables", "NftablesAdapter"),
        sync_section="nftables",
        auto_rank=1,
        detect_rank=0,
        package="nftables",
        e2e_probe=("tests.e2e.helpers", "NftablesProbe"),
    ),
    ModeSpec(
        name="ipvs",
        backend=("kproxy.ipvs.backend", "IpvsBackend"),
        adapter=("kproxy.ipvs.rules_adapter", "IpvsAdapter"),
        sync_section="ipvs",
        auto_rank=0,
        detect_rank=1,
        package="ipvs",
        e2e_probe=("tests.vm.ipvs_probe", "IpvsProbe"),
        needs_vm=True,
    ),
    ModeSpec(
        name="userspace",
        backend=("kproxy.userspace.backend", "UserspaceBackend"),
        adapter=("kproxy.rules.userspace", "UserspaceAdapter"),
        sync_section="iptables",  # its redirect rules live in the iptables KUBE-* chains
        auto_rank=3,  # the fallback: works wherever iptables -t nat does
        detect_rank=2,
        package=None,
        e2e_probe=("tests.e2e.helpers", "IptablesProbe"),  # same KUBE-* chains as iptables
    ),
)


def names() -> tuple[str, ...]:
    return tuple(spec.name for spec in MODES)


def spec(name: str) -> ModeSpec | None:
    """The ModeSpec of `name`, None when no such mode is registered."""
    return next((s for s in MODES if s.name == name), None)


def auto_order() -> tuple[str, ...]:
    return tuple(s.name for s in sorted(MODES, key=lambda s: s.auto_rank))


def detect_order() -> tuple[str, ...]:
    return tuple(s.name for s in sorted(MODES, key=lambda s: s.detect_rank))


def sync_sections() -> tuple[str, ...]:
    """The config sections that hold sync periods, once each, in registry order."""
    return tuple(dict.fromkeys(s.sync_section for s in MODES))


def top_level_packages() -> tuple[str, ...]:
    """The top-level folders setup.py installs as kproxy.<folder>."""
    return tuple(s.package for s in MODES if s.package is not None)
