"""`--mode auto` (kproxy/agent/automode.py): preference order, reasons, fallback; and one real
probe run inside a throwaway namespace."""
from __future__ import annotations

import pytest

from kproxy.agent import automode
from kproxy.agent import backend as backends
from kproxy.netns import NetNS
from tests import nsutil


class _Probe:
    def __init__(self, outcome):
        self.outcome = outcome

    def probe(self, netns, config=None):
        if isinstance(self.outcome, BaseException):
            raise self.outcome


@pytest.fixture
def fake_modes(monkeypatch):
    outcomes: dict[str, object] = {}

    def get(name):
        outcome = outcomes[name]
        if isinstance(outcome, ImportError):
            raise outcome
        return _Probe(outcome)

    monkeypatch.setattr(backends, "get", get)
    return outcomes


def test_first_available_mode_in_preference_order_wins(fake_modes):
    fake_modes.update(ipvs=backends.BackendUnavailable("no ip_vs module"), nftables=None,
                      iptables=None, userspace=None)
    mode, reasons = automode.choose_mode(None, None)
    assert mode == "nftables"
    assert reasons == ["ipvs: unavailable (no ip_vs module)", "nftables: available, chosen"]


def test_import_errors_and_crashing_probes_are_reasons_not_failures(fake_modes):
    fake_modes.update(ipvs=ImportError("no module"), nftables=RuntimeError("boom"), iptables=None, userspace=None)
    mode, reasons = automode.choose_mode(None, None)
    assert mode == "iptables"
    assert reasons[0] == "ipvs: cannot be loaded (no module)"
    assert reasons[1] == "nftables: probe failed (RuntimeError: boom)"


def test_falls_back_to_userspace_when_nothing_works(fake_modes):
    for mode in automode.PREFERENCE:
        fake_modes[mode] = backends.BackendUnavailable(f"{mode} missing")
    mode, reasons = automode.choose_mode(None, None)
    assert mode == "userspace"
    assert len(reasons) == len(automode.PREFERENCE) + 1 and "falling back to userspace" in reasons[-1]


def test_userspace_when_only_userspace_works(fake_modes):
    fake_modes.update(ipvs=backends.BackendUnavailable("x"), nftables=backends.BackendUnavailable("y"),
                      iptables=backends.BackendUnavailable("z"), userspace=None)
    assert automode.choose_mode(None, None)[0] == "userspace"


@pytest.mark.kernel
def test_real_probe_in_a_namespace_skips_ipvs_on_this_kernel():
    """This machine's kernel has no IPVS (DESIGN.md): auto must pass over it with a reason and
    pick a netfilter mode that works in a fresh namespace."""
    with nsutil.netns("auto") as name:
        netns = NetNS(name)
        try:
            mode, reasons = automode.choose_mode(netns, None)
        finally:
            netns.close()
    assert reasons[0].startswith("ipvs: ") and "chosen" not in reasons[0], reasons
    assert mode in ("nftables", "iptables"), reasons
    assert reasons[-1] == f"{mode}: available, chosen"
