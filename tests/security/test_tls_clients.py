"""Real clients over TLS with the generated kubeconfigs: kubectl, the official Python client and
kproxy.client; the audit log; permissions of every key and kubeconfig the apiserver wrote."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess

import pytest

from kproxy.api.resources import SERVICES
from kproxy.api.status import ApiError
from kproxy.client.rest import ApiClient
from tests.apiserver.httputil import Http, client_tls_context

KUBECTL = shutil.which("kubectl")


def kubectl(server, identity, *args, check=True):
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(server.data_dir / f"{identity}.kubeconfig"), *args],
                          capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def test_serves_https_only_on_the_bind_address(secure_apiserver):
    assert secure_apiserver.url.startswith("https://127.0.0.1:")
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", secure_apiserver.port, timeout=10)
    try:
        conn.request("GET", "/api")
        resp = conn.getresponse()
        assert resp.status == 400  # aiohttp answers a plain-HTTP request on a TLS port with 400
    except (ConnectionError, http.client.HTTPException):
        pass  # or drops it; either way no API answer over plain HTTP
    finally:
        conn.close()


def test_tls_1_2_and_1_3_are_served(secure_apiserver):
    import socket
    import ssl
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_tls_context(secure_apiserver.data_dir, "admin")
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", secure_apiserver.port), timeout=10) as sock:
            with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]


def test_every_key_and_kubeconfig_is_private(secure_apiserver):
    d = secure_apiserver.data_dir
    assert stat.S_IMODE(os.stat(d / "pki").st_mode) == 0o700
    checked = 0
    for path in [*(d / "pki").iterdir(), *d.glob("*.kubeconfig"), d / "audit.log"]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        checked += 1
    assert checked >= 15
    assert "PRIVATE KEY" not in secure_apiserver.log_path.read_text(errors="replace")


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_as_admin_and_as_agent(secure_apiserver):
    kubectl(secure_apiserver, "admin", "create", "namespace", "kc")
    kubectl(secure_apiserver, "admin", "-n", "kc", "create", "service", "clusterip", "web", "--tcp=80:8080")
    out = kubectl(secure_apiserver, "kube-proxy", "get", "services", "-A", "-o", "json").stdout
    assert "web" in {s["metadata"]["name"] for s in json.loads(out)["items"]}
    denied = kubectl(secure_apiserver, "kube-proxy", "-n", "kc", "delete", "service", "web", check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    kubectl(secure_apiserver, "admin", "-n", "kc", "get", "service", "web")  # still there


def test_official_python_client(secure_apiserver):
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    admin = config.new_client_from_config(config_file=str(secure_apiserver.data_dir / "admin.kubeconfig"))
    agent = config.new_client_from_config(config_file=str(secure_apiserver.data_dir / "kube-proxy.kubeconfig"))
    try:
        core = client.CoreV1Api(admin)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyc")))
        core.create_namespaced_service("pyc", client.V1Service(
            metadata=client.V1ObjectMeta(name="api"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
        names = [s.metadata.name for s in client.CoreV1Api(agent).list_namespaced_service("pyc").items]
        assert names == ["api"]
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(agent).delete_namespaced_service("api", "pyc")
        assert exc.value.status == 403
        assert core.read_namespaced_service("api", "pyc").metadata.name == "api"
    finally:
        admin.close()
        agent.close()
    assert kubernetes  # imported for the skip only


def test_kproxy_client_verifies_the_server(secure_apiserver, tmp_path):
    async def main():
        async with ApiClient.from_kubeconfig(str(secure_apiserver.data_dir / "kube-proxy.kubeconfig")) as c:
            listed = await c.list(SERVICES, "default")
            assert "kubernetes" in {s["metadata"]["name"] for s in listed["items"]}
            with pytest.raises(ApiError) as exc:
                await c.create(SERVICES, {"metadata": {"name": "nope"}, "spec": {"ports": [{"port": 1}]}}, "default")
            assert exc.value.code == 403
    asyncio.run(main())


def test_audit_log_has_a_line_per_mutating_request(secure_apiserver):
    api = Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, "admin"))
    api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "audited"}})
    api.ok("DELETE", "/api/v1/namespaces/audited")
    agent = Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, "kube-proxy"))
    assert agent.call("POST", "/api/v1/namespaces", {"metadata": {"name": "by-agent"}})[0] == 403
    lines = [json.loads(line) for line in (secure_apiserver.data_dir / "audit.log").read_text().splitlines()]
    mine = [(r["user"], r["verb"], r["resource"], r["name"], r["code"]) for r in lines if r["resource"] == "namespaces"]
    assert ("kubernetes-admin", "create", "namespaces", "audited", 201) in mine
    assert ("kubernetes-admin", "delete", "namespaces", "audited", 200) in mine
    assert ("system:kube-proxy", "create", "namespaces", "", 403) in mine
    assert not any(r["verb"] in ("get", "list", "watch") and r["code"] < 400 for r in lines)


def test_rotated_serving_certificate_is_served_without_restart(secure_apiserver):
    import socket
    import subprocess
    import sys
    import time
    from cryptography import x509

    def served_serial():  # the handshake verifies it against the cluster CA
        ctx = client_tls_context(secure_apiserver.data_dir, "admin")
        with socket.create_connection(("127.0.0.1", secure_apiserver.port), timeout=10) as sock:
            with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number

    before = served_serial()
    proc = subprocess.run([sys.executable, "-m", "kproxy", "pki", "rotate-serving",
                           "--data-dir", str(secure_apiserver.data_dir)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    on_disk = x509.load_pem_x509_certificate((secure_apiserver.data_dir / "pki" / "apiserver.crt").read_bytes())
    assert on_disk.serial_number != before
    deadline = time.monotonic() + 30
    while served_serial() != on_disk.serial_number:
        assert time.monotonic() < deadline, "the apiserver still serves the old certificate"
        time.sleep(0.2)
