"""The apiserver process: CLI errors, kubeconfig, discovery, health, graceful shutdown."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.apiserver.fixtures import start_apiserver


@pytest.mark.parametrize("args, message", [
    (["--bind", "nonsense"], "--bind"),
    (["--bind", "127.0.0.1:99999"], "port must be"),
    (["--service-cluster-ip-range", "10.96.0.1/12"], "--service-cluster-ip-range"),
    (["--service-node-port-range", "3-1"], "--service-node-port-range"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "kproxy", "apiserver", "--data-dir", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_second_server_on_same_data_dir_fails_cleanly(bare_apiserver):
    proc = subprocess.run([sys.executable, "-m", "kproxy", "apiserver", "--data-dir", str(bare_apiserver.data_dir),
                           "--bind", "127.0.0.1:0", "--no-controllers"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr


def test_kubeconfig_points_at_the_server(bare_apiserver):
    doc = yaml.safe_load(open(bare_apiserver.kubeconfig))
    assert doc["clusters"][0]["cluster"]["server"] == bare_apiserver.url
    assert doc["current-context"] in {c["name"] for c in doc["contexts"]}


def test_discovery_and_health(bare_apiserver):
    api = bare_apiserver.http()
    assert api.ok("GET", "/api")["versions"] == ["v1"]
    groups = {g["name"] for g in api.ok("GET", "/apis")["groups"]}
    assert groups == {"discovery.k8s.io", "coordination.k8s.io", "rbac.authorization.k8s.io",
                      "authorization.k8s.io", "authentication.k8s.io", "apps", "batch", "policy"}
    core = {r["name"] for r in api.ok("GET", "/api/v1")["resources"]}
    assert {"pods", "pods/status", "services", "namespaces/finalize", "endpoints", "nodes"} <= core
    assert [r["name"] for r in api.ok("GET", "/apis/discovery.k8s.io/v1")["resources"]] == ["endpointslices"]
    status, headers, raw = api.raw("GET", "/apis", headers={
        "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"})
    assert status == 200 and "as=APIGroupDiscoveryList" in headers["content-type"]
    for probe in ("/healthz", "/livez", "/readyz"):
        assert api.raw("GET", probe)[0] == 200
    index = api.ok("GET", "/openapi/v3")["paths"]
    doc = api.ok("GET", index["api/v1"]["serverRelativeURL"])
    svc = doc["components"]["schemas"]["io.k8s.api.core.v1.Service"]
    assert svc["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Service"}]
    ports = doc["components"]["schemas"]["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "port"


def test_sigterm_ends_open_watches_and_exits(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    api = server.http()
    w = api.watch("/api/v1/services?watch=1", timeout=30)
    try:
        server.proc.terminate()
        code = server.proc.wait(20)
        assert code == 0
        while w.next() is not None:  # the stream ends rather than hanging (next() has a deadline)
            pass
    finally:
        w.close()
        server.stop()


def test_port_in_use_is_a_one_line_error(bare_apiserver, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kproxy", "apiserver", "--data-dir", str(tmp_path / "other"),
                           "--bind", f"127.0.0.1:{bare_apiserver.port}", "--no-controllers"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "address already in use" in proc.stderr and "Traceback" not in proc.stderr
