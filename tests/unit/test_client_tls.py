"""ApiClient over real TLS sockets, configured from kubeconfig files as a real cluster's:
CA pinning, client certificates (data and file forms), bearer tokens, insecure mode."""
from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl

import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kproxy.api.resources import NAMESPACES
from kproxy.client.errors import ApiConnectionError
from kproxy.client.rest import ApiClient


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(cn: str, issuer_key=None, issuer_name=None, *, ca=False, server=False):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    cert = b.sign(issuer_key or key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), key, name


@pytest.fixture(scope="module")
def pki():
    ca_pem, ca_key, ca_name = _issue("kproxy-test-ca", ca=True)
    server_pem, server_key, _ = _issue("apiserver", ca_key, ca_name, server=True)
    client_pem, client_key, _ = _issue("admin", ca_key, ca_name)
    other_ca_pem, _, _ = _issue("someone-else", ca=True)
    return {"ca": ca_pem, "server": server_pem, "server_key": _pem_key(server_key),
            "client": client_pem, "client_key": _pem_key(client_key), "other_ca": other_ca_pem}


def run_tls_server(pki, tmp_path, body, *, require_client_cert=True):
    (tmp_path / "server.pem").write_bytes(pki["server"] + pki["server_key"])
    (tmp_path / "ca.pem").write_bytes(pki["ca"])
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(str(tmp_path / "server.pem"))
    if require_client_cert:
        sctx.load_verify_locations(str(tmp_path / "ca.pem"))
        sctx.verify_mode = ssl.CERT_REQUIRED

    async def handle(request):
        peer = request.transport.get_extra_info("peercert") or {}
        cn = [v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"]
        return web.json_response({"kind": "Namespace", "metadata": {"name": request.match_info["name"]},
                                  "seen": {"cn": cn[0] if cn else None,
                                           "auth": request.headers.get("Authorization")}})

    async def main():
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{name}", handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=sctx)
        await site.start()
        try:
            return await body(f"https://127.0.0.1:{runner.addresses[0][1]}")
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def write_kubeconfig(path, server, cluster: dict, user: dict):
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
           "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}]}
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_client_cert_data_and_ca_data(pki, tmp_path):
    async def body(url):
        cfg = write_kubeconfig(tmp_path / "kc", url, {"certificate-authority-data": b64(pki["ca"])},
                               {"client-certificate-data": b64(pki["client"]), "client-key-data": b64(pki["client_key"])})
        async with ApiClient.from_kubeconfig(cfg) as c:
            return await c.get(NAMESPACES, "default")

    got = run_tls_server(pki, tmp_path, body)
    assert got["seen"]["cn"] == "admin"


def test_client_cert_files_relative_to_kubeconfig(pki, tmp_path):
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    (pki_dir / "ca.crt").write_bytes(pki["ca"])
    (pki_dir / "admin.crt").write_bytes(pki["client"])
    (pki_dir / "admin.key").write_bytes(pki["client_key"])

    async def body(url):
        cfg = write_kubeconfig(tmp_path / "kc", url, {"certificate-authority": "pki/ca.crt"},
                               {"client-certificate": "pki/admin.crt", "client-key": "pki/admin.key"})
        async with ApiClient.from_kubeconfig(cfg) as c:
            return await c.get(NAMESPACES, "x")

    assert run_tls_server(pki, tmp_path, body)["seen"]["cn"] == "admin"


def test_wrong_ca_is_refused(pki, tmp_path):
    async def body(url):
        cfg = write_kubeconfig(tmp_path / "kc", url, {"certificate-authority-data": b64(pki["other_ca"])},
                               {"token": "t"})
        async with ApiClient.from_kubeconfig(cfg) as c:
            with pytest.raises(ApiConnectionError, match="(?i)certificate"):
                await c.get(NAMESPACES, "x")

    run_tls_server(pki, tmp_path, body, require_client_cert=False)


def test_token_and_insecure_skip_verify(pki, tmp_path):
    async def body(url):
        cfg = write_kubeconfig(tmp_path / "kc", url, {"insecure-skip-tls-verify": True}, {"token": "sekrit"})
        async with ApiClient.from_kubeconfig(cfg) as c:
            return await c.get(NAMESPACES, "x")

    got = run_tls_server(pki, tmp_path, body, require_client_cert=False)
    assert got["seen"] == {"cn": None, "auth": "Bearer sekrit"}
