"""The official Python client's pod e2e tests (kubernetes-client/python e2e_test/test_client.py:
pod APIs, exec through kubernetes.stream, exit codes, port-forward, informers), with their steps
and assertions, against a real apiserver and `kproxy kubelet` running the pods.

That suite is not shipped in the PyPI package; these are our own tests of the same behaviour.
Waits have generous bounded deadlines (a loaded CI machine), never a threshold that must hold."""
from __future__ import annotations

import gzip
import http.client
import json
import select
import threading
import time
import uuid

import pytest
from kubernetes import config
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.informer.informer import ADDED, DELETED, MODIFIED, SharedInformer
from kubernetes.stream import portforward, stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from tests.kubelet.test_kubelet_e2e import WAIT
from tests.kubelet.test_kubelet_server import cluster  # noqa: F401  (the module's cluster fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# two TCP echo servers in the pod (port_server.py of the client's suite does the same)
PORT_SERVER = """
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
def echo(c):
    while data := c.recv(65536):
        c.sendall(data)
    c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
threading.Event().wait()
"""


def short_uuid() -> str:
    return str(uuid.uuid4())[-12:]


@pytest.fixture(scope="module")
def api(cluster):  # noqa: F811
    client = config.new_client_from_config(config_file=cluster.server.kubeconfig)
    try:
        yield CoreV1Api(client)
    finally:
        client.close()


def _pod(api: CoreV1Api, name: str, command: list[str], restart: str = "Always", **container) -> None:
    api.create_namespaced_pod(namespace="default", body={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": restart, "containers": [
            {"name": "main", "image": "kproxy.local/base", "command": command, **container}]}})


def _until(check, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _running(api: CoreV1Api, name: str) -> None:
    def ready():
        pod = api.read_namespaced_pod(name=name, namespace="default")
        assert pod.status.phase in ("Pending", "Running"), pod.status
        return pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses or [None] if c)
    _until(ready, f"pod {name} running and ready")


def _sleeper(api: CoreV1Api, prefix: str) -> str:
    name = f"{prefix}-{short_uuid()}"
    _pod(api, name, ["/bin/sh", "-c", "while true; do date; sleep 5; done"])
    _running(api, name)
    return name


def test_pod_apis(api):
    name = f"busybox-test-{short_uuid()}"
    _pod(api, name, ["/bin/sh", "-c", "while true; do date; sleep 5; done"])
    resp = api.read_namespaced_pod(name=name, namespace="default")
    assert resp.metadata.name == name and resp.status.phase
    _running(api, name)

    resp = stream(api.connect_get_namespaced_pod_exec, name, "default",
                  command=["/bin/sh", "-c", "for i in $(seq 1 3); do date; done"],
                  stderr=False, stdin=False, stdout=True, tty=False)
    assert isinstance(resp, str) and len(resp.splitlines()) == 3, resp

    resp = stream(api.connect_get_namespaced_pod_exec, name, "default",
                  command=["/bin/sh", "-c", 'echo -n "This is a test string" | gzip'],
                  stderr=False, stdin=False, stdout=True, tty=False, binary=True)
    assert isinstance(resp, bytes) and gzip.decompress(resp).decode() == "This is a test string"

    resp = stream(api.connect_post_namespaced_pod_exec, name, "default", command=["uptime"],
                  stderr=False, stdin=False, stdout=True, tty=False)
    assert len(resp.splitlines()) == 1, resp

    for _ in range(2):  # interactive, twice: the second session must not see the first's state
        resp = stream(api.connect_post_namespaced_pod_exec, name, "default", command=["/bin/sh"],
                      stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
        resp.write_stdin("echo test string 1\n")
        assert resp.readline_stdout(timeout=WAIT) == "test string 1"
        assert not resp.peek_stderr()
        resp.write_stdin("echo test string 2 >&2\n")
        assert resp.readline_stderr(timeout=WAIT) == "test string 2"
        assert not resp.peek_stdout()
        resp.write_stdin("exit\n")
        line = _until(lambda: resp.update(timeout=1) or resp.read_channel(ERROR_CHANNEL), "the exec's status")
        assert json.loads(line)["status"] == "Success"
        _until(lambda: resp.update(timeout=1) or not resp.is_open(), "the exec's socket to close")
        resp.close()

    assert len(api.list_pod_for_all_namespaces().items) > 0
    api.delete_namespaced_pod(name=name, namespace="default", body={})


def test_exit_code(api):
    name = _sleeper(api, "busybox-test")
    for command, value in ((["false"], 1), (["/bin/sh", "-c", "sleep 1; exit 3"], 3), (["true"], 0),
                           (["/bin/sh", "-c", "ls /"], 0)):
        client = stream(api.connect_get_namespaced_pod_exec, name, "default", command=command,
                        stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        assert client.returncode is None
        client.run_forever(timeout=WAIT)
        assert client.returncode == value, command
        assert client.returncode == value  # idempotent
    api.delete_namespaced_pod(name=name, namespace="default", body={})


def _echo_pod(api: CoreV1Api, *ports: int) -> str:
    name = f"portforward-raw-{short_uuid()}"
    _pod(api, name, ["python3", "-c", PORT_SERVER, *map(str, ports)],
         readinessProbe={"tcpSocket": {"port": ports[-1]}, "periodSeconds": 1})
    _running(api, name)
    return name


def _exchange(socks: dict, sent: dict) -> dict:
    """Reads from every socket until it has echoed what was sent to it."""
    replies = {s: b"" for s in socks.values()}
    deadline = time.monotonic() + WAIT
    while any(replies[s] != sent[s] for s in replies) and time.monotonic() < deadline:
        r, _, _ = select.select([s for s in replies if replies[s] != sent[s]], [], [], 1)
        for sock in r:
            data = sock.recv(1024)
            assert data, "unexpected socket close"
            replies[sock] += data
    return replies


def test_portforward_raw(api):
    name = _echo_pod(api, 1234, 1235)
    for ix in range(3):
        pf = portforward(api.connect_get_namespaced_pod_portforward, name, "default", ports="1234,1235,1236")
        assert pf.connected
        socks = {p: pf.socket(p) for p in (1234, 1235)}
        sent = {}
        for port, sock in socks.items():
            sock.setblocking(True)
            sent[sock] = f"Test {ix} port {port} forwarding".encode()
            sock.sendall(sent[sock])
        replies = _exchange(socks, sent)
        assert replies == sent
        assert pf.connected
        assert len(_established(api, name, 1234, 1235).splitlines()) == 2  # one connection per port

        # nothing listens on 1236: its error channel says why, and its socket is closed
        error = _until(lambda: pf.error(1236), "the error of port 1236")
        assert error.startswith("error forwarding port 1236 to pod ") and "connection refused" in error, error
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):  # the first sends may still find buffer room before the close lands
                pf.socket(1236).sendall(b"This should fail...")
                time.sleep(0.05)
        pf.socket(1236).close()

        for sock in socks.values():  # the same connections carry more
            assert pf.connected
            again = b"Another test using fileno %d" % sock.fileno()
            sock.sendall(again)
            assert _exchange({0: sock}, {sock: again}) == {sock: again}
        for sock in socks.values():
            sock.close()
        _until(lambda: not pf.connected, "the port-forward to close")
        assert pf.error(1234) is None and pf.error(1235) is None
        # the kubelet closed its connections to the pod's servers with the socket
        _until(lambda: _established(api, name, 1234, 1235) == "", "the forwarded connections to close")
    api.delete_namespaced_pod(name=name, namespace="default", body={})


def _established(api: CoreV1Api, pod: str, *ports: int) -> str:
    """The pod's established TCP connections to `ports` (ss, run in the pod)."""
    match = " or ".join(f"sport = :{p}" for p in ports)
    return stream(api.connect_get_namespaced_pod_exec, pod, "default",
                  command=["ss", "-Htn", "state", "established", f"( {match} )"],
                  stderr=False, stdin=False, stdout=True, tty=False).strip()


def test_portforward_http(api):
    name = f"portforward-http-{short_uuid()}"
    _pod(api, name, ["/bin/sh", "-c", "exec python3 -m http.server 8080 --bind 127.0.0.1 --directory /"],
         readinessProbe={"exec": {"command": ["python3", "-c", "import socket; socket.create_connection"
                                              "(('127.0.0.1', 8080)).close()"]}, "periodSeconds": 1})
    _running(api, name)
    pf = portforward(api.connect_get_namespaced_pod_portforward, name, "default", ports="8080")
    conn = http.client.HTTPConnection("kubernetes")
    conn.sock = pf.socket(8080)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200 and b"Directory listing" in response.read()
    conn.close()
    pf.close()
    api.delete_namespaced_pod(name=name, namespace="default", body={})


def test_portforward_to_a_pod_not_running_is_refused(api, cluster):  # noqa: F811
    def refusal(pod: str) -> str:
        with pytest.raises(ApiException) as raised:  # the WebSocket upgrade is refused with a Status
            portforward(api.connect_get_namespaced_pod_portforward, pod, "default", ports="80")
        assert "Handshake status 400" in str(raised.value), raised.value
        return str(raised.value)

    unscheduled = f"unscheduled-{short_uuid()}"
    api.create_namespaced_pod(namespace="default", body={
        "metadata": {"name": unscheduled}, "spec": {"nodeSelector": {"no": "such-node"},
                                                    "containers": [{"name": "main", "image": "kproxy.local/base"}]}})
    assert f"pod {unscheduled} does not have a host assigned" in refusal(unscheduled)
    done = f"completed-{short_uuid()}"
    _pod(api, done, ["true"], restart="Never")
    _until(lambda: api.read_namespaced_pod(done, "default").status.phase == "Succeeded", "the pod to complete")
    assert "unable to forward port because pod is not running. Current status=Succeeded" in refusal(done)
    for name in (unscheduled, done):
        api.delete_namespaced_pod(name=name, namespace="default", body={})
    assert "Traceback" not in cluster.server.log_tail(400)


def test_informer_sees_pods_come_and_go(api):
    events: list[tuple[str, str, str | None]] = []
    seen = threading.Condition()

    def record(kind):
        def handler(pod):
            with seen:
                events.append((kind, pod.metadata.name, pod.status.phase if pod.status else None))
                seen.notify_all()
        return handler
    informer = SharedInformer(api.list_namespaced_pod, namespace="default")
    for kind in (ADDED, MODIFIED, DELETED):
        informer.add_event_handler(kind, record(kind))
    informer.start()
    try:
        name = _sleeper(api, "informer")
        _until(lambda: (MODIFIED, name, "Running") in events, "the informer to see the pod running")
        assert any(e[:2] == (ADDED, name) for e in events)
        assert informer.cache.get_by_key(f"default/{name}").status.phase == "Running"
        api.delete_namespaced_pod(name=name, namespace="default", body={})
        _until(lambda: any(e[:2] == (DELETED, name) for e in events), "the informer to see the pod deleted")
        assert informer.cache.get_by_key(f"default/{name}") is None
    finally:
        informer.stop()
