"""The Vagrant lab booted for real: VMs of vagrant/build-box.sh's box under libvirt (inside the
lab's own namespaces, vagrant/run.sh), kproxy installed from the host's wheelhouse, the nodes'
private network, IPVS on the VM kernel; with `kproxy install` present, nodes Ready and one
Service reaching pods on both nodes from node1 in the mode chosen (KPROXY_MODE).

`make test-vagrant` brings a lab up for this run and removes it at the end (even on failure);
`vagrant/run.sh test` runs these against the lab run.sh holds up (KPROXY_VAGRANT_REUSE=1).
Boot, provisioning and Service programming times are printed (pytest -s), never asserted."""
from __future__ import annotations

import json
import os
import time

import pytest

from tests import nsutil
from tests.vagrant.lab import UP_TIMEOUT, VagrantLab

# The first test's setup boots and provisions the lab: beyond pyproject's 300 s per test.
pytestmark = [pytest.mark.vagrant, pytest.mark.slow, pytest.mark.timeout(UP_TIMEOUT + 3600)]

MODE = os.environ.get("KPROXY_MODE", "iptables")
NODES = int(os.environ.get("KPROXY_NODES", "2"))


def _private_ip(i: int) -> str:
    return f"{os.environ.get('KPROXY_VAGRANT_SUBNET', '192.168.56')}.{10 + i}"


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespace, libvirtd)")
    if os.environ.get("KPROXY_VAGRANT_REUSE") == "1":
        yield VagrantLab(os.environ.get("KPROXY_VAGRANT_LAB", "kproxy-vagrant"),
                         os.environ.get("KPROXY_VAGRANT_STATE", "/var/lib/kproxy-vagrant"), NODES, MODE)
        return
    name = f"{nsutil.session_prefix()}vagrant"
    vlab = VagrantLab(name, f"/var/lib/{name}", NODES, MODE)
    start = time.monotonic()
    try:
        up = vlab.run("up", timeout=UP_TIMEOUT)
        assert up.returncode == 0, f"run.sh up failed\n{up.stdout[-4000:]}\n{up.stderr[-4000:]}"
        print(f"\nvagrant lab: {NODES} nodes booted and provisioned in {time.monotonic() - start:.0f} s "
              f"(mode {MODE})")
        yield vlab
    finally:
        down = vlab.run("down")
        assert down.returncode == 0, f"run.sh down failed\n{down.stdout}\n{down.stderr}"


@pytest.fixture(scope="module")
def installed(lab):
    """The nodes run kproxy's services (`kproxy install` ran on them)."""
    if lab.ssh("node1", "test -f /etc/kproxy/join.yaml").returncode != 0:
        pytest.skip("kproxy install did not run on node1 (this kproxy has no `install` command yet)")
    return lab


def test_nodes_run_the_wheel_from_the_host(lab):
    for i in range(1, lab.nodes + 1):
        out = lab.check(f"node{i}", "hostname; /opt/kproxy/bin/kproxy version")
        assert out.splitlines()[0] == f"node{i}"
        assert "kproxy" in out


def test_private_network_joins_the_nodes(lab):
    for i in range(2, lab.nodes + 1):
        lab.check("node1", f"ping -c 1 -W 10 {_private_ip(i)}")
        lab.check(f"node{i}", f"ping -c 1 -W 10 {_private_ip(1)}")


def test_vm_kernel_has_ipvs(lab):
    out = lab.check("node1", "modprobe ip_vs && ipvsadm -Ln")
    assert "IP Virtual Server" in out


def test_nodes_ready(installed):
    want = [f"node{i}" for i in range(1, installed.nodes + 1)]
    end = time.monotonic() + 900
    while True:
        r = installed.ssh("node1", "kubectl get nodes -o json")
        ready = sorted(n["metadata"]["name"] for n in json.loads(r.stdout or '{"items": []}')["items"]
                       if any(c["type"] == "Ready" and c["status"] == "True"
                              for c in n.get("status", {}).get("conditions", []))) if r.returncode == 0 else []
        if ready == want:
            return
        assert time.monotonic() < end, f"nodes Ready: {ready}, want {want}\n{r.stdout}\n{r.stderr}"
        time.sleep(5)


def test_service_reaches_pods_on_both_nodes(installed):
    lab = installed
    lab.check("node1", "kubectl delete deployment vweb --ignore-not-found && kubectl delete service vweb --ignore-not-found")
    lab.check("node1", f"kubectl create deployment vweb --image=kproxy.local/echo --replicas={2 * lab.nodes}")
    pods = _pods_spread(lab)
    start = time.monotonic()
    lab.check("node1", "kubectl expose deployment vweb --port 80 --target-port 8080")
    ip = lab.check("node1", "kubectl get service vweb -o jsonpath='{.spec.clusterIP}'").strip()
    lab.wait_for("node1", f"curl -sf --max-time 5 http://{ip}/hostname", f"ClusterIP {ip} answers from node1")
    print(f"\nvagrant lab ({lab.mode}): Service created -> reachable from node1 in {time.monotonic() - start:.1f} s")
    answered: set[str] = set()
    end = time.monotonic() + 600
    while {pods[p] for p in answered} != set(pods.values()):
        assert time.monotonic() < end, f"pods answered {answered}, nodes of all pods {pods}"
        out = lab.check("node1", f"for i in $(seq 20); do curl -sf --max-time 5 http://{ip}/hostname; echo; done")
        answered |= {line.strip() for line in out.splitlines() if line.strip() in pods}
    lab.check("node1", "kubectl delete deployment vweb && kubectl delete service vweb")


def _pods_spread(lab: VagrantLab) -> dict[str, str]:
    """Waits until the Deployment's pods run and some run on each node; pod name -> node."""
    end = time.monotonic() + 900
    while True:
        items = json.loads(lab.check("node1", "kubectl get pods -l app=vweb -o json"))["items"]
        running = {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in items
                   if p.get("status", {}).get("phase") == "Running"}
        if len(running) == 2 * lab.nodes and set(running.values()) == {f"node{i}" for i in range(1, lab.nodes + 1)}:
            return running
        assert time.monotonic() < end, f"pods not running on every node: {running}"
        time.sleep(5)
