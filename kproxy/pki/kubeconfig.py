"""kubeconfig documents for one identity, with the TLS material embedded (`*-data` fields), so
kubectl, the official Python client and kproxy.client all read them without other files."""
from __future__ import annotations

import base64
from typing import Any

import yaml

from kproxy.pki.ca import KeyPair
from kproxy.pki.files import write_private


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode("ascii")


def kubeconfig_doc(server_url: str, user_name: str, *, ca_pem: bytes | None = None,
                   client: KeyPair | None = None, token: str | None = None,
                   namespace: str = "default") -> dict[str, Any]:
    """A one-cluster, one-user, one-context kubeconfig (pure)."""
    cluster: dict[str, Any] = {"server": server_url}
    if ca_pem is not None and server_url.startswith("https://"):
        cluster["certificate-authority-data"] = _b64(ca_pem)
    user: dict[str, Any] = {}
    if client is not None:
        user["client-certificate-data"] = _b64(client.cert_pem)
        user["client-key-data"] = _b64(client.key_pem)
    if token is not None:
        user["token"] = token
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "kproxy", "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": "kproxy", "context": {"cluster": "kproxy", "user": user_name, "namespace": namespace}}],
        "current-context": "kproxy",
    }


def write_kubeconfig(path: str, doc: dict[str, Any]) -> None:
    """Writes the kubeconfig 0600, atomically (it may hold a private key)."""
    write_private(path, yaml.safe_dump(doc, sort_keys=False).encode())
