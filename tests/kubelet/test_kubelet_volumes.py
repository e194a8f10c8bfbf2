"""Pod volumes end to end: a real apiserver, `kproxy kubelet` and processes that read their
volumes at the mountPaths in a mount namespace of their own, and a pod that calls the
apiserver with its projected service-account token."""
from __future__ import annotations

import os
import socket
import threading

import pytest

from kproxy.api.resources import CONFIG_MAPS, EVENTS, PODS, ROLE_BINDINGS, ROLES, SECRETS
from kproxy.client.sync import Client
from kproxy.netns import NetNS
from tests.apiserver.fixtures import start_apiserver
from tests.kubelet.test_kubelet_e2e import NODE_IP, KubeletNode, _wait

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APISERVER_PORT_IN_NODE = 6443
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class NodeForwarder:
    """Listens on NODE_IP:6443 inside the node namespace and relays each connection to the
    apiserver on the host's loopback, so pods reach the apiserver as they would a node's."""

    def __init__(self, netns: str, host_port: int):
        ns = NetNS(netns)
        try:
            self.listener = ns.run(socket.create_server, (NODE_IP, APISERVER_PORT_IN_NODE))
        finally:
            ns.close()
        self.host_port = host_port
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.host_port))
            except OSError:
                return
            self.sockets += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        for s in self.sockets:
            s.close()


@pytest.fixture
def cluster(tmp_path):
    server = start_apiserver(tmp_path, ["--tls-san", NODE_IP])
    node = KubeletNode(tmp_path, server)
    client = Client.from_kubeconfig(server.kubeconfig)
    forwarder = None
    try:
        node.start()
        forwarder = NodeForwarder(node.netns, server.port)
        yield server, node, client
    finally:
        if forwarder is not None:
            forwarder.close()
        client.close()
        node.cleanup()
        server.stop()


def _log(node: KubeletNode, pod: dict, container: str = "c") -> str:
    path = node.root / "pods" / pod["metadata"]["uid"] / f"{container}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _logged(client: Client, node: KubeletNode, name: str, text: str) -> str:
    def fetch(c: Client):
        pod = c.get_or_none(PODS, name, "default")
        out = _log(node, pod) if pod else ""
        return out if text in out else None
    return _wait(client, fetch, f"{name} logs {text!r}", node)


def _host_mounts() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def test_volumes_seen_at_mount_paths_updated_and_missing_ones_wait(cluster, tmp_path):
    _, node, client = cluster
    mnt = tmp_path / "mnt"  # mount points live under the test's directory, not the host's /etc
    # a pod naming a ConfigMap that does not exist yet stays ContainerCreating
    client.create(PODS, {"metadata": {"name": "waits"}, "spec": {
        "nodeName": "n1", "automountServiceAccountToken": False,
        "volumes": [{"name": "late", "configMap": {"name": "late"}}],
        "containers": [{"name": "c", "image": "kproxy.local/base", "volumeMounts": [
            {"name": "late", "mountPath": f"{mnt}/late"}],
            "command": ["sh", "-c", f"cat {mnt}/late/k; echo; sleep 3600"]}]}}, "default")
    client.create(CONFIG_MAPS, {"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}}, "default")
    client.create(SECRETS, {"metadata": {"name": "pw"}, "stringData": {"password": "s3cret"}}, "default")
    script = (f"cat {mnt}/pw/password; echo; stat -L -c 'mode=%a' {mnt}/pw/password; "
              f"cat {mnt}/info/labels; echo; echo ns=$(cat {SA_DIR}/namespace); "
              f"test -s {SA_DIR}/token && echo token-ok; grep -q BEGIN {SA_DIR}/ca.crt && echo ca-ok; "
              f"echo scratch > {mnt}/scratch/f && cat {mnt}/scratch/f; "
              f"while :; do echo greeting=$(cat {mnt}/cfg/greeting); sleep 0.5; done")
    client.create(PODS, {"metadata": {"name": "reader", "labels": {"app": "reader"}}, "spec": {
        "nodeName": "n1",
        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                    {"name": "pw", "secret": {"secretName": "pw", "defaultMode": 0o400}},
                    {"name": "info", "downwardAPI": {"items": [{"path": "labels",
                                                                "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "scratch", "emptyDir": {"medium": "Memory"}}],
        "containers": [{"name": "c", "image": "kproxy.local/base", "command": ["sh", "-c", script],
                        "volumeMounts": [{"name": "cfg", "mountPath": f"{mnt}/cfg"},
                                         {"name": "pw", "mountPath": f"{mnt}/pw"},
                                         {"name": "info", "mountPath": f"{mnt}/info"},
                                         {"name": "scratch", "mountPath": f"{mnt}/scratch"}]}]}}, "default")
    out = _logged(client, node, "reader", "greeting=hello")
    for line in ("s3cret", "mode=400", 'app="reader"', "ns=default", "token-ok", "ca-ok", "scratch"):
        assert line in out, out
    pod = client.get(PODS, "reader", "default")
    assert any(v["name"].startswith("kube-api-access-") for v in pod["spec"]["volumes"])
    # the container's mounts stay in its own mount namespace
    assert str(mnt) not in _host_mounts()
    assert os.listdir(mnt / "cfg") == []

    client.patch(CONFIG_MAPS, "cfg", {"data": {"greeting": "bye"}}, "default")
    _logged(client, node, "reader", "greeting=bye")

    waiting = client.get(PODS, "waits", "default")
    state = waiting["status"]["containerStatuses"][0]["state"]
    assert state == {"waiting": {"reason": "ContainerCreating"}}, waiting["status"]
    events = _wait(client, lambda c: [e for e in c.list(EVENTS, "default")["items"]
                                      if e.get("reason") == "FailedMount"], "FailedMount event", node)
    assert 'configmap "late" not found' in events[0]["message"]
    assert events[0]["involvedObject"]["name"] == "waits"
    client.create(CONFIG_MAPS, {"metadata": {"name": "late"}, "data": {"k": "arrived"}}, "default")
    _logged(client, node, "waits", "arrived")


def test_pod_calls_the_apiserver_with_its_projected_token(cluster):
    _, node, client = cluster
    client.create(ROLES, {"metadata": {"name": "pod-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}, "default")
    client.create(ROLE_BINDINGS, {"metadata": {"name": "pod-reader"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]}, "default")
    script = f"""
import ssl, urllib.request, urllib.error
token = open("{SA_DIR}/token").read()
ctx = ssl.create_default_context(cafile="{SA_DIR}/ca.crt")
for what in ("pods/caller", "secrets"):
    req = urllib.request.Request("https://{NODE_IP}:{APISERVER_PORT_IN_NODE}/api/v1/namespaces/default/" + what,
                                 headers={{"Authorization": "Bearer " + token}})
    try:
        code = urllib.request.urlopen(req, context=ctx, timeout=20).status
    except urllib.error.HTTPError as exc:
        code = exc.code
    print(what, code, flush=True)
"""
    client.create(PODS, {"metadata": {"name": "caller"}, "spec": {
        "nodeName": "n1", "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "kproxy.local/base", "command": ["python3", "-c", script]}]}},
        "default")
    out = _logged(client, node, "caller", "secrets ")
    assert "pods/caller 200" in out and "secrets 403" in out, out
