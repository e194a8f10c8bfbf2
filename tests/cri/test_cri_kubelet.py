"""`kproxy kubelet --runtime containerd` end to end: a real apiserver, a node namespace with its
own containerd (kproxy.containerd.daemon) and Debian's CNI plugins, and the kubelet running
pods as containers through CRI.

The images are the built-in ones (kproxy.images: echo, base, pause), built here and imported
into the node's containerd, plus one without a command.
One containerd, apiserver and kubelet serve the whole module (each test uses pods of its own).
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys

import pytest

from kproxy.api.resources import EVENTS, PODS
from kproxy.client.sync import Client
from kproxy.containerd.cri import CriClient
from kproxy.containerd.daemon import Containerd, shim_pids
from kproxy.containerd.daemon import PAUSE_IMAGE
from kproxy.images.recipes import BUSYBOX_LAYER, PATH_ENV, ImageRecipe
from kproxy.images.layout import ImageConfig
from kproxy.netns import NetNS
from tests import nsutil
from tests.apiserver.fixtures import start_apiserver
from tests.kubelet.test_kubelet_e2e import NODE_IP, POD_CIDR, KubeletNode, _wait
from tests.kubelet.test_kubelet_server import PORT, _node_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("containerd") is None or not os.path.isdir("/usr/lib/cni"),
                                 reason="containerd and containernetworking-plugins are not installed "
                                        "(scripts/install-deps.sh)")]

IMAGE = "kproxy.local/base:latest"
NO_COMMAND = ImageRecipe("kproxy.local/test-nocommand", (BUSYBOX_LAYER,), ImageConfig(env=(PATH_ENV,)))
NO_COMMAND_IMAGE = NO_COMMAND.reference  # neither Entrypoint nor Cmd
SERVE = "mkdir -p /tmp/www; echo hello-$(hostname) > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"


class CriNode(KubeletNode):
    """KubeletNode whose kubelet runs pods in the node's own containerd."""

    def __init__(self, tmp_path, server):
        super().__init__(tmp_path, server)
        self.containerd = Containerd(f"/run/{nsutil.unique_name('cri')}", self.netns, POD_CIDR)
        self.server_args: list[str] = []  # the kubelet server's flags (kubectl logs and exec)

    def start_kubelet(self) -> None:
        if not self.containerd.running():
            self.containerd.start()
            for image in ("kproxy.local/base", "kproxy.local/echo", NO_COMMAND):
                self.containerd.import_image(image)
        self.extra_args = ["--runtime", "containerd", "--containerd-socket", self.containerd.socket,
                           *self.server_args]
        super().start_kubelet()

    def cleanup(self) -> None:
        self.stop()
        self.containerd.remove()
        super().cleanup()


@pytest.fixture(scope="module")
def crinode(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cri")
    server = start_apiserver(tmp_path, ["--kubelet-netns-dial"])
    node = CriNode(tmp_path, server)
    node.server_args = serving_args(server, tmp_path)
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        node.start()
        _wait(client, _node_port, "node registered with its kubelet port", node)
        yield node, client
    finally:
        client.close()
        node.cleanup()
        server.stop()


def serving_args(server, tmp_path) -> list[str]:
    cert, key = str(tmp_path / "kubelet.crt"), str(tmp_path / "kubelet.key")
    done = subprocess.run([sys.executable, "-m", "kproxy", "pki", "kubelet-serving", "--data-dir", str(server.data_dir),
                           "--node-name", "n1", "--san", NODE_IP, "--cert", cert, "--key", key],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return ["--port", str(PORT), "--tls-cert-file", cert, "--tls-private-key-file", key]


def _pod(client: Client, name: str, command: str, **spec) -> dict:
    container = {"name": "c", "image": IMAGE, "command": ["sh", "-c", command], **spec.pop("container", {})}
    spec.setdefault("terminationGracePeriodSeconds", 1)  # httpd as pid 1 ignores SIGTERM
    return client.create(PODS, {"metadata": {"name": name}, "spec": {"nodeName": "n1", "containers": [container],
                                                                    **spec}}, "default")


def _status(client: Client, name: str) -> dict:
    pod = client.get(PODS, name, "default")
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return {**(pod.get("status") or {}), "c": statuses[0]}


def _http_get(netns: str, ip: str, port: int, path: str = "/") -> str:
    def ask() -> str:
        try:
            with socket.create_connection((ip, port), timeout=5) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                answer = b""
                while chunk := s.recv(4096):  # HTTP/1.0: the server closes after the body
                    answer += chunk
                return answer.decode(errors="replace")
        except OSError as exc:
            return f"error: {exc}"
    ns = NetNS(netns)
    try:
        return ns.run(ask)
    finally:
        ns.close()


def _running(client: Client, name: str):
    status = _status(client, name)
    return status if status.get("phase") == "Running" and status["c"].get("ready") else None


def test_echo_pod_gets_an_ip_from_the_pod_cidr_and_answers(crinode):
    node, client = crinode
    client.create(PODS, {"metadata": {"name": "web"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1,
                                                              "containers": [{"name": "c", "image": "kproxy.local/echo",
                                                                              "imagePullPolicy": "Never"}]}}, "default")
    status = _wait(client, lambda c: _running(c, "web"), "web running", node)
    assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network(POD_CIDR)
    assert status["c"]["containerID"].startswith("containerd://")
    answer = _wait(client, lambda c: (lambda a: a if "200" in a else None)(
        _http_get(node.netns, status["podIP"], 8080, "/hostname")), "web answers", node)
    assert answer.endswith("\r\n\r\nweb") or answer.rstrip().endswith("web"), answer  # the sandbox's hostname
    # the container sees its image's files, not the machine's
    listing = subprocess.run(["nsenter", "--target", _pid(node, "web"), "--mount", "/bin/ls", "/"],
                             capture_output=True, text=True).stdout.split()
    assert "bin" in listing and "usr" in listing and "work" not in listing


def _pid(node: CriNode, pod: str) -> str:
    client = CriClient(node.containerd.socket)
    try:
        [container] = [c for c in client.list_containers(labels={"io.kubernetes.container.name": "c"})
                       if c.state == 1 and client.pod_sandbox_status(c.pod_sandbox_id).metadata.name == pod]
        import json
        return str(json.loads(client.container_status(container.id, verbose=True).info["info"])["pid"])
    finally:
        client.close()


def test_exit_codes_and_restarts(crinode):
    node, client = crinode
    _pod(client, "fails", "echo once; exit 3")
    _pod(client, "done", "exit 0", restartPolicy="Never")

    def restarted(c: Client):
        s = _status(c, "fails")["c"]
        return s if s.get("restartCount", 0) >= 1 and s.get("lastState", {}).get("terminated") else None
    s = _wait(client, restarted, "fails restarted", node)
    assert s["lastState"]["terminated"]["exitCode"] == 3 and s["lastState"]["terminated"]["reason"] == "Error"
    assert "once" in node.container_output(client.get(PODS, "fails", "default"))

    def succeeded(c: Client):
        s = _status(c, "done")
        return s if s.get("phase") == "Succeeded" else None
    s = _wait(client, succeeded, "done succeeded", node)
    assert s["c"]["state"]["terminated"]["exitCode"] == 0 and s["c"]["state"]["terminated"]["reason"] == "Completed"


def test_missing_image_never_pulled_and_pull_failure(crinode):
    node, client = crinode
    _pod(client, "never", "true", container={"image": "kproxy.local/absent:1", "imagePullPolicy": "Never"})
    _pod(client, "pull", "true", container={"image": "kproxy.local/absent:1", "imagePullPolicy": "IfNotPresent"})

    def waiting(name: str):
        def fetch(c: Client):
            return (_status(c, name)["c"].get("state") or {}).get("waiting", {}).get("reason") and \
                _status(c, name)["c"]["state"]["waiting"]
        return fetch
    never = _wait(client, lambda c: (lambda w: w if w and w["reason"] == "ErrImageNeverPull" else None)(waiting("never")(c)),
                  "never: ErrImageNeverPull", node)
    assert never["message"] == 'Container image "kproxy.local/absent:1" is not present with pull policy of Never'
    _wait(client, lambda c: (lambda w: w if w and w["reason"] in ("ErrImagePull", "ImagePullBackOff") else None)(
        waiting("pull")(c)), "pull: ErrImagePull", node)
    events = client.list(EVENTS, "default")["items"]
    assert any(e.get("reason") == "ErrImageNeverPull" and e["involvedObject"]["name"] == "never" for e in events)


def test_containerd_restarted_under_running_pods(crinode):
    node, client = crinode
    _pod(client, "steady", SERVE)
    _pod(client, "exits", "until [ -e /tmp/stop ]; do sleep 0.2; done; exit 7")
    steady = _wait(client, lambda c: _running(c, "steady"), "steady running", node)
    _wait(client, lambda c: _running(c, "exits"), "exits running", node)
    exits_pid = _pid(node, "exits")

    node.containerd.stop()
    # while containerd is down: one container exits; the kubelet keeps what it knew
    subprocess.run(["nsenter", "--target", exits_pid, "--mount", "/bin/sh", "-c", ": > /tmp/stop"], check=True)
    assert _status(client, "steady")["c"]["ready"] is True
    node.containerd.start()

    def exit_seen(c: Client):
        s = _status(c, "exits")["c"]
        return s if s.get("restartCount", 0) >= 1 else None
    s = _wait(client, exit_seen, "exit during the outage reported", node)
    assert s["lastState"]["terminated"]["exitCode"] == 7
    after = _status(client, "steady")
    assert after["c"]["containerID"] == steady["c"]["containerID"] and after["c"].get("restartCount", 0) == 0
    _wait(client, lambda c: "hello-steady" in _http_get(node.netns, steady["podIP"], 8080) or None,
          "steady answers after the restart", node)
    # and the kubelet still drives containerd: deleting the pod removes its sandbox
    client.delete(PODS, "steady", "default")
    _wait(client, lambda c: c.get_or_none(PODS, "steady", "default") is None, "steady deleted", node)
    cri = CriClient(node.containerd.socket)
    try:  # the object can go (grace period over) while the kubelet is still removing the sandbox
        _wait(client, lambda c: all(s.metadata.name != "steady" for s in cri.list_pod_sandboxes()) or None,
              "steady's sandbox removed", node)
    finally:
        cri.close()


def _cgroup_dir(pid: str, controller: str) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return f"/sys/fs/cgroup/{controllers}{path}" if os.path.isdir(f"/sys/fs/cgroup/{controllers}") \
                    else f"/sys/fs/cgroup/{controller}{path}"
    return f"/sys/fs/cgroup{path}"  # v2 only: the last (0::) line


def test_limits_through_the_runtime_and_oom_killed(crinode):
    node, client = crinode
    _pod(client, "limited", "sleep 3600", container={"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}})
    _pod(client, "hog", "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo survived", restartPolicy="Never",
         container={"resources": {"limits": {"memory": "32Mi"}}})
    _wait(client, lambda c: _running(c, "limited"), "limited running", node)
    pid = _pid(node, "limited")
    if os.path.exists("/sys/fs/cgroup/memory"):
        assert open(_cgroup_dir(pid, "memory") + "/memory.limit_in_bytes").read().strip() == str(64 << 20)
        assert open(_cgroup_dir(pid, "cpu") + "/cpu.cfs_quota_us").read().strip() == "25000"
        assert open(_cgroup_dir(pid, "cpu") + "/cpu.cfs_period_us").read().strip() == "100000"
    else:
        assert open(_cgroup_dir(pid, "") + "/memory.max").read().strip() == str(64 << 20)

    def terminated(c: Client):
        return _status(c, "hog")["c"].get("state", {}).get("terminated")
    term = _wait(client, terminated, "hog terminated", node)
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137, term


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_logs_and_exec_reach_the_container(crinode):
    node, client = crinode
    _pod(client, "talker", "echo said-once; echo to-stderr >&2; exec sleep 3600")
    _wait(client, lambda c: _running(c, "talker"), "talker running", node)
    env = {**os.environ, "KUBECONFIG": node.server.kubeconfig, "HOME": str(node.server.data_dir)}

    def kubectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=60)
    logs = _wait(client, lambda c: (lambda d: d if "to-stderr" in d.stdout else None)(kubectl("logs", "talker")),
                 "kubectl logs", node)
    # stdout and stderr are two pipes: containerd logs each line as it reads it, so their
    # relative order is not defined
    assert sorted(logs.stdout.splitlines()) == ["said-once", "to-stderr"]
    done = kubectl("exec", "talker", "--", "sh", "-c", "hostname; ls /; ps; exit 5")
    assert done.returncode == 5, done.stderr
    lines = done.stdout.split()
    # the container's hostname, its image's files, and its own processes only (pid namespace)
    assert lines[0] == "talker" and "bin" in lines and "work" not in lines
    assert "3600" in done.stdout and "kproxy" not in done.stdout and "containerd" not in done.stdout
    missing = kubectl("exec", "talker", "--", "no-such-program")
    assert missing.returncode != 0 and "executable file not found" in missing.stderr
    # a program only the image has (this machine has no httpd): looked up in the container
    only_in_image = kubectl("exec", "talker", "--", "httpd", "-h", "/nonexistent", "-p", "1")
    assert "executable file not found" not in only_in_image.stderr, only_in_image.stderr


def _waiting(client: Client, name: str) -> dict | None:
    return (_status(client, name)["c"].get("state") or {}).get("waiting")


def test_create_and_run_errors_and_a_cni_failure(crinode):
    node, client = crinode
    client.create(PODS, {"metadata": {"name": "nocmd"}, "spec": {"nodeName": "n1", "containers": [
        {"name": "c", "image": NO_COMMAND_IMAGE}]}}, "default")
    _pod(client, "noprog", "unused", container={"command": ["/no/such/program"]})
    created = _wait(client, lambda c: (lambda w: w if w and w.get("reason") == "CreateContainerError" else None)(
        _waiting(c, "nocmd")), "nocmd: CreateContainerError", node)
    assert "no command specified" in created["message"]
    started = _wait(client, lambda c: (lambda w: w if w and w.get("reason") in ("RunContainerError", "CrashLoopBackOff")
                                       else None)(_waiting(c, "noprog")), "noprog: RunContainerError", node)
    assert started["reason"] == "CrashLoopBackOff" or "/no/such/program" in started["message"]

    # a broken CNI network: the sandbox fails with an Event, and the pod starts once it is fixed
    conf = os.path.join(node.containerd.layout.cni_conf_dir, "10-kproxy.conflist")
    good = open(conf).read()
    try:
        with open(conf, "w") as f:
            f.write(good.replace('"type": "ptp"', '"type": "no-such-plugin"'))
        _pod(client, "late", SERVE)

        def failed_event(c: Client):
            return [e for e in c.list(EVENTS, "default")["items"]
                    if e.get("reason") == "FailedCreatePodSandBox" and e["involvedObject"]["name"] == "late"]
        [event, *_] = _wait(client, failed_event, "FailedCreatePodSandBox", node)
        assert event["type"] == "Warning" and "no-such-plugin" in event["message"]
        assert _status(client, "late").get("podIP") is None
    finally:
        with open(conf, "w") as f:
            f.write(good)
    _wait(client, lambda c: _running(c, "late"), "late running once CNI works", node, timeout=90)


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


class OwnContainerdNode(KubeletNode):
    """A kubelet given only `--runtime containerd`: it starts the node's containerd itself."""

    def __init__(self, tmp_path, server):
        super().__init__(tmp_path, server)
        self.netns = nsutil.unique_name("kln2")  # the module's node (kln1) is still up
        self.pod_prefix = f"{self.netns}-pod-"

    def start_kubelet(self) -> None:
        self.extra_args = ["--runtime", "containerd"]
        super().start_kubelet()


def test_kubelet_starts_and_stops_its_own_containerd(tmp_path):
    server = start_apiserver(tmp_path)
    node = OwnContainerdNode(tmp_path, server)
    own = Containerd(str(node.root / "containerd"))
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        node.start()
        client.create(PODS, {"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1,
                                                                "containers": [{"name": "c", "image": PAUSE_IMAGE}]}},
                      "default")
        status = _wait(client, lambda c: _running(c, "p"), "p running in the kubelet's containerd", node)
        assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network(POD_CIDR)
        assert os.path.exists(own.socket) and shim_pids(own.socket)
        assert node.stop() == 0
        assert not os.path.exists(own.socket) and not shim_pids(own.socket)
        assert not [p for p in os.listdir("/proc") if p.isdigit() and own.layout.config.encode() in _cmdline(p)]
    finally:
        client.close()
        node.cleanup()
        own.remove()
        server.stop()
