"""`kubectl logs` and `kubectl exec` end to end: the real kubectl, the apiserver's pods/log and
pods/exec, the kubelet's HTTPS server in the node namespace, real processes in a pod namespace.

The apiserver runs with --kubelet-netns-dial: the node is a network namespace of this
machine, so the apiserver opens its connections to the kubelet inside it."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import ssl
import subprocess
import sys
import time

import pytest

from kproxy.api.resources import PODS
from kproxy.client.sync import Client
from kproxy.netns import NetNS
from tests.apiserver.fixtures import start_apiserver
from tests.kubelet.test_kubelet_e2e import NODE_IP, KubeletNode, _running_ready, _wait

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KUBECTL = "kubectl"
PORT = 10250
TICKER = "echo starting >&2; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line \d+$")


class Cluster:
    def __init__(self, server, node: KubeletNode, client: Client):
        self.server, self.node, self.client = server, node, client
        self.env = {**os.environ, "KUBECONFIG": server.kubeconfig, "HOME": str(server.data_dir)}

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=self.env,
                              timeout=timeout)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.kubectl(*args, stdin=stdin)
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}\n" \
                                     f"--- kubelet log ---\n{self.node.log_tail()}"
        return done.stdout

    def pod(self, name: str, script: str, **spec) -> dict:
        self.client.create(PODS, {"metadata": {"name": name}, "spec": {
            "terminationGracePeriodSeconds": 1, **spec,
            "containers": [{"name": "main", "image": "kproxy.local/base", "command": ["sh", "-c", script],
                            "env": [{"name": "GREETING", "value": "hello from the pod"}]}]}}, "default")
        return _wait(self.client, lambda c: _running_ready(c, name), f"{name} running", self.node)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kubeletserver")
    server = start_apiserver(tmp, ["--kubelet-netns-dial"])
    node = KubeletNode(tmp, server)
    client = Client.from_kubeconfig(server.kubeconfig)
    cert, key = str(tmp / "kubelet.crt"), str(tmp / "kubelet.key")
    try:
        done = subprocess.run([sys.executable, "-m", "kproxy", "pki", "kubelet-serving", "--data-dir",
                               str(server.data_dir), "--node-name", "n1", "--san", NODE_IP, "--cert", cert,
                               "--key", key], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        node.extra_args = ["--port", str(PORT), "--tls-cert-file", cert, "--tls-private-key-file", key]
        node.start()
        _wait(client, _node_port, "node registered with its kubelet port", node)
        yield Cluster(server, node, client)
    finally:
        client.close()
        node.cleanup()
        server.stop()


def _node_port(client: Client):
    from kproxy.api.resources import NODES
    node = client.get_or_none(NODES, "n1")
    return node if node and node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == PORT else None


def test_logs_plain_tail_and_follow_until_the_pod_is_deleted(cluster):
    cluster.pod("ticker", TICKER)
    # wait for some output, then --tail takes the last lines of it
    lines = _wait(cluster.client, lambda c: [x for x in cluster.ok("logs", "ticker").splitlines()
                                             if x.startswith("line ")][4:] or None, "five lines", cluster.node)
    assert lines and all(x.startswith("line ") for x in lines)
    tail = cluster.ok("logs", "ticker", "--tail", "2").splitlines()
    assert len(tail) == 2 and all(x.startswith("line ") for x in tail)
    assert cluster.ok("logs", "ticker", "--tail", "0") == ""
    # stderr and stdout both (lines of the two pipes interleave as the shim read them)
    assert {"starting", "line 0"} <= set(cluster.ok("logs", "ticker").splitlines())
    assert cluster.ok("logs", "ticker", "--tail", "1", "--limit-bytes", "4") == "line"
    stamped = cluster.ok("logs", "ticker", "--timestamps", "--tail", "3").splitlines()
    assert len(stamped) == 3 and all(STAMP.match(x) for x in stamped), stamped
    assert "starting" in cluster.ok("logs", "ticker", "--since", "1h").splitlines()
    assert cluster.ok("logs", "ticker", "--since-time", "2999-01-01T00:00:00Z") == ""
    # -f: what was there, then new lines as they come, then the end when the pod goes
    follow = subprocess.Popen([KUBECTL, "logs", "-f", "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=cluster.env)
    try:
        seen = int(tail[-1].split()[1])
        newer = None
        deadline = time.monotonic() + 60
        while newer is None and time.monotonic() < deadline:
            line = follow.stdout.readline()  # type: ignore[union-attr]
            assert line, f"kubectl logs -f ended early: {follow.stderr.read()}"  # type: ignore[union-attr]
            if line.startswith("line ") and int(line.split()[1]) > seen + 3:
                newer = line
        assert newer is not None, "no new line reached kubectl logs -f"
        cluster.ok("delete", "pod", "ticker", "--wait=false")
        assert follow.wait(60) == 0, follow.stderr.read()  # type: ignore[union-attr]
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()


def test_logs_previous_after_a_restart(cluster, tmp_path):
    ran = tmp_path / "ran"  # the first run exits, the second stays: exactly one previous run
    cluster.pod("crasher", f"echo run $(date +%s%N); [ -e {ran} ] && exec sleep 3600; touch {ran}; exit 1")

    def restarted_and_logging(c: Client):
        pod = c.get(PODS, "crasher", "default")
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        if statuses[0].get("restartCount", 0) < 1:
            return None
        current = cluster.kubectl("logs", "crasher").stdout
        return current if current.startswith("run ") else None
    current = _wait(cluster.client, restarted_and_logging, "a restart with output", cluster.node)
    previous = cluster.ok("logs", "crasher", "--previous")
    assert previous.count("run ") == 1 and current.count("run ") == 1 and previous != current
    cluster.ok("delete", "pod", "crasher", "--wait=false")


def test_logs_errors(cluster):
    cluster.pod("quiet", "sleep 3600")
    done = cluster.kubectl("logs", "quiet", "-c", "nope")
    assert done.returncode != 0 and "container nope is not valid for pod quiet" in done.stderr
    done = cluster.kubectl("logs", "quiet", "--previous")
    assert done.returncode != 0 and 'previous terminated container "main" in pod "quiet" not found' in done.stderr
    cluster.ok("delete", "pod", "quiet", "--wait=false")


def test_exec_output_env_namespace_exit_code_and_stdin(cluster):
    pod = cluster.pod("shell", "sleep 3600")
    ip = pod["status"]["podIP"]
    assert cluster.ok("exec", "shell", "--", "sh", "-c", "echo $GREETING; echo $HOSTNAME") == \
        "hello from the pod\nshell\n"
    # the command runs in the pod's network namespace: it sees the pod's address
    assert f"inet {ip}/" in cluster.ok("exec", "shell", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    done = cluster.kubectl("exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\ncommand terminated with exit code 3\n")
    assert cluster.ok("exec", "-i", "shell", "--", "sh", "-c", "cat; echo done", stdin="one\ntwo\n") == \
        "one\ntwo\ndone\n"
    done = cluster.kubectl("exec", "shell", "-c", "nope", "--", "true")
    assert done.returncode != 0 and "container nope is not valid for pod shell" in done.stderr
    done = cluster.kubectl("exec", "shell", "--", "no-such-program")
    assert done.returncode != 0 and 'exec: "no-such-program": executable file not found in $PATH' in done.stderr


def test_a_pod_has_its_own_hostname_shared_by_its_containers_and_exec(cluster):
    """Each pod has its own UTS namespace: its hostname is the pod's name (or spec.hostname),
    the same for every container and for exec, and the machine's own is left alone."""
    machine = socket.gethostname()
    report = "hostname > /dev/stderr; sleep 3600"
    cluster.client.create(PODS, {"metadata": {"name": "named"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": c, "image": "kproxy.local/base", "command": ["sh", "-c", report]}
                       for c in ("one", "two")]}}, "default")
    _wait(cluster.client, lambda c: _running_ready(c, "named"), "named running", cluster.node)
    for container in ("one", "two"):
        assert _poll_output(lambda: cluster.ok("logs", "named", "-c", container)) == "named\n"
    assert cluster.ok("exec", "named", "-c", "two", "--", "hostname") == "named\n"
    cluster.pod("chosen", "sleep 3600", hostname="web-0", subdomain="web")
    assert cluster.ok("exec", "chosen", "--", "hostname") == "web-0\n"
    assert socket.gethostname() == machine


def _poll_output(read, timeout: float = 30.0) -> str:
    """The first non-empty output of `read()` (a container's first line comes a moment after it runs)."""
    deadline = time.monotonic() + timeout
    while not (out := read()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return out


def test_exec_with_a_terminal(cluster):
    cluster.pod("tty", "sleep 3600")
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal, as a user's `kubectl exec -it`
        os.environ.update(cluster.env)
        os.execvp(KUBECTL, [KUBECTL, "exec", "-it", "tty", "--", "sh"])
    out = b""
    try:
        os.write(fd, b"tty; echo answer=$((6*7)); exit 5\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: kubectl exited
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = out.decode(errors="replace")
    assert "answer=42" in text and "/dev/pts/" in text, text
    assert os.waitstatus_to_exitcode(status) == 5, text


def _kubelet_request(cluster: Cluster, identity: str | None) -> tuple[int, str]:
    """GET /healthz on the kubelet from inside the node namespace, with `identity`'s client
    certificate from the apiserver's PKI (None: no certificate). (status, body), or (0, why)
    when the connection is refused."""
    pki = cluster.server.data_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if identity:
        ctx.load_cert_chain(str(pki / f"{identity}.crt"), str(pki / f"{identity}.key"))

    def ask() -> tuple[int, str]:
        try:
            with socket.create_connection((NODE_IP, PORT), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname=NODE_IP) as s:
                    s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {NODE_IP}\r\nConnection: close\r\n\r\n".encode())
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
        except (ssl.SSLError, ConnectionError) as exc:
            return 0, str(exc)
        if not data:  # TLS 1.3: the server's refusal may come as a close after the handshake
            return 0, "closed without an answer"
        head, _, body = data.decode().partition("\r\n\r\n")
        return int(head.split()[1]), body
    ns = NetNS(cluster.node.netns)
    try:
        return ns.run(ask)
    finally:
        ns.close()


def test_kubelet_server_takes_only_the_apiservers_certificate(cluster):
    assert _kubelet_request(cluster, "apiserver-kubelet-client") == (200, "ok")
    code, body = _kubelet_request(cluster, "admin")
    assert code == 403 and json.loads(body)["reason"] == "Forbidden", body
    code, body = _kubelet_request(cluster, None)
    assert code == 0, f"a client without a certificate was answered: {code} {body}"


def test_exec_ends_when_its_container_stops(cluster, tmp_path):
    """The container exits (and restarts in the same pod namespace): its exec dies with it."""
    stop = tmp_path / "stop"
    cluster.pod("stopper", f"while [ ! -e {stop} ]; do sleep 0.2; done; exit 1", restartPolicy="Never")
    session = subprocess.Popen([KUBECTL, "exec", "stopper", "--", "sh", "-c", "echo started; exec sleep 3600"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        assert session.stdout.readline() == "started\n", session.stderr.read()  # type: ignore[union-attr]
        stop.touch()
        rc = session.wait(60)
        assert rc == 137, (rc, session.stderr.read())  # type: ignore[union-attr]  (SIGKILL, as a runtime reports)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    cluster.ok("delete", "pod", "stopper", "--wait=false")
