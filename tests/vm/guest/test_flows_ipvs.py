"""The upstream-derived packet-flow table (tests/flows/cases.py) in ipvs mode: each scenario is
rendered and applied by IpvsBackend in a namespace of the VM, read back the way `kproxy rules
trace` reads it (the adapter's read through the backend's namespace) and every flow traced with
the ipvs rules adapter. What ipvs cannot express, and open items, are listed in
tests/flows/test_flows.py with the other modes'.

Run by tests/vm/test_vm.py inside the VM; directly: KPROXY_IN_VM=1 pytest tests/vm/guest -k flows.
"""
from __future__ import annotations

import subprocess

import pytest

from kproxy.rules.adapter import adapter_for, read
from tests import nsutil
from tests.flows import runner
from tests.kernel.backends import config_for, open_backend
from tests.flows.test_flows import MASQUERADE_NOT_COMPARED, cases, check

pytestmark = pytest.mark.kernel

MODE = "ipvs"


@pytest.fixture(scope="module")
def node():
    subprocess.run(["modprobe", "ip_vs"], check=True)
    with nsutil.netns("flows-ipvs") as name, open_backend(name, config_for("ipvs-auto")) as backend:
        yield backend


_applied: dict[str, object] = {}  # scenario name -> what the adapter read after applying it


def _reading(backend, scenario):
    """The kernel's view after a full sync of `scenario` alone (the previous one is cleaned up)."""
    if scenario.name not in _applied:
        _applied.clear()
        backend.cleanup()
        state = runner.build_state(scenario)
        backend.apply(backend.render(state), None)
        _applied[scenario.name] = backend.netns.run(read, adapter_for(MODE), backend)
    return _applied[scenario.name]


@pytest.mark.parametrize("mode,scenario,flow", cases((MODE,)))
def test_flow(node, mode, scenario, flow):
    probe_report = runner.trace(mode, _reading(node, scenario), scenario, flow)
    check(probe_report, mode, scenario, flow, compare_masquerade=mode not in MASQUERADE_NOT_COMPARED)
