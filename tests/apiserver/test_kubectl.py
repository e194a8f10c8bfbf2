"""The real kubectl against a real apiserver (with its in-process controllers).

Every kubectl call's stderr is checked for warnings: kubectl must find everything it asks
for (discovery, OpenAPI, server-side field validation) without complaint.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from tests.apiserver.fixtures import start_apiserver

KUBECTL = shutil.which("kubectl")
pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine"),
]

MANIFEST = """
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: demo, labels: {app: web}}
spec:
  nodeName: node-1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: echo
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: demo, labels: {app: web}}
spec:
  nodeName: node-2
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: echo
    ports: [{name: http, containerPort: 8080}]
"""
DEADLINE = 30.0


class Kubectl:
    def __init__(self, kubeconfig: str):
        self.env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": os.path.dirname(kubeconfig)}

    def __call__(self, *args: str, stdin: str | None = None, allow_warnings: bool = False) -> str:
        proc = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=self.env,
                              timeout=120)
        assert proc.returncode == 0, f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
        if not allow_warnings:
            assert "warning" not in proc.stderr.lower(), f"kubectl {' '.join(args)} warned: {proc.stderr}"
        return proc.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "-o", "json"))

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([KUBECTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env)


def wait_until(check, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
def kubectl(tmp_path):
    server = start_apiserver(tmp_path)
    try:
        yield Kubectl(server.kubeconfig)
    finally:
        server.stop()


def slice_addresses(kubectl: Kubectl) -> set[str]:
    slices = kubectl.json("get", "endpointslices", "-n", "demo", "-l", "kubernetes.io/service-name=web")
    return {a for s in slices["items"] for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") for a in e["addresses"]}


def set_ready(kubectl: Kubectl, pod: str, ip: str) -> None:
    patch = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                        "conditions": [{"type": "Ready", "status": "True"}]}}
    kubectl("patch", "pod", pod, "-n", "demo", "--subresource=status", "--type=merge", "-p", json.dumps(patch))


def test_apply_endpointslices_watch_describe_delete(kubectl, tmp_path):
    manifest = tmp_path / "demo.yaml"
    manifest.write_text(MANIFEST)
    out = kubectl("apply", "-f", str(manifest))
    assert "service/web created" in out and "pod/web-2 created" in out

    set_ready(kubectl, "web-1", "10.244.1.5")
    set_ready(kubectl, "web-2", "10.244.2.5")
    wait_until(lambda: slice_addresses(kubectl) == {"10.244.1.5", "10.244.2.5"}, "both pods in the EndpointSlice")
    table = kubectl("get", "endpointslices", "-n", "demo")
    assert "10.244.1.5" in table and "10.244.2.5" in table and "8080" in table

    svc = kubectl.json("get", "svc", "web", "-n", "demo")
    cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    assert cluster_ip.startswith("10.") and 30000 <= node_port <= 32767
    assert f"clusterIP: {cluster_ip}" in kubectl("get", "svc", "web", "-n", "demo", "-o", "yaml")

    described = kubectl("describe", "svc", "web", "-n", "demo")
    assert "NodePort" in described and str(node_port) in described and "app=web" in described

    # `kubectl get svc -w` streams a change
    watcher = kubectl.popen("get", "svc", "web", "-n", "demo", "-w", "-o", "jsonpath={.metadata.labels.tier}{\"\\n\"}")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(lines) >= 1, "the watch's first line")
        kubectl("label", "svc", "web", "-n", "demo", "tier=frontend")
        wait_until(lambda: "frontend\n" in lines, "the label change on the watch")
    finally:
        watcher.kill()
        watcher.wait()
        assert "warning" not in watcher.stderr.read().lower()

    # deleting a pod updates the slice
    kubectl("delete", "pod", "web-2", "-n", "demo", "--grace-period=1")
    wait_until(lambda: slice_addresses(kubectl) == {"10.244.1.5"}, "web-2 leaving the EndpointSlice")

    # re-apply keeps the server-assigned clusterIP and nodePort
    out = kubectl("apply", "-f", str(manifest))
    assert "service/web unchanged" in out or "service/web configured" in out
    again = kubectl.json("get", "svc", "web", "-n", "demo")
    assert again["spec"]["clusterIP"] == cluster_ip
    assert again["spec"]["ports"][0]["nodePort"] == node_port

    # the namespace controller may remove the Service and Pods before kubectl gets to them
    kubectl("delete", "-f", str(manifest), "--timeout=60s", "--ignore-not-found")
    names = kubectl("get", "ns", "-o", "name").split()
    assert "namespace/demo" not in names


def test_apply_change_merges_ports_strategically(kubectl, tmp_path):
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(MANIFEST.split("---")[1])
    kubectl("apply", "-f", "-", stdin=MANIFEST.split("---")[0])
    kubectl("apply", "-f", str(manifest))
    first = kubectl.json("get", "svc", "web", "-n", "demo")
    manifest.write_text(manifest.read_text() + "  - name: metrics\n    port: 9090\n")
    assert "service/web configured" in kubectl("apply", "-f", str(manifest))
    ports = kubectl.json("get", "svc", "web", "-n", "demo")["spec"]["ports"]
    assert [p["port"] for p in ports] == [80, 9090]
    assert ports[0]["nodePort"] == first["spec"]["ports"][0]["nodePort"]
    assert ports[1]["targetPort"] == 9090


def test_unknown_field_is_rejected_by_server_side_validation(kubectl, tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: default}\n"
                        "spec:\n  ports: [{port: 80}]\n  bogus: 1\n")
    proc = subprocess.run([KUBECTL, "apply", "-f", str(manifest)], capture_output=True, text=True, env=kubectl.env)
    assert proc.returncode != 0
    assert 'unknown field "spec.bogus"' in proc.stderr


def test_get_tables_and_errors(kubectl):
    out = kubectl("get", "ns")
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    assert "kube-system" in out and "Active" in out
    svc = kubectl("get", "svc", "-A", "-o", "wide")
    assert "kubernetes" in svc and "10.96.0.1" in svc and "SELECTOR" in svc.splitlines()[0]
    proc = subprocess.run([KUBECTL, "get", "svc", "nope"], capture_output=True, text=True, env=kubectl.env)
    assert proc.returncode != 0 and 'services "nope" not found' in proc.stderr
    assert "v1.32.0-kproxy" in kubectl("version", "-o", "json")


def test_create_commands_that_send_protobuf(kubectl):
    """kubectl's typed clients send protobuf bodies; the server decodes them."""
    kubectl("create", "namespace", "made")
    kubectl("create", "service", "nodeport", "np", "-n", "made", "--tcp=80:8080")
    kubectl("create", "serviceaccount", "robot", "-n", "made")
    kubectl("create", "secret", "generic", "creds", "-n", "made", "--from-literal=user=admin")
    kubectl("create", "quota", "counts", "-n", "made", "--hard=pods=5")
    svc = kubectl.json("get", "svc", "np", "-n", "made")
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["ports"][0]["targetPort"] == 8080
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    assert kubectl.json("get", "secret", "creds", "-n", "made")["data"] == {"user": "YWRtaW4="}
    assert kubectl.json("get", "quota", "counts", "-n", "made")["spec"]["hard"] == {"pods": "5"}
    assert kubectl.json("get", "sa", "robot", "-n", "made")["metadata"]["name"] == "robot"


def test_validate_warn_prints_each_unknown_field(kubectl):
    manifest = ("apiVersion: v1\nkind: Service\nmetadata: {name: w, namespace: default}\n"
                "spec:\n  ports: [{port: 80}]\n  bogus: 1\n  other: 2\n")
    proc = subprocess.run([KUBECTL, "apply", "--validate=warn", "-f", "-"], input=manifest, capture_output=True,
                          text=True, env=kubectl.env)
    assert proc.returncode == 0, proc.stderr
    assert 'Warning: unknown field "spec.bogus"' in proc.stderr
    assert 'Warning: unknown field "spec.other"' in proc.stderr


def test_wait_for_condition_and_for_delete(kubectl, tmp_path):
    kubectl("apply", "-f", "-", stdin=MANIFEST)
    waiter = kubectl.popen("wait", "--for=condition=Ready", "pod/web-1", "-n", "demo", "--timeout=60s")
    try:
        set_ready(kubectl, "web-1", "10.244.1.5")
        out, err = waiter.communicate(timeout=90)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0 and "condition met" in out, err
    kubectl("delete", "pod", "web-2", "-n", "demo", "--grace-period=1", "--wait=false")
    kubectl("wait", "--for=delete", "pod/web-2", "-n", "demo", "--timeout=60s")
    assert "web-2" not in kubectl("get", "pods", "-n", "demo", "-o", "name")


def header(out: str) -> list[str]:
    return out.splitlines()[0].split()


def test_table_columns_match_kube_apiserver(kubectl):
    """Issue 17 item 7: the columns kube-apiserver's printers give these kinds."""
    kubectl("create", "namespace", "cols")
    kubectl("create", "secret", "generic", "creds", "-n", "cols", "--from-literal=a=1", "--from-literal=b=2")
    secrets = kubectl("get", "secret", "creds", "-n", "cols")
    assert header(secrets) == ["NAME", "TYPE", "DATA", "AGE"]
    assert secrets.splitlines()[1].split()[:3] == ["creds", "Opaque", "2"]
    kubectl("create", "serviceaccount", "robot", "-n", "cols")
    assert header(kubectl("get", "sa", "robot", "-n", "cols")) == ["NAME", "SECRETS", "AGE"]
    kubectl("create", "quota", "q", "-n", "cols", "--hard=pods=5,limits.cpu=2")
    quota = kubectl("get", "quota", "q", "-n", "cols")
    assert header(quota) == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert "pods: 0/5" in quota and "limits.cpu: 0/2" in quota
    kubectl("apply", "-f", "-", stdin="""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: cols}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read, namespace: cols}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
- {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: robot, namespace: cols}
""")
    assert header(kubectl("get", "role", "reader", "-n", "cols")) == ["NAME", "CREATED", "AT"]
    assert header(kubectl("get", "clusterrole", "cluster-admin")) == ["NAME", "CREATED", "AT"]
    binding = kubectl("get", "rolebinding", "read", "-n", "cols", "-o", "wide")
    assert header(binding) == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    cells = binding.splitlines()[1].split()
    assert cells[:2] == ["read", "Role/reader"] and cells[3:] == ["alice", "devs", "cols/robot"]
    assert header(kubectl("get", "clusterrolebinding", "-o", "wide"))[:2] == ["NAME", "ROLE"]
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    kubectl("apply", "-f", "-", stdin=json.dumps(node))
    info = {"status": {"nodeInfo": {"osImage": "Debian", "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7",
                                    "kubeletVersion": "v1.32.0", "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                                    "bootID": "", "operatingSystem": "linux", "architecture": "amd64"}}}
    kubectl("patch", "node", "n1", "--subresource=status", "--type=merge", "-p", json.dumps(info))
    nodes = kubectl("get", "node", "n1", "-o", "wide")
    assert header(nodes)[-4:] == ["EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert nodes.splitlines()[1].split()[-3:] == ["Debian", "6.1.0", "containerd://1.7"]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of the first sample `name{...}` whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        sample_labels = dict(part.split("=", 1) for part in line[len(name) + 1:line.index("}")].split(",") if part)
        if all(sample_labels.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{labels} in the metrics")


def test_metrics_and_verbose_health_checks(kubectl):
    """Issue 17 item 11: /metrics as kube-apiserver's, guarded by RBAC; verbose probes."""
    kubectl("get", "svc", "-n", "default")
    kubectl("get", "svc", "kubernetes", "-n", "default")
    text = kubectl("get", "--raw", "/metrics")
    assert metric_value(text, "apiserver_request_total", verb="LIST", resource="services", scope="namespace",
                        code="200") >= 1
    assert metric_value(text, "apiserver_request_total", verb="GET", resource="services", scope="resource",
                        code="200") >= 1
    assert metric_value(text, "apiserver_request_duration_seconds_count", verb="LIST", resource="services") >= 1
    assert metric_value(text, "apiserver_current_inflight_requests", request_kind="readOnly") >= 0
    assert metric_value(text, "apiserver_storage_objects", resource="services") >= 1
    assert metric_value(text, "apiserver_storage_objects", resource="clusterroles.rbac.authorization.k8s.io") >= 1
    watcher = kubectl.popen("get", "svc", "-n", "default", "-w")
    try:
        wait_until(lambda: metric_value(kubectl("get", "--raw", "/metrics"), "apiserver_longrunning_requests",
                                        verb="WATCH", resource="services") == 1, "the watch in the metrics")
    finally:
        watcher.kill()
        watcher.wait()
    # a non-resource URL that needs RBAC: refused to a plain user, granted to system:monitoring
    proc = subprocess.run([KUBECTL, "get", "--raw", "/metrics", "--as=alice"], capture_output=True, text=True,
                          env=kubectl.env)
    assert proc.returncode != 0 and "forbidden" in proc.stderr.lower()
    assert "apiserver_request_total" in kubectl("get", "--raw", "/metrics", "--as=bob", "--as-group=system:monitoring")

    for probe in ("livez", "readyz"):
        verbose = kubectl("get", "--raw", f"/{probe}?verbose")
        assert "[+]ping ok" in verbose and "[+]etcd ok" in verbose and verbose.endswith(f"{probe} check passed\n")
        assert kubectl("get", "--raw", f"/{probe}") == "ok"
        assert kubectl("get", "--raw", f"/{probe}/etcd") == "ok"
    assert "[+]shutdown ok" in kubectl("get", "--raw", "/readyz?verbose")
    assert "[+]etcd excluded: ok" in kubectl("get", "--raw", "/livez?verbose&exclude=etcd")
    proc = subprocess.run([KUBECTL, "get", "--raw", "/livez/nope"], capture_output=True, text=True, env=kubectl.env)
    assert proc.returncode != 0 and "NotFound" in proc.stderr


def test_kubernetes_service_endpoints_hold_the_apiserver(tmp_path):
    """Issue 17 item 10: the apiserver keeps its own address in the kubernetes Service's
    Endpoints and EndpointSlice (so agents load-balance 10.96.0.1:443 to it), and repairs them."""
    server = start_apiserver(tmp_path, ["--advertise-address", "192.0.2.10"])
    try:
        kubectl = Kubectl(server.kubeconfig)
        port = server.port

        def published() -> bool:
            eps = kubectl.json("get", "endpoints", "kubernetes", "-n", "default")
            slices = kubectl.json("get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes")
            return (eps.get("subsets") == [{"addresses": [{"ip": "192.0.2.10"}],
                                            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
                    and [(s["metadata"]["name"], [a for e in s["endpoints"] for a in e["addresses"]], s["ports"])
                         for s in slices["items"]]
                    == [("kubernetes", ["192.0.2.10"], [{"name": "https", "port": port, "protocol": "TCP"}])])

        wait_until(published, "the apiserver's address in the kubernetes Service's endpoints")
        eps = kubectl.json("get", "endpoints", "kubernetes", "-n", "default")
        assert eps["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
        assert f"192.0.2.10:{port}" in kubectl("get", "endpoints", "kubernetes", "-n", "default")
        kubectl("delete", "endpointslice", "kubernetes", "-n", "default")
        kubectl("patch", "endpoints", "kubernetes", "-n", "default", "--type=merge", "-p", '{"subsets": []}')
        wait_until(published, "the endpoints repaired")
    finally:
        server.stop()


def test_loopback_apiserver_publishes_no_endpoints(kubectl):
    """A loopback bind is never published: no agent could reach another host's loopback."""
    assert not kubectl.json("get", "endpoints", "kubernetes", "-n", "default").get("subsets")
    assert kubectl.json("get", "endpointslice", "kubernetes", "-n", "default")["endpoints"] in (None, [])


EXPLAINED = ["services", "service.spec", "service.spec.ports", "pods.spec.containers", "endpointslices.endpoints",
             "rolebindings.subjects", "secrets", "nodes.status"]


def test_explain_shows_descriptions(kubectl):
    """Issue 17 item 12: every field kubectl explain lists has a description."""
    for path in EXPLAINED:
        out = kubectl("explain", path)
        assert "<no description>" not in out and "DESCRIPTION:" in out, out
        assert "FIELDS:" in out, out
    assert "The port the Service listens on." in kubectl("explain", "service.spec.ports.port")
