"""--insecure-bind: plain HTTP only on loopback, only when asked for, next to the TLS listener."""
from __future__ import annotations

import socket
import subprocess
import sys

from tests.apiserver.fixtures import start_apiserver
from tests.apiserver.httputil import Http


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_insecure_bind_refuses_non_loopback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kproxy", "apiserver", "--data-dir", str(tmp_path),
                           "--bind", "127.0.0.1:0", "--insecure-bind", "0.0.0.0:8080"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "only served on loopback" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_insecure_listener_beside_tls(tmp_path):
    port = free_port()
    server = start_apiserver(tmp_path, ["--no-controllers", "--insecure-bind", f"127.0.0.1:{port}"])
    try:
        assert server.url.startswith("https://")
        plain = Http(f"http://127.0.0.1:{port}")
        assert plain.call("POST", "/api/v1/namespaces", {"metadata": {"name": "plain"}})[0] == 201
        assert server.http().ok("GET", "/api/v1/namespaces/plain")["metadata"]["name"] == "plain"
        assert server.http(identity=None).call("GET", "/api/v1/namespaces/plain")[0] == 401
        audit = (server.data_dir / "audit.log").read_text()
        assert '"user":"system:unsecured"' in audit
    finally:
        server.stop()
