"""Kubeconfig parsing: contexts, relative paths, *-data fields, tokens, TLS contexts, errors."""
from __future__ import annotations

import base64
import datetime
import ssl

import pytest
import yaml

from kproxy.client.kubeconfig import KubeconfigError, in_cluster_config, load_kubeconfig, parse_kubeconfig


def doc(**over):
    d = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [{"name": "c1", "cluster": {"server": "https://10.0.0.1:6443"}},
                     {"name": "c2", "cluster": {"server": "http://127.0.0.1:8080/"}}],
        "users": [{"name": "u1", "user": {"token": "abc"}}],
        "contexts": [{"name": "main", "context": {"cluster": "c1", "user": "u1", "namespace": "team"}},
                     {"name": "other", "context": {"cluster": "c2"}}],
    }
    d.update(over)
    return d


def test_current_context_picks_cluster_user_namespace():
    cfg = parse_kubeconfig(doc())
    assert cfg.server == "https://10.0.0.1:6443"
    assert cfg.token == "abc"
    assert cfg.namespace == "team"
    assert cfg.is_https


def test_explicit_context_and_trailing_slash():
    cfg = parse_kubeconfig(doc(), context="other")
    assert cfg.server == "http://127.0.0.1:8080"
    assert cfg.token is None
    assert cfg.namespace == "default"
    assert cfg.ssl_context() is None


def test_relative_paths_resolved_against_kubeconfig_dir(tmp_path):
    (tmp_path / "tok").write_text("secret-token\n")
    d = doc(users=[{"name": "u1", "user": {"tokenFile": "tok", "client-certificate": "pki/c.crt",
                                           "client-key": "/abs/k.key"}}])
    d["clusters"][0]["cluster"]["certificate-authority"] = "pki/ca.crt"
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(d))
    cfg = load_kubeconfig(str(path))
    assert cfg.token == "secret-token"
    assert cfg.certificate_authority == str(tmp_path / "pki" / "ca.crt")
    assert cfg.client_certificate == str(tmp_path / "pki" / "c.crt")
    assert cfg.client_key == "/abs/k.key"


def test_data_fields_decoded():
    d = doc(users=[{"name": "u1", "user": {"client-certificate-data": base64.b64encode(b"CERT").decode(),
                                           "client-key-data": base64.b64encode(b"KEY").decode()}}])
    d["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(b"CA").decode()
    d["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    cfg = parse_kubeconfig(d)
    assert (cfg.certificate_authority_data, cfg.client_certificate_data, cfg.client_key_data) == (b"CA", b"CERT", b"KEY")
    assert cfg.insecure_skip_tls_verify


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("current-context"), "current-context is not set"),
    (lambda d: d.update({"current-context": "nope"}), "context 'nope' not found"),
    (lambda d: d["contexts"][0]["context"].update({"cluster": "zz"}), "cluster 'zz' not found"),
    (lambda d: d["contexts"][0]["context"].update({"user": "zz"}), "user 'zz' not found"),
    (lambda d: d["clusters"][0]["cluster"].pop("server"), "has no server"),
    (lambda d: d["clusters"][0]["cluster"].update({"server": "ftp://x"}), "is not an http(s) URL"),
    (lambda d: d["clusters"][0]["cluster"].update({"certificate-authority-data": "!!notb64"}), "not valid base64"),
    (lambda d: d["users"][0]["user"].update({"token": None, "exec": {"command": "aws"}}), "exec/auth-provider"),
])
def test_bad_kubeconfigs_give_one_line_errors(mutate, message):
    d = doc()
    mutate(d)
    with pytest.raises(KubeconfigError) as info:
        parse_kubeconfig(d)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        load_kubeconfig(str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    bad.write_text("clusters: [unclosed\n")
    with pytest.raises(KubeconfigError, match="not valid YAML"):
        load_kubeconfig(str(bad))
    scalar = tmp_path / "scalar"
    scalar.write_text("just a string\n")
    with pytest.raises(KubeconfigError, match="expected a mapping"):
        load_kubeconfig(str(scalar))


def _self_signed() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kproxy-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_ssl_context_loads_ca_and_client_cert_data():
    cert, key = _self_signed()
    d = doc(users=[{"name": "u1", "user": {"client-certificate-data": base64.b64encode(cert).decode(),
                                           "client-key-data": base64.b64encode(key).decode()}}])
    d["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(cert).decode()
    ctx = parse_kubeconfig(d).ssl_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1


def test_ssl_context_bad_client_key_is_one_line_error():
    cert, _ = _self_signed()
    d = doc(users=[{"name": "u1", "user": {"client-certificate-data": base64.b64encode(cert).decode(),
                                           "client-key-data": base64.b64encode(b"garbage").decode()}}])
    with pytest.raises(KubeconfigError, match="client certificate/key cannot be loaded"):
        parse_kubeconfig(d).ssl_context()


def test_in_cluster_config(tmp_path):
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("kube-system")
    (tmp_path / "ca.crt").write_bytes(_self_signed()[0])
    cfg = in_cluster_config({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, str(tmp_path))
    assert (cfg.server, cfg.token, cfg.namespace) == ("https://10.96.0.1:443", "sa-token", "kube-system")
    assert cfg.certificate_authority == str(tmp_path / "ca.crt")
    assert cfg.ssl_context() is not None
    v6 = in_cluster_config({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, str(tmp_path))
    assert v6.server == "https://[fd00::1]:443"
    with pytest.raises(KubeconfigError, match="not running in a cluster"):
        in_cluster_config({}, str(tmp_path))
    with pytest.raises(KubeconfigError, match="cannot read"):
        in_cluster_config({"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"}, str(tmp_path / "none"))
