"""Node lifecycle end to end: a real apiserver, `kproxy controllers` with a short grace period
and a kubelet that is frozen (SIGSTOP) so its heartbeats stop: the node goes Ready=Unknown and
gets the unreachable taints, pods leave after their tolerationSeconds, and the taints go when
the kubelet resumes."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from kproxy.api.resources import EVENTS, NODES, PODS
from kproxy.client.sync import Client
from tests.apiserver.fixtures import start_apiserver
from tests.kubelet.test_kubelet_e2e import KubeletNode, _running_ready, _wait

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GRACE = "15s"  # above the kubelet's 10 s lease renewal, so a live node never looks silent


@pytest.fixture
def cluster(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    node = KubeletNode(tmp_path, server)
    client = Client.from_kubeconfig(server.kubeconfig)
    controllers = None
    try:
        with open(tmp_path / "controllers.log", "ab") as log:
            controllers = subprocess.Popen(
                [sys.executable, "-m", "kproxy", "controllers", "--kubeconfig",
                 str(server.data_dir / "controllers.kubeconfig"), "--node-monitor-grace-period", GRACE,
                 "--node-monitor-period", "1s", "--no-leader-elect"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        node.start()
        yield server, node, client
    finally:
        if node.proc is not None:
            node.proc.send_signal(signal.SIGCONT)
        if controllers is not None:
            controllers.terminate()
            try:
                controllers.wait(30)
            except subprocess.TimeoutExpired:
                controllers.kill()
                controllers.wait()
        client.close()
        node.cleanup()
        server.stop()


def _taints(client: Client) -> list[tuple[str, str]]:
    return [(t["key"], t["effect"]) for t in (client.get(NODES, "n1").get("spec") or {}).get("taints") or []]


def _pod(name: str, seconds: int | None = None) -> dict:
    spec: dict = {"nodeName": "n1", "terminationGracePeriodSeconds": 1,
                  "containers": [{"name": "c", "image": "kproxy.local/base", "command": ["sleep", "3600"]}]}
    if seconds is not None:
        spec["tolerations"] = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                "effect": "NoExecute", "tolerationSeconds": seconds}]
    return {"metadata": {"name": name}, "spec": spec}


def test_silent_node_is_tainted_its_pods_evicted_and_untainted_on_return(cluster):
    _, node, client = cluster
    client.create(PODS, _pod("short", 2), "default")
    client.create(PODS, _pod("default-tolerations"), "default")
    for name in ("short", "default-tolerations"):
        _wait(client, lambda c, n=name: _running_ready(c, n), f"{name} running", node)
    tolerations = client.get(PODS, "default-tolerations", "default")["spec"]["tolerations"]
    assert {(t["key"], t.get("tolerationSeconds")) for t in tolerations} == {
        ("node.kubernetes.io/not-ready", 300), ("node.kubernetes.io/unreachable", 300)}
    assert _taints(client) == []

    assert node.proc is not None
    node.proc.send_signal(signal.SIGSTOP)  # the kubelet freezes: no Lease renewals, no status
    unreachable = [("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")]
    _wait(client, lambda c: _taints(c) == unreachable or None, "unreachable taints", node)
    ready = [x for x in client.get(NODES, "n1")["status"]["conditions"] if x["type"] == "Ready"][0]
    assert ready["status"] == "Unknown"
    _wait(client, lambda c: (c.get(PODS, "short", "default")["metadata"].get("deletionTimestamp")), "short evicted",
          node)
    events = [e for e in client.list(EVENTS, "default")["items"] if e.get("reason") == "TaintManagerEviction"]
    assert [e["involvedObject"]["name"] for e in events] == ["short"]
    assert not client.get(PODS, "default-tolerations", "default")["metadata"].get("deletionTimestamp")

    node.proc.send_signal(signal.SIGCONT)
    _wait(client, lambda c: _taints(c) == [] or None, "taints removed", node)
    _wait(client, lambda c: c.get_or_none(PODS, "short", "default") is None or None, "short gone", node)
    assert not client.get(PODS, "default-tolerations", "default")["metadata"].get("deletionTimestamp")
