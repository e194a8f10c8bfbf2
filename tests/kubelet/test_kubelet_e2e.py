"""The kubelet end to end: a real apiserver (scheduler and controllers in-process), a node
namespace, and `kproxy kubelet` running real processes in real pod namespaces."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from kproxy.api.resources import ENDPOINT_SLICES, EVENTS, LEASES, NODES, PODS, SECRETS, SERVICES
from kproxy.client.sync import Client
from kproxy.netns import NetNS
from tests import nsutil
from tests.apiserver.fixtures import start_apiserver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODE_IP = "10.200.0.11"
POD_CIDR = "10.244.1.0/24"
WAIT = 60.0


class KubeletNode:
    def __init__(self, tmp_path, server):
        self.server = server
        self.netns = nsutil.unique_name("kln1")
        self.pod_prefix = f"{self.netns}-pod-"
        self.log_path = tmp_path / "kubelet.log"
        self.root = tmp_path / "kubelet"
        self.proc: subprocess.Popen | None = None
        self.extra_args: list[str] = []  # more kubelet flags (tests/kubelet/test_kubelet_server.py)

    def node_kubeconfig(self) -> str:
        """A kubeconfig of the node identity system:node:n1 (group system:nodes), so the test also
        checks that the default RBAC lets a kubelet do its work."""
        path = str(self.root.parent / "n1.kubeconfig")
        done = subprocess.run([sys.executable, "-m", "kproxy", "pki", "client", "--data-dir", str(self.server.data_dir),
                               "--user", "system:node:n1", "--group", "system:nodes", "--kubeconfig", path],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return path

    def start(self) -> None:
        self.kubeconfig = self.node_kubeconfig()
        nsutil.run(["ip", "netns", "add", self.netns])
        nsutil.run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        # a veth with both ends in the node namespace stands for its uplink
        nsutil.run(["ip", "-n", self.netns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"])
        nsutil.run(["ip", "-n", self.netns, "link", "set", "eth0p", "up"])
        nsutil.run(["ip", "-n", self.netns, "addr", "add", f"{NODE_IP}/24", "dev", "eth0"])
        nsutil.run(["ip", "-n", self.netns, "link", "set", "eth0", "up"])
        self.start_kubelet()

    def start_kubelet(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kproxy", "kubelet", "--kubeconfig", self.kubeconfig,
                 "--node-name", "n1", "--netns", self.netns, "--pod-cidr", POD_CIDR, "--root-dir", str(self.root),
                 "--crash-loop-backoff", "1s", *self.extra_args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc, self.proc = self.proc.returncode, None
        return rc

    def pod_namespaces(self) -> list[str]:
        return [n for n in os.listdir("/run/netns") if n.startswith(self.pod_prefix)] \
            if os.path.isdir("/run/netns") else []

    def cleanup(self) -> None:
        self.stop()
        for name in self.pod_namespaces():
            nsutil.delete_netns(name)
        nsutil.delete_netns(self.netns)

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return "(no log)"


@pytest.fixture
def cluster(tmp_path):
    server = start_apiserver(tmp_path)
    node = KubeletNode(tmp_path, server)
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        node.start()
        yield server, node, client
    finally:
        client.close()
        node.cleanup()
        server.stop()


def _pod(client: Client, name: str) -> dict | None:
    return client.get_or_none(PODS, name, "default")


def _cond(pod: dict, ctype: str) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c.get("status")
    return None


def _running_ready(client: Client, name: str) -> dict | None:
    pod = _pod(client, name)
    if pod and (pod.get("status") or {}).get("phase") == "Running" and _cond(pod, "Ready") == "True":
        return pod
    return None


def _tcp_ask(netns: str, ip: str, port: int) -> str:
    import socket

    def ask() -> str:
        try:
            with socket.create_connection((ip, port), timeout=5) as s:
                s.sendall(b"hi\n")
                return s.recv(200).decode()
        except OSError as exc:
            return f"error: {exc}"
    ns = NetNS(netns)
    try:
        return ns.run(ask)
    finally:
        ns.close()


def _wait(client: Client, fetch, what: str, node: KubeletNode, timeout: float = WAIT):
    try:
        return client.wait_for(fetch, timeout=timeout, interval=0.2)
    except TimeoutError as exc:
        raise AssertionError(f"{what}: {exc}\n--- kubelet log ---\n{node.log_tail()}") from None


def test_node_registers_with_lease(cluster):
    _, node, client = cluster
    n1 = _wait(client, lambda c: c.get_or_none(NODES, "n1"), "node registered", node)
    status = n1["status"]
    assert status["allocatable"]["pods"] == "110"
    assert {"type": "InternalIP", "address": NODE_IP} in status["addresses"]
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("process://")
    assert n1["spec"]["podCIDR"] == POD_CIDR
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True" and ready[0]["reason"] == "KubeletReady"
    lease = _wait(client, lambda c: c.get_or_none(LEASES, "n1", "kube-node-lease"), "lease", node)
    assert lease["spec"]["holderIdentity"] == "n1"
    # marked Unknown as the node lifecycle controller does: the kubelet posts Ready again at its
    # next look (every 10 s), long before its full status report (every 60 s)
    conditions = [dict(c, status="Unknown") if c["type"] == "Ready" else c for c in status["conditions"]]
    client.patch(NODES, "n1", {"status": {"conditions": conditions}}, subresource="status")

    def ready_again(c: Client):
        got = c.get(NODES, "n1")
        return [x for x in got["status"]["conditions"] if x["type"] == "Ready" and x["status"] == "True"]
    _wait(client, ready_again, "Ready posted again", node, timeout=40)


def test_pod_runs_is_reachable_restarts_and_is_deleted(cluster):
    _, node, client = cluster
    _wait(client, lambda c: c.get_or_none(NODES, "n1"), "node registered", node)
    client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}, "default")
    client.create(PODS, {"metadata": {"name": "web-1", "labels": {"app": "web"}}, "spec": {
        "terminationGracePeriodSeconds": 5,
        "containers": [{"name": "echo", "image": "kproxy.local/echo:1",
                        "ports": [{"containerPort": 8080}],
                        "env": [{"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}}]}},
                  "default")
    pod = _wait(client, lambda c: _running_ready(c, "web-1"), "web-1 Running and Ready", node)
    status = pod["status"]
    assert pod["spec"]["nodeName"] == "n1"
    assert status["hostIP"] == NODE_IP
    ip = status["podIP"]
    assert ip.startswith("10.244.1.") and status["podIPs"] == [{"ip": ip}]
    cs = status["containerStatuses"][0]
    assert cs["ready"] and cs["started"] and "running" in cs["state"] and cs["restartCount"] == 0
    assert [c["type"] for c in status["conditions"]][:4] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"]
    assert _cond(pod, "PodScheduled") == "True"
    # the pod answers from the node namespace, with its own name
    assert _tcp_ask(node.netns, ip, 8080).startswith("web-1 ")

    def in_slice(c: Client):
        items = c.list(ENDPOINT_SLICES, "default", label_selector="kubernetes.io/service-name=web")["items"]
        return [e for s in items for e in s.get("endpoints") or [] if ip in e.get("addresses", [])
                and (e.get("conditions") or {}).get("ready")]
    _wait(client, in_slice, "the pod in the Service's EndpointSlice", node)

    # the node lifecycle controller marks it not ready (a node that was silent): the kubelet,
    # which sees the container is fine, writes Ready back
    conditions = [dict(c, status="False") if c["type"] == "Ready" else c for c in status["conditions"]]
    client.patch(PODS, "web-1", {"status": {"conditions": conditions}}, "default", subresource="status")
    _wait(client, lambda c: _running_ready(c, "web-1"), "Ready written back by the kubelet", node)

    # its process dies: the kubelet starts it again and counts the restart
    pid = int(cs["containerID"].removeprefix("process://"))
    os.kill(pid, signal.SIGKILL)

    def restarted(c: Client):
        p = _running_ready(c, "web-1")
        s = p and p["status"]["containerStatuses"][0]
        return s if s and s["restartCount"] == 1 and s["containerID"] != cs["containerID"] else None
    cs2 = _wait(client, restarted, "the container restarted", node)
    assert cs2["lastState"]["terminated"]["exitCode"] == 137
    assert _tcp_ask(node.netns, ip, 8080).startswith("web-1 ")
    pid2 = int(cs2["containerID"].removeprefix("process://"))

    # deleted: the process stops, the namespace goes, the object is removed
    netns = f"{node.pod_prefix}default-web-1"
    assert netns in node.pod_namespaces()
    client.delete(PODS, "web-1", "default")
    _wait(client, lambda c: _pod(c, "web-1") is None, "web-1 deleted by the kubelet", node)
    assert netns not in node.pod_namespaces()
    assert not os.path.exists(f"/proc/{pid2}") or _zombie(pid2)
    assert node.stop() == 0


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_unknown_image_waits_and_kubelet_exit_cleans_up(cluster):
    _, node, client = cluster
    _wait(client, lambda c: c.get_or_none(NODES, "n1"), "node registered", node)
    client.create(PODS, {"metadata": {"name": "bad"}, "spec": {
        "containers": [{"name": "c", "image": "nginx:1.27"}]}}, "default")
    client.create(PODS, {"metadata": {"name": "sleeper"}, "spec": {
        "containers": [{"name": "c", "image": "kproxy.local/base", "command": ["sleep", "1000"]}]}}, "default")

    def waiting_on_image(c: Client):
        p = _pod(c, "bad")
        s = p and (p.get("status") or {}).get("containerStatuses")
        reason = s and (s[0]["state"].get("waiting") or {}).get("reason")
        return p if reason in ("ErrImagePull", "ImagePullBackOff") else None
    client.create(PODS, {"metadata": {"name": "hostnet"}, "spec": {"hostNetwork": True, "containers": [{
        "name": "echo", "image": "kproxy.local/echo", "env": [{"name": "PORT", "value": "9090"}],
        "readinessProbe": {"tcpSocket": {"port": 9090}, "periodSeconds": 1}}]}}, "default")
    hostnet = _wait(client, lambda c: _running_ready(c, "hostnet"), "hostnet running", node)
    assert hostnet["status"]["podIP"] == NODE_IP
    _wait(client, lambda c: _tcp_ask(node.netns, NODE_IP, 9090).startswith("hostnet "), "hostnet answers", node)
    client.create(PODS, {"metadata": {"name": "noexec"}, "spec": {
        "containers": [{"name": "c", "image": "kproxy.local/base", "command": ["no-such-program"]}]}}, "default")
    bad = _wait(client, waiting_on_image, "bad waits on its image", node)

    def run_error(c: Client):
        s = _container(c, "noexec")
        return s if ((s or {}).get("state", {}).get("waiting") or {}).get("reason") == "RunContainerError" else None
    noexec = _wait(client, run_error, "noexec cannot start", node)
    assert '"no-such-program": executable file not found' in noexec["state"]["waiting"]["message"]
    assert bad["status"]["phase"] == "Pending" and _cond(bad, "Ready") == "False"
    sleeper = _wait(client, lambda c: _running_ready(c, "sleeper"), "sleeper running", node)
    pid = int(sleeper["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
    assert len(node.pod_namespaces()) == 3
    assert node.stop() == 0
    assert node.pod_namespaces() == []
    assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)
    assert _tcp_ask(node.netns, NODE_IP, 9090).startswith("error")  # the hostNetwork process is gone too


def _container(c: Client, name: str) -> dict | None:
    p = _pod(c, name)
    statuses = p and (p.get("status") or {}).get("containerStatuses")
    return statuses[0] if statuses else None


def test_env_probes_restart_policies_and_graceful_stop(cluster, tmp_path):
    _, node, client = cluster
    _wait(client, lambda c: c.get_or_none(NODES, "n1"), "node registered", node)
    svc = client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "none"}, "ports": [{"port": 80, "targetPort": 8080}]}}, "default")
    out = tmp_path / "out"
    out.mkdir()
    flag = tmp_path / "unhealthy"

    def base(name: str, script: str, **spec) -> dict:
        return {"metadata": {"name": name}, "spec": {**spec, "containers": [{
            "name": "c", "image": "kproxy.local/base", "command": ["sh", "-c", script],
            "env": [{"name": "OUT", "value": str(out)},
                    {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}}

    client.create(SECRETS, {"metadata": {"name": "creds"}, "data": {"token": "dDBrZW4="}}, "default")
    env_pod = base("env", 'echo "$WEB_SERVICE_HOST:$WEB_SERVICE_PORT $HOSTNAME $MY_IP $TOKEN" > $OUT/env; '
                   "exec sleep 1000")
    env_pod["spec"]["containers"][0]["env"].append(
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}})
    client.create(PODS, env_pod, "default")
    no_secret = base("no-secret", "exec sleep 1000")
    no_secret["spec"]["containers"][0]["env"].append(
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}})
    client.create(PODS, no_secret, "default")
    client.create(PODS, base("crash", "exit 3"), "default")
    client.create(PODS, base("done", "exit 0", restartPolicy="Never"), "default")
    client.create(PODS, base("failed", "exit 2", restartPolicy="Never"), "default")
    graceful = base("graceful", 'trap "echo TERM > $OUT/term; exit 0" TERM; while true; do sleep 0.1; done',
                    terminationGracePeriodSeconds=20)
    graceful["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": [
        "sh", "-c", f"echo PRESTOP > {out}/prestop"]}}}
    client.create(PODS, graceful, "default")
    client.create(PODS, {"metadata": {"name": "live"}, "spec": {"containers": [{
        "name": "echo", "image": "kproxy.local/echo",
        "livenessProbe": {"exec": {"command": ["sh", "-c", f"test ! -e {flag}"]},
                          "periodSeconds": 1, "failureThreshold": 1}}]}}, "default")

    started_flag = tmp_path / "started"
    client.create(PODS, {"metadata": {"name": "slow-start"}, "spec": {"containers": [{
        "name": "echo", "image": "kproxy.local/echo",
        "startupProbe": {"exec": {"command": ["test", "-e", str(started_flag)]}, "periodSeconds": 1,
                         "failureThreshold": 1000}}]}}, "default")
    client.create(PODS, {"metadata": {"name": "unready"}, "spec": {"containers": [{
        "name": "echo", "image": "kproxy.local/echo",
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8081}, "periodSeconds": 1}}]}}, "default")

    # env: the Service variables, the pod name as HOSTNAME, the downward API
    pod = _wait(client, lambda c: _running_ready(c, "env"), "env running", node)
    _wait(client, lambda c: (out / "env").exists() and (out / "env").read_text().strip(), "env written", node)
    assert (out / "env").read_text().split() == [f"{svc['spec']['clusterIP']}:80", "env", pod["status"]["podIP"],
                                                 "t0ken"]
    def config_error(c: Client):
        s = _container(c, "no-secret")
        return ((s or {}).get("state", {}).get("waiting") or {}).get("reason") == "CreateContainerConfigError" and s
    missing = _wait(client, config_error, "no-secret waits on its Secret", node)
    assert 'secret "missing" not found' in missing["state"]["waiting"]["message"]

    # restartPolicy Always: a container that keeps failing backs off
    def backing_off(c: Client):
        s = _container(c, "crash")
        waiting = s and s["state"].get("waiting") or {}
        return s if waiting.get("reason") == "CrashLoopBackOff" and s["restartCount"] >= 1 else None
    crash = _wait(client, backing_off, "crash in CrashLoopBackOff", node)
    assert crash["lastState"]["terminated"]["exitCode"] == 3 and not crash["ready"]
    assert crash["state"]["waiting"]["message"].startswith("back-off ")

    # restartPolicy Never: the phase says how it ended
    def phase(name: str, want: str):
        return lambda c: (_pod(c, name) or {}).get("status", {}).get("phase") == want
    _wait(client, phase("done", "Succeeded"), "done Succeeded", node)
    _wait(client, phase("failed", "Failed"), "failed Failed", node)
    assert _container(client, "failed")["state"]["terminated"]["exitCode"] == 2  # type: ignore[index]
    assert _container(client, "done")["restartCount"] == 0  # type: ignore[index]

    # a liveness failure restarts the container
    _wait(client, lambda c: _running_ready(c, "live"), "live running", node)
    flag.touch()
    _wait(client, lambda c: (_container(c, "live") or {}).get("restartCount", 0) >= 1, "live restarted", node)
    flag.unlink()
    _wait(client, lambda c: _running_ready(c, "live"), "live running again", node)

    def reasons(c: Client, name: str) -> set[str]:
        events = c.list(EVENTS, "default")["items"]
        return {e["reason"] for e in events if e["involvedObject"]["name"] == name
                and e.get("reportingComponent") == "kubelet"}
    _wait(client, lambda c: {"Started", "Unhealthy", "Killing"} <= reasons(c, "live"), "live's Events", node)
    _wait(client, lambda c: "BackOff" in reasons(c, "crash"), "crash's BackOff Event", node)

    # graceful deletion: preStop, then SIGTERM, then the object goes
    _wait(client, lambda c: _running_ready(c, "graceful"), "graceful running", node)
    client.delete(PODS, "graceful", "default")
    _wait(client, lambda c: _pod(c, "graceful") is None, "graceful deleted", node)
    assert (out / "prestop").read_text().strip() == "PRESTOP"
    assert (out / "term").read_text().strip() == "TERM"

    # all along, a readiness probe on a port nobody serves kept that pod running but not ready
    unready = _pod(client, "unready")
    assert unready and unready["status"]["phase"] == "Running" and _cond(unready, "Ready") == "False"
    assert unready["status"]["containerStatuses"][0]["started"] and not unready["status"]["containerStatuses"][0]["ready"]

    # a startup probe that has not passed: running, but neither started nor ready; then it passes
    slow = _container(client, "slow-start")
    assert slow and "running" in slow["state"] and not slow["started"] and not slow["ready"]
    started_flag.touch()
    _wait(client, lambda c: _running_ready(c, "slow-start"), "slow-start started and ready", node)
    assert _container(client, "slow-start")["started"]  # type: ignore[index]


def test_kubelet_killed_and_restarted_adopts_its_pods(cluster):
    _, node, client = cluster
    _wait(client, lambda c: c.get_or_none(NODES, "n1"), "node registered", node)
    client.create(PODS, {"metadata": {"name": "survivor"}, "spec": {"containers": [{
        "name": "echo", "image": "kproxy.local/echo",
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}, "default")
    client.create(PODS, {"metadata": {"name": "orphan"}, "spec": {"containers": [{
        "name": "c", "image": "kproxy.local/base", "command": ["sleep", "3600"]}]}}, "default")
    first = _wait(client, lambda c: _running_ready(c, "survivor"), "survivor running", node)
    orphan = _wait(client, lambda c: _running_ready(c, "orphan"), "orphan running", node)
    old_pid = int(first["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
    orphan_pid = int(orphan["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
    assert node.proc is not None
    node.proc.kill()  # a crash: no cleanup
    node.proc.wait()
    node.proc = None
    assert os.path.exists(f"/proc/{old_pid}")  # the pod outlives its kubelet, as containers do
    client.delete(PODS, "orphan", "default", grace_period_seconds=0)  # gone while no kubelet runs
    node.start_kubelet()

    # the new kubelet takes the running pod over: same process, no restart, status unchanged
    _wait(client, lambda c: not os.path.exists(f"/proc/{orphan_pid}") or _zombie(orphan_pid) or None,
          "the orphan's process stopped", node)
    _wait(client, lambda c: len(list((node.root / "pods").glob("*/pod.json"))) == 1 or None,
          "only the survivor's record left", node)
    again = _wait(client, lambda c: _running_ready(c, "survivor"), "survivor still running", node)
    assert again["status"]["containerStatuses"] == first["status"]["containerStatuses"]
    assert again["status"]["conditions"] == first["status"]["conditions"]
    assert _tcp_ask(node.netns, again["status"]["podIP"], 8080).startswith("survivor ")
    assert node.pod_namespaces() == [f"{node.pod_prefix}default-survivor"]

    # its death is still seen (not our child: the exit code is unknown) and it is restarted
    os.kill(old_pid, signal.SIGKILL)

    def restarted(c: Client):
        cs = (_running_ready(c, "survivor") or {}).get("status", {}).get("containerStatuses")
        return cs[0] if cs and cs[0]["restartCount"] == 1 else None
    cs = _wait(client, restarted, "survivor restarted", node)
    assert cs["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert node.stop() == 0
    assert node.pod_namespaces() == []


def test_init_containers_run_first_and_in_order(cluster, tmp_path):
    _, node, client = cluster
    _wait(client, lambda c: c.get_or_none(NODES, "n1"), "node registered", node)
    trail = tmp_path / "trail"

    def step(name: str, script: str) -> dict:
        return {"name": name, "image": "kproxy.local/base", "command": ["sh", "-c", script]}
    client.create(PODS, {"metadata": {"name": "inits"}, "spec": {
        "initContainers": [step("one", f"echo one >> {trail}"), step("two", f"echo two >> {trail}")],
        "containers": [step("app", f"echo app >> {trail}; exec sleep 1000")]}}, "default")
    client.create(PODS, {"metadata": {"name": "init-fails"}, "spec": {"restartPolicy": "Never",
        "initContainers": [step("broken", "exit 4")], "containers": [step("app", f"echo never >> {trail}")]}},
        "default")
    pod = _wait(client, lambda c: _running_ready(c, "inits"), "inits running", node)
    assert [s["state"]["terminated"]["reason"] for s in pod["status"]["initContainerStatuses"]] == [
        "Completed", "Completed"]
    assert _cond(pod, "Initialized") == "True"
    _wait(client, lambda c: trail.exists() and len(trail.read_text().split()) >= 3, "app ran", node)
    failed = _wait(client, lambda c: (p := _pod(c, "init-fails")) and p.get("status", {}).get("phase") == "Failed"
                   and p, "init-fails Failed", node)
    assert failed["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert _cond(failed, "Initialized") == "False"
    assert trail.read_text().split() == ["one", "two", "app"]  # in order, and the failed pod's app never ran
