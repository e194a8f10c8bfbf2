"""The scheduler against the real apiserver (issue 19): pods/binding with kube-apiserver's
checks, and `kproxy apiserver`'s in-process scheduler binding pods, reporting
FailedScheduling, and trying again when a node that fits appears."""
from __future__ import annotations

import time

import pytest

from kproxy.api.resources import EVENTS, LEASES, NODES, PODS
from kproxy.client.sync import Client
from tests.apiserver.fixtures import apiserver_and_client, start_apiserver

WAIT = 60.0  # generous: the machine may be loaded; the loops below end as soon as it holds


def wait_for(what, check, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def node(client: Client, name: str, cpu: str = "2", memory: str = "4Gi", pods: str = "110", **spec) -> dict:
    obj = client.create(NODES, {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": spec})
    obj["status"] = {"capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                     "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                     "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
    return client.update_status(NODES, obj)


def pod(client: Client, name: str, cpu: str = "100m", ns: str = "default", **spec) -> dict:
    body = {"containers": [{"name": "c", "image": "kproxy.local/echo",
                            "resources": {"requests": {"cpu": cpu}}}], **spec}
    return client.create(PODS, {"metadata": {"name": name, "namespace": ns}, "spec": body})


def events_for(client: Client, name: str, reason: str) -> list[dict]:
    return [e for e in client.list(EVENTS, "default")["items"]
            if e["involvedObject"].get("name") == name and e.get("reason") == reason]


@pytest.fixture
def quiet(tmp_path):
    """An apiserver without controllers or scheduler: the test is the only writer."""
    with apiserver_and_client(tmp_path, ["--no-controllers"]) as pair:
        yield pair


def test_binding_assigns_once_with_kube_apiservers_answers(quiet):
    server, client = quiet
    http = server.http()
    pod(client, "p")
    path = "/api/v1/namespaces/default/pods/p/binding"
    status, obj = http.call("POST", path, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                                           "target": {"kind": "Node", "name": "n1"}})
    assert (status, obj["status"], obj["code"]) == (201, "Success", 201)
    bound = client.get(PODS, "p", "default")
    assert bound["spec"]["nodeName"] == "n1"
    assert [c["status"] for c in bound["status"]["conditions"] if c["type"] == "PodScheduled"] == ["True"]
    status, obj = http.call("POST", path, {"kind": "Binding", "metadata": {"name": "p"}, "target": {"name": "n2"}})
    assert status == 409 and obj["reason"] == "Conflict"
    assert obj["message"] == 'Operation cannot be fulfilled on pods "p": pod p is already assigned to node "n1"'
    pod(client, "q")
    status, obj = http.call("POST", "/api/v1/namespaces/default/pods/q/binding", {"kind": "Binding", "target": {}})
    assert status == 422 and obj["details"]["causes"][0]["field"] == "target.name"
    status, obj = http.call("POST", "/api/v1/namespaces/default/pods/q/binding",
                            {"kind": "Binding", "metadata": {"name": "other"}, "target": {"name": "n1"}})
    assert status == 400 and "does not match" in obj["message"]
    status, obj = http.call("POST", "/api/v1/namespaces/default/pods/missing/binding",
                            {"kind": "Binding", "target": {"name": "n1"}})
    assert status == 404
    assert client.get(PODS, "q", "default")["spec"].get("nodeName") is None
    # kube-proxy's identity may not bind pods; discovery lists the subresource
    status, obj = server.http("kube-proxy").call("POST", "/api/v1/namespaces/default/pods/q/binding",
                                                 {"kind": "Binding", "target": {"name": "n1"}})
    assert status == 403
    resources = {r["name"]: r for r in http.ok("GET", "/api/v1")["resources"]}
    assert resources["pods/binding"]["verbs"] == ["create"] and resources["pods/binding"]["kind"] == "Binding"


@pytest.fixture
def cluster(tmp_path):
    """An apiserver with its controllers and the in-process scheduler (the defaults)."""
    with apiserver_and_client(tmp_path, ["--scheduler-retry-unschedulable", "300"]) as pair:
        yield pair


def test_pods_are_bound_spread_and_explained(cluster):
    server, client = cluster
    node(client, "small", cpu="1")
    node(client, "big", cpu="8")
    node(client, "tainted", cpu="8", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    for i in range(6):
        pod(client, f"web-{i}", cpu="500m")
    placed = wait_for("six pods bound", lambda: (lambda ps: ps if all(p["spec"].get("nodeName") for p in ps) else None)(
        [client.get(PODS, f"web-{i}", "default") for i in range(6)]))
    where = [p["spec"]["nodeName"] for p in placed]
    assert "tainted" not in where
    assert where.count("small") <= 2  # 1 cpu holds two 500m pods
    assert wait_for("a Scheduled event", lambda: events_for(client, "web-0", "Scheduled"))[0]["message"] == \
        f"Successfully assigned default/web-0 to {where[0]}"
    assert server.proc.poll() is None

    # nothing fits a 16-cpu pod: a FailedScheduling event and PodScheduled=False say why
    pod(client, "huge", cpu="16")
    failed = wait_for("FailedScheduling", lambda: events_for(client, "huge", "FailedScheduling"))
    assert failed[0]["type"] == "Warning"
    assert failed[0]["message"] == ("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, "
                                    "2 Insufficient cpu.")
    cond = wait_for("PodScheduled=False", lambda: [c for c in (client.get(PODS, "huge", "default").get("status") or {})
                                                   .get("conditions", []) if c["type"] == "PodScheduled"])
    assert cond[0]["status"] == "False" and cond[0]["reason"] == "Unschedulable"

    # a node that fits arrives: the pod is tried again at once (not after the 300 s retry)
    node(client, "huge-node", cpu="32")
    bound = wait_for("huge bound", lambda: client.get(PODS, "huge", "default")["spec"].get("nodeName"))
    assert bound == "huge-node"


def test_kproxy_scheduler_runs_on_its_own(tmp_path):
    """`kproxy scheduler --kubeconfig scheduler.kubeconfig` beside an apiserver that runs its
    controllers but not the scheduler; SIGTERM stops it cleanly."""
    import signal
    import subprocess
    import sys
    server = start_apiserver(tmp_path / "api", ["--no-scheduler"])
    client = Client.from_kubeconfig(server.kubeconfig)
    proc = None
    try:
        node(client, "n1")
        pod(client, "lonely")
        time.sleep(1.0)  # nothing in the apiserver binds it
        assert client.get(PODS, "lonely", "default")["spec"].get("nodeName") is None
        proc = subprocess.Popen([sys.executable, "-m", "kproxy", "scheduler", "--kubeconfig",
                                 str(server.data_dir / "scheduler.kubeconfig"), "--leader-elect-lease-duration", "5s"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert wait_for("bound", lambda: client.get(PODS, "lonely", "default")["spec"].get("nodeName")) == "n1"
        assert client.get(LEASES, "kube-scheduler", "kube-system")["spec"]["holderIdentity"]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
        assert b"Traceback" not in out
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()
        server.stop()
