"""Loading a kubeconfig file into the one cluster/user pair a client talks to.

Follows the kubeconfig format kubectl reads (clientcmd v1): `current-context` (or an explicit
context) picks a cluster and a user; relative file paths are resolved against the directory of
the kubeconfig file; `*-data` fields hold base64 PEM. Works with kproxy's own
admin.kubeconfig and with a real cluster's kubeconfig.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml


class KubeconfigError(ValueError):
    """The kubeconfig cannot be read or does not describe a usable cluster (one-line message)."""


@dataclass(frozen=True)
class ClusterConfig:
    """Everything needed to reach one apiserver as one user. PEM fields hold decoded bytes."""

    server: str
    namespace: str = "default"
    certificate_authority: str | None = None  # path
    certificate_authority_data: bytes | None = None  # PEM
    client_certificate: str | None = None  # path
    client_certificate_data: bytes | None = None  # PEM
    client_key: str | None = None  # path
    client_key_data: bytes | None = None  # PEM
    token: str | None = None
    username: str | None = None
    password: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None

    @property
    def is_https(self) -> bool:
        return urlsplit(self.server).scheme == "https"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for this cluster, or None for plain http.

        Client certificate/key given as data are written to a private temporary file only for
        the duration of loading (the ssl module reads chains from files only)."""
        if not self.is_https:
            return None
        # A configured CA is the only trust anchor (as kubectl); otherwise the system's.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            if self.insecure_skip_tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif self.certificate_authority_data:
                ctx.load_verify_locations(cadata=self.certificate_authority_data.decode("ascii", "replace"))
            elif self.certificate_authority:
                ctx.load_verify_locations(cafile=self.certificate_authority)
            else:
                ctx.load_default_certs()
        except (ssl.SSLError, OSError) as exc:
            raise KubeconfigError(f"certificate authority cannot be loaded: {exc}") from None
        cert = self.client_certificate_data or _read_optional(self.client_certificate)
        key = self.client_key_data or _read_optional(self.client_key)
        if cert:
            with _private_pem_file(cert + b"\n" + (key or b"")) as path:
                try:
                    ctx.load_cert_chain(path)
                except ssl.SSLError as exc:
                    raise KubeconfigError(f"client certificate/key cannot be loaded: {exc}") from None
        return ctx


def _read_optional(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise KubeconfigError(f"cannot read {path}: {exc.strerror}") from None


@contextlib.contextmanager
def _private_pem_file(data: bytes):
    fd, path = tempfile.mkstemp(prefix="kproxy-cert-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)


def default_kubeconfig_path() -> str:
    """$KUBECONFIG (its first entry) or ~/.kube/config, as kubectl does."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    return os.path.join(os.path.expanduser("~"), ".kube", "config")


def load_kubeconfig(path: str | None = None, context: str | None = None) -> ClusterConfig:
    """Reads `path` (default: default_kubeconfig_path()) and returns the cluster and user of
    `context` (default: current-context). Raises KubeconfigError with a one-line reason."""
    path = path or default_kubeconfig_path()
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_kubeconfig(doc, base_dir=os.path.dirname(os.path.abspath(path)), context=context, source=path)


def parse_kubeconfig(doc: Any, *, base_dir: str = ".", context: str | None = None,
                     source: str = "kubeconfig") -> ClusterConfig:
    """Pure part of load_kubeconfig: `doc` is the parsed YAML document."""
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{source}: not a kubeconfig (expected a mapping)")
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise KubeconfigError(f"{source}: no context given and current-context is not set")
    ctx = _named(doc, "contexts", "context", ctx_name, source)
    cluster_name = ctx.get("cluster")
    if not cluster_name:
        raise KubeconfigError(f"{source}: context {ctx_name!r} names no cluster")
    cluster = _named(doc, "clusters", "cluster", cluster_name, source)
    user_name = ctx.get("user")
    user = _named(doc, "users", "user", user_name, source) if user_name else {}

    server = cluster.get("server")
    if not server or not isinstance(server, str):
        raise KubeconfigError(f"{source}: cluster {cluster_name!r} has no server")
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise KubeconfigError(f"{source}: cluster {cluster_name!r} server {server!r} is not an http(s) URL")

    def path_of(field: str, section: dict) -> str | None:
        value = section.get(field)
        if not value:
            return None
        return value if os.path.isabs(value) else os.path.normpath(os.path.join(base_dir, value))

    def data_of(field: str, section: dict) -> bytes | None:
        value = section.get(field)
        if not value:
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise KubeconfigError(f"{source}: {field} is not valid base64") from None

    token = user.get("token")
    token_file = path_of("tokenFile", user)
    if not token and token_file:
        token = (_read_optional(token_file) or b"").decode("utf-8").strip()
    if user.get("exec") or user.get("auth-provider"):
        if not (token or user.get("client-certificate") or user.get("client-certificate-data")):
            raise KubeconfigError(f"{source}: user {user_name!r} uses exec/auth-provider plugins, "
                                  "which kproxy does not run")

    return ClusterConfig(
        server=server.rstrip("/"),
        namespace=ctx.get("namespace") or "default",
        certificate_authority=path_of("certificate-authority", cluster),
        certificate_authority_data=data_of("certificate-authority-data", cluster),
        client_certificate=path_of("client-certificate", user),
        client_certificate_data=data_of("client-certificate-data", user),
        client_key=path_of("client-key", user),
        client_key_data=data_of("client-key-data", user),
        token=token or None,
        username=user.get("username"),
        password=user.get("password"),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name"),
    )


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_cluster_config(env: Mapping[str, str] | None = None, sa_dir: str = SERVICE_ACCOUNT_DIR) -> ClusterConfig:
    """The config of a pod inside a cluster: KUBERNETES_SERVICE_HOST/PORT and the mounted
    service account token, CA and namespace (as client-go's InClusterConfig)."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeconfigError("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    token = (_read_optional(os.path.join(sa_dir, "token")) or b"").decode().strip()
    if not token:
        raise KubeconfigError(f"service account token {sa_dir}/token is empty")
    namespace = "default"
    ns_file = os.path.join(sa_dir, "namespace")
    if os.path.exists(ns_file):
        namespace = (_read_optional(ns_file) or b"default").decode().strip() or "default"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return ClusterConfig(server=f"https://{host}:{port}", namespace=namespace,
                         certificate_authority=os.path.join(sa_dir, "ca.crt"), token=token)


def _named(doc: dict, list_key: str, item_key: str, name: str, source: str) -> dict:
    for entry in doc.get(list_key) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(item_key)
            if not isinstance(value, dict):
                raise KubeconfigError(f"{source}: {item_key} {name!r} has no {item_key} section")
            return value
    raise KubeconfigError(f"{source}: {item_key} {name!r} not found")
