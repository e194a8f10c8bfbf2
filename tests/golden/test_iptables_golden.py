"""Golden files: the iptables-restore text (full, and one partial) for the fixed Services of
iptables_services.py.
KPROXY_UPDATE_GOLDEN=1 rewrites the files (review the diff before committing)."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from kproxy.agent.families import IPV4, IPV6, family_view
from kproxy.agent.state import changes_between
from kproxy.iptables.render import render
from kproxy.iptables.restore import full_restore, partial_restore
from kproxy.iptables.ruleset import RenderOptions
from tests.golden import iptables_services as fx

GOLDEN_DIR = Path(__file__).parent / "iptables"

CASES = {
    "services": (fx.state(), RenderOptions()),
    "masquerade-all": (fx.state(masquerade_all=True, masquerade_bit=5), RenderOptions(random_fully=False)),
    "nodeport-addresses": (fx.state(node_port_addresses=("10.200.0.0/24",), cluster_cidr=None),
                           RenderOptions(localhost_nodeports=False)),
    "detect-local-interface-prefix": (fx.state(detect_local_mode="InterfaceNamePrefix", detect_local_interface="veth",
                                               cluster_cidr=None), RenderOptions()),
    "detect-local-node-cidr": (fx.state(detect_local_mode="NodeCIDR", node_pod_cidrs=("10.244.1.0/24",)),
                               RenderOptions()),
    # the IPv6 pass of the same Services dual-stack (what ip6tables-restore gets; no localhost NodePorts)
    "services-ipv6": (family_view(fx.dual_stack_state(), IPV6), RenderOptions(localhost_nodeports=False)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_full_restore_matches_golden(name):
    state, options = CASES[name]
    text = full_restore(render(state, options=options))
    path = GOLDEN_DIR / f"{name}.restore"
    if os.environ.get("KPROXY_UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with KPROXY_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def _scaled_web():
    """The fixture with web:http scaled from three endpoints to one and `empty` removed."""
    web = fx.SERVICES[0]
    services = [replace(web, endpoints=web.endpoints[:1])] + [s for s in fx.SERVICES[1:] if s.name != "empty"]
    return fx.state(services)


def test_partial_restore_matches_golden():
    first = render(fx.state())
    text = partial_restore(render(_scaled_web(), first, changes_between(fx.state(), _scaled_web())), first)
    path = GOLDEN_DIR / "partial-scale-web-remove-empty.restore"
    if os.environ.get("KPROXY_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with KPROXY_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_the_ipv4_pass_of_dual_stack_services_is_the_ipv4_only_render():
    dual = full_restore(render(family_view(fx.dual_stack_state(), IPV4)))
    assert dual == full_restore(render(fx.state()))
