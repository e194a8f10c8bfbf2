"""Golden files of ipvs mode's netfilter rules (iptables-restore text) for the fixed Services of
iptables_services.py, per detectLocalMode.
KPROXY_UPDATE_GOLDEN=1 rewrites the files (review the diff before committing)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kproxy.ipvs.nfrules import restore_text
from kproxy.ipvs.render import render
from tests.golden import iptables_services as fx

GOLDEN_DIR = Path(__file__).parent / "ipvs"

CASES = {
    "detect-local-cluster-cidr": fx.state(),
    "detect-local-node-cidr": fx.state(detect_local_mode="NodeCIDR", node_pod_cidrs=("10.244.1.0/24",)),
    "detect-local-bridge": fx.state(detect_local_mode="BridgeInterface", detect_local_interface="cbr0",
                                    cluster_cidr=None),
    "detect-local-interface-prefix": fx.state(detect_local_mode="InterfaceNamePrefix", detect_local_interface="veth",
                                              cluster_cidr=None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_netfilter_rules_match_golden(name):
    text = restore_text(render(CASES[name]).netfilter)
    path = GOLDEN_DIR / f"{name}.restore"
    if os.environ.get("KPROXY_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with KPROXY_UPDATE_GOLDEN=1"
    assert text == path.read_text()
