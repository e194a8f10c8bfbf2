"""PKI: certificates carry the right identities and names, files are private, the CLI works."""
from __future__ import annotations

import datetime
import os
import stat
import subprocess
import sys

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from kproxy.pki import bootstrap, ca

HOSTS = bootstrap.serving_hosts_for("127.0.0.1", "10.96.0.1")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_client_certificate_names_user_and_groups():
    root = ca.create_ca()
    pair = ca.issue_client(root, "alice", ("dev", "ops"))
    cert = pair.cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["dev", "ops"]
    assert ca.signed_by(cert, root.cert)
    assert not ca.signed_by(cert, ca.create_ca().cert)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_serving_certificate_covers_bind_address_service_ip_and_names():
    pair = ca.issue_serving(ca.create_ca(), bootstrap.serving_hosts_for("10.200.0.1", "10.96.0.1", ("api.example",)))
    hosts = ca.serving_hosts(pair.cert)
    assert {"127.0.0.1", "10.200.0.1", "10.96.0.1", "kubernetes.default.svc", "localhost", "api.example"} <= hosts
    # the wildcard bind address is not a name a client can use
    assert "0.0.0.0" not in bootstrap.serving_hosts_for("0.0.0.0", "10.96.0.1")


def test_expired_certificate_is_not_current():
    old = ca.issue_client(ca.create_ca(), "bob", not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
                          validity=datetime.timedelta(days=1))
    assert not ca.is_current(old.cert)


def test_ensure_pki_files_are_private_and_reused(tmp_path):
    pki = bootstrap.ensure_pki(str(tmp_path), HOSTS)
    assert mode(pki.dir) == 0o700
    names = sorted(os.listdir(pki.dir))
    assert names == sorted(["ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "sa.key"]
                           + [f"{i.name}.{ext}" for i in (*bootstrap.IDENTITIES, bootstrap.KUBELET_CLIENT)
                              for ext in ("crt", "key")])
    for name in names:
        assert mode(os.path.join(pki.dir, name)) == 0o600, name
    before = {n: open(os.path.join(pki.dir, n), "rb").read() for n in names}
    bootstrap.ensure_pki(str(tmp_path), HOSTS)
    after = {n: open(os.path.join(pki.dir, n), "rb").read() for n in names}
    assert before == after  # nothing reissued when everything is valid


def test_serving_certificate_reissued_when_hosts_change(tmp_path):
    pki = bootstrap.ensure_pki(str(tmp_path), HOSTS)
    first = open(pki.serving_cert, "rb").read()
    ca_before = open(pki.ca_cert, "rb").read()
    bootstrap.ensure_pki(str(tmp_path), HOSTS + ["10.200.0.9"])
    second = open(pki.serving_cert, "rb").read()
    assert first != second and "10.200.0.9" in ca.serving_hosts(ca.load_cert(second))
    assert open(pki.ca_cert, "rb").read() == ca_before


def test_kubeconfigs_written_private_with_identity(tmp_path):
    pki = bootstrap.ensure_pki(str(tmp_path), HOSTS)
    bootstrap.write_kubeconfigs(pki, "https://127.0.0.1:6443")
    for ident in bootstrap.IDENTITIES:
        path = pki.kubeconfig(ident)
        assert mode(path) == 0o600
        doc = yaml.safe_load(open(path))
        assert doc["clusters"][0]["cluster"]["certificate-authority-data"]
        user = doc["users"][0]["user"]
        import base64
        cert = ca.load_cert(base64.b64decode(user["client-certificate-data"]))
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ident.user


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "kproxy", "pki", *args], capture_output=True, text=True, timeout=60)


def test_cli_issues_a_client_kubeconfig(tmp_path):
    pki = bootstrap.ensure_pki(str(tmp_path), HOSTS)
    bootstrap.write_kubeconfigs(pki, "https://127.0.0.1:6443")
    out = tmp_path / "carol.kubeconfig"
    proc = run_cli("client", "--data-dir", str(tmp_path), "--user", "carol", "--group", "dev", "--kubeconfig", str(out))
    assert proc.returncode == 0, proc.stderr
    assert mode(out) == 0o600
    doc = yaml.safe_load(open(out))
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    import base64
    cert = ca.load_cert(base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]))
    assert ca.signed_by(cert, ca.load_cert(open(pki.ca_cert, "rb").read()))
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["dev"]


def test_cli_rotates_the_serving_certificate(tmp_path):
    pki = bootstrap.ensure_pki(str(tmp_path), HOSTS)
    first = open(pki.serving_cert, "rb").read()
    proc = run_cli("rotate-serving", "--data-dir", str(tmp_path), "--san", "api.example")
    assert proc.returncode == 0, proc.stderr
    second = ca.load_cert(open(pki.serving_cert, "rb").read())
    assert open(pki.serving_cert, "rb").read() != first and "api.example" in ca.serving_hosts(second)
    assert mode(pki.serving_key) == 0o600


@pytest.mark.parametrize("args, needle", [
    (["client", "--user", "x", "--kubeconfig", "/tmp/never-written"], "no CA"),
    (["rotate-serving"], "no CA"),
    (["rotate-serving", "--bind", "not-an-ip"], "not an IP"),
    ([], "give an action"),
])
def test_cli_errors_are_one_line(tmp_path, args, needle):
    if args:
        args = [args[0], "--data-dir", str(tmp_path / "empty"), *args[1:]]
    proc = run_cli(*args)
    assert proc.returncode != 0
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
