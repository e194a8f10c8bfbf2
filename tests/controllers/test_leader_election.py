"""Leader election between controller managers on one real apiserver: exactly one acts, a
clean stop hands over at once, a killed leader is replaced after its lease expires."""
from __future__ import annotations

import signal
import subprocess
import sys

from kproxy.api.resources import ENDPOINT_SLICES, LEASES, PODS
from kproxy.client.sync import Client
from tests.apiserver.fixtures import start_apiserver
from tests.controllers.conftest import ControllersThread, make_pod, make_service


def holder(c):
    lease = c.get_or_none(LEASES, "kproxy-controllers", "kube-system")
    return (lease or {}).get("spec", {}).get("holderIdentity")


def slice_ips(c, svc):
    items = c.list(ENDPOINT_SLICES, "default", label_selector=f"kubernetes.io/service-name={svc}")["items"]
    return len(items), sorted(e["addresses"][0] for s in items for e in s.get("endpoints") or [])


def test_one_leader_acts_and_hands_over_on_stop(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    a = b = None
    try:
        with Client.from_kubeconfig(server.kubeconfig) as c:
            a = ControllersThread(server.kubeconfig, identity="manager-a", lease_duration=3.0)
            c.wait_for(lambda c: holder(c) == "manager-a", timeout=20)
            b = ControllersThread(server.kubeconfig, identity="manager-b", lease_duration=3.0)
            make_service(c, "web")
            make_pod(c, "web-1", "10.244.1.2", labels={"app": "web"}, grace=0)
            c.wait_for(lambda c: slice_ips(c, "web") == (1, ["10.244.1.2"]), timeout=20)
            assert holder(c) == "manager-a"
            a.stop()  # clean stop releases the lease: b takes over without waiting for expiry
            c.wait_for(lambda c: holder(c) == "manager-b", timeout=20)
            make_pod(c, "web-2", "10.244.1.3", labels={"app": "web"}, grace=0)
            c.wait_for(lambda c: slice_ips(c, "web") == (1, ["10.244.1.2", "10.244.1.3"]), timeout=20)
            lease = c.get(LEASES, "kproxy-controllers", "kube-system")
            assert lease["spec"]["leaseTransitions"] == 0  # a released lease is taken, not stolen
    finally:
        for t in (a, b):
            if t is not None:
                t.stop()
        server.stop()


def test_killed_leader_is_replaced_after_lease_expiry(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    proc = standby = None
    try:
        with Client.from_kubeconfig(server.kubeconfig) as c:
            log = open(tmp_path / "leader.log", "wb")
            proc = subprocess.Popen([sys.executable, "-m", "kproxy", "controllers", "--kubeconfig", server.kubeconfig,
                                     "--leader-elect-lease-duration", "2s"], stdout=log, stderr=subprocess.STDOUT)
            log.close()
            c.wait_for(lambda c: holder(c), timeout=30)
            first = holder(c)
            standby = ControllersThread(server.kubeconfig, identity="standby", lease_duration=2.0)
            make_service(c, "web")
            c.wait_for(lambda c: slice_ips(c, "web")[0] == 1, timeout=20)
            assert holder(c) == first
            proc.send_signal(signal.SIGKILL)  # no release: the standby must wait for expiry
            proc.wait(10)
            c.wait_for(lambda c: holder(c) == "standby", timeout=30)
            assert c.get(LEASES, "kproxy-controllers", "kube-system")["spec"]["leaseTransitions"] == 1
            make_pod(c, "web-1", "10.244.1.2", labels={"app": "web"}, grace=0)
            c.wait_for(lambda c: slice_ips(c, "web") == (1, ["10.244.1.2"]), timeout=20)
            c.delete(PODS, "web-1", "default")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if standby is not None:
            standby.stop()
        server.stop()
