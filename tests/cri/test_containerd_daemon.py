"""kproxy.containerd.daemon with a real containerd in a namespace the test makes: a pod sandbox
through CRI gets its address from the CNI config, and `remove()` leaves nothing behind, not
even a container whose shim is gone."""
from __future__ import annotations

import glob
import ipaddress
import os
import shutil
import signal

import pytest

from kproxy.containerd.cri import CriClient, pb
from kproxy.containerd.daemon import Containerd, shim_pids
from kproxy.kubelet.criruntime import sandbox_config
from tests import nsutil

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("containerd") is None or not os.path.isdir("/usr/lib/cni"),
                                 reason="containerd and containernetworking-plugins are not installed "
                                        "(scripts/install-deps.sh)")]

POD_CIDR = "10.244.7.0/24"


def _pod(name: str) -> dict:
    return {"metadata": {"uid": f"uid-{name}", "name": name, "namespace": "default"}, "spec": {}}


def test_sandbox_address_and_remove_leaves_nothing():
    with nsutil.netns("ctrd") as ns:
        daemon = Containerd(f"/run/{nsutil.unique_name('ctrd')}", ns, POD_CIDR)
        try:
            daemon.start()
            client = CriClient(daemon.socket)
            try:
                sandbox_id = client.run_pod_sandbox(sandbox_config(_pod("a"), "n1", daemon.layout.base + "/k"))
                status = client.pod_sandbox_status(sandbox_id)
                assert status.state == pb.SANDBOX_READY
                assert ipaddress.ip_address(status.network.ip) in ipaddress.ip_network(POD_CIDR)
                # the node routes the pod's /32 to its veth (ptp), as the agent expects
                routes = nsutil.run(["ip", "-n", ns, "route", "show", status.network.ip]).stdout
                assert status.network.ip in routes and "dev veth" in routes
            finally:
                client.close()
            shims = shim_pids(daemon.socket)
            assert shims
            sandbox_procs = [p for shim in shims for p in open(f"/proc/{shim}/task/{shim}/children").read().split()]
            assert sandbox_procs
            # the daemon and its shims die without removing anything (as when the node namespace
            # is deleted with everything in it): remove() must still end the container
            daemon.stop()
            for shim in shims:
                os.kill(shim, signal.SIGKILL)
        finally:
            daemon.remove()
        assert not os.path.exists(daemon.layout.base)
        assert not shim_pids(daemon.socket)
        assert not any(os.path.exists(f"/proc/{p}") for p in sandbox_procs)
        assert not glob.glob(f"/sys/fs/cgroup/*/k8s.io/{sandbox_id}")
        with open("/proc/self/mountinfo") as f:
            assert daemon.layout.base not in f.read()
