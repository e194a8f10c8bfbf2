"""ipvs mode, in the test VM: one poisoned object does not stop the node's other Services (the
host modes' test, tests/kernel/test_poisoned_kernel.py, with IPVS). The kernel refuses the
300-character Service name in ipvs mode too: its KUBE-IPVS-OWNERS ipset member comment would be
longer than ipset allows (255)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from kproxy.agent.config import AgentConfig, IpvsConfig
from tests.kernel.test_poisoned_kernel import FAST, run_poisoned
from tests.kernel import topology as topology_module
from tests.kernel.topology import single_node

# the pods' start and the first syncs under software emulation on a shared machine
pytestmark = [pytest.mark.kernel, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def topo():
    subprocess.run(["modprobe", "ip_vs"], check=True)
    # a cold guest reads the echo server's imports over 9p: warm them so the pods start in time
    subprocess.run([sys.executable, "-c", "import kproxy.lab.echo"], check=True)
    ready_timeout = topology_module.READY_TIMEOUT
    topology_module.READY_TIMEOUT = 120.0  # a readiness wait, not a verdict: emulated and shared CPUs
    try:
        with single_node(["a", "b"], tag="ipvspoi") as topology:
            yield topology
    finally:
        topology_module.READY_TIMEOUT = ready_timeout


def test_poisoned_object_does_not_stop_the_others_ipvs(topo):
    # the bisection's trial applies took over 60 s under emulation (the culprit was found)
    run_poisoned(topo, AgentConfig(mode="ipvs", ipvs=IpvsConfig(**FAST)), first_sync_timeout=480)
