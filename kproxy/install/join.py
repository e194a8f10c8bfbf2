"""The join file: what a node needs from the control plane to join it (`kproxy install node
--join-file F`).

The cluster CA's key never leaves the control plane, and the apiserver has no
CertificateSigningRequest API, so the control plane pre-issues each node's credentials
(`kproxy install issue-node N --out F`, and `install control-plane` for its own node, into
/etc/kproxy/join.yaml): the kubelet's client certificate (user `system:node:N`, group
`system:nodes`), the kube-proxy identity (`system:kube-proxy`) the agent uses, and, when the
node's address is known, the kubelet's serving certificate for its port 10250 (logs, exec).

Guarantees: `join_doc` and `parse_join` are pure; `parse_join(yaml of join_doc(j)) == j`;
`parse_join` raises JoinError naming the field for anything malformed, a certificate not
issued by the file's CA, or a kubelet certificate for another node.
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Any

import yaml

from kproxy.pki import ca as pki_ca
from kproxy.pki.bootstrap import KUBE_PROXY, Pki
from kproxy.pki.ca import KeyPair

API_VERSION = "kproxy.io/v1alpha1"
KIND = "JoinConfiguration"
NODES_GROUP = "system:nodes"
CREDENTIAL_VALIDITY = datetime.timedelta(days=365)


class JoinError(ValueError):
    """A join file that cannot be used; the message names the field."""


@dataclass(frozen=True)
class JoinConfig:
    server: str
    ca_pem: bytes
    node_name: str
    kubelet: KeyPair  # client certificate system:node:<node_name>
    kube_proxy: KeyPair  # client certificate system:kube-proxy
    cluster_cidr: str
    service_cidr: str
    pod_cidr: str = ""  # "" = the node's install gives it
    kubelet_serving: KeyPair | None = None  # None: the kubelet's server stays off


def node_user(node_name: str) -> str:
    return f"system:node:{node_name}"


def _pair_doc(pair: KeyPair) -> dict[str, str]:
    return {"certificate": pair.cert_pem.decode(), "key": pair.key_pem.decode()}


def join_doc(join: JoinConfig) -> dict[str, Any]:
    """The join file's YAML document (pure)."""
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION, "kind": KIND,
        "server": join.server,
        "nodeName": join.node_name,
        "clusterCIDR": join.cluster_cidr,
        "serviceCIDR": join.service_cidr,
    }
    if join.pod_cidr:
        doc["podCIDR"] = join.pod_cidr
    doc["certificateAuthority"] = join.ca_pem.decode()
    doc["kubelet"] = _pair_doc(join.kubelet)
    if join.kubelet_serving is not None:
        doc["kubeletServing"] = _pair_doc(join.kubelet_serving)
    doc["kubeProxy"] = _pair_doc(join.kube_proxy)
    return doc


def dump_join(join: JoinConfig) -> bytes:
    return yaml.safe_dump(join_doc(join), sort_keys=False).encode()


def _str_field(doc: dict[str, Any], key: str, required: bool = True) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise JoinError(f"{key}: want a non-empty string")
    return value


def _cidr_field(doc: dict[str, Any], key: str, required: bool = True) -> str:
    value = _str_field(doc, key, required)
    if not value:
        return ""
    try:
        return str(ipaddress.ip_network(value))
    except ValueError as exc:
        raise JoinError(f"{key}: {exc}") from None


def _pair_field(doc: dict[str, Any], key: str, ca_cert: Any) -> KeyPair:
    raw = doc.get(key)
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("certificate", "key")):
        raise JoinError(f"{key}: want a mapping with certificate and key (PEM)")
    pair = KeyPair(raw["certificate"].encode(), raw["key"].encode())
    try:
        cert = pair.cert
        pki_ca.load_key(pair.key_pem)
    except (ValueError, pki_ca.PKIError) as exc:
        raise JoinError(f"{key}: {exc}") from None
    if not pki_ca.signed_by(cert, ca_cert):
        raise JoinError(f"{key}: the certificate was not issued by certificateAuthority")
    return pair


def _common_name(pair: KeyPair) -> str:
    from cryptography.x509.oid import NameOID

    names = pair.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def parse_join(text: str | bytes) -> JoinConfig:
    """Validates a join file's text; raises JoinError."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise JoinError("not valid YAML") from None
    if not isinstance(doc, dict):
        raise JoinError(f"want a {KIND} mapping at the top level")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise JoinError(f"want apiVersion {API_VERSION} and kind {KIND}")
    server = _str_field(doc, "server")
    if not server.startswith("https://"):
        raise JoinError(f"server: {server!r} is not an https URL")
    ca_pem = _str_field(doc, "certificateAuthority").encode()
    try:
        ca_cert = pki_ca.load_cert(ca_pem)
    except (ValueError, pki_ca.PKIError) as exc:
        raise JoinError(f"certificateAuthority: {exc}") from None
    node_name = _str_field(doc, "nodeName")
    kubelet = _pair_field(doc, "kubelet", ca_cert)
    if _common_name(kubelet) != node_user(node_name):
        raise JoinError(f"kubelet: the certificate is for {_common_name(kubelet)!r}, "
                        f"not {node_user(node_name)!r}")
    serving = _pair_field(doc, "kubeletServing", ca_cert) if "kubeletServing" in doc else None
    return JoinConfig(server=server, ca_pem=ca_pem, node_name=node_name, kubelet=kubelet,
                      kube_proxy=_pair_field(doc, "kubeProxy", ca_cert),
                      cluster_cidr=_cidr_field(doc, "clusterCIDR"), service_cidr=_cidr_field(doc, "serviceCIDR"),
                      pod_cidr=_cidr_field(doc, "podCIDR", required=False), kubelet_serving=serving)


def _stored(pki: Pki, stem: str, ca: KeyPair, hosts: tuple[str, ...] = ()) -> KeyPair | None:
    """The pair saved under `stem` in the control plane's PKI if it is current, issued by `ca`
    and covers `hosts`."""
    pair = pki.load_pair(stem)
    if (pair is None or not pki_ca.is_current(pair.cert) or not pki_ca.signed_by(pair.cert, ca.cert)
            or not set(hosts) <= pki_ca.serving_hosts(pair.cert)):
        return None
    return pair


def _stems(node_name: str) -> tuple[str, str]:
    return f"node-{node_name}", f"node-{node_name}-serving"


def issue_join(pki: Pki, *, server: str, node_name: str, node_ips: tuple[str, ...], cluster_cidr: str,
               service_cidr: str, pod_cidr: str = "") -> JoinConfig:
    """Node `node_name`'s join configuration. Its credentials are the ones `save_credentials`
    kept in `pki` while they are valid (so installing again renders the same files), else new
    ones issued by the control plane's CA in `pki`. Writes nothing."""
    ca = pki.ca()
    user = node_user(node_name)
    client_stem, serving_stem = _stems(node_name)
    kubelet = _stored(pki, client_stem, ca) or pki_ca.issue_client(
        ca, user, (NODES_GROUP,), validity=CREDENTIAL_VALIDITY)
    serving = None
    if node_ips:
        hosts = (node_name, *node_ips)
        serving = _stored(pki, serving_stem, ca, hosts) or pki_ca.issue_serving(
            ca, list(hosts), common_name=user, validity=CREDENTIAL_VALIDITY)
    kube_proxy = pki.load_pair(KUBE_PROXY.name)
    if kube_proxy is None:
        raise pki_ca.PKIError(f"no {KUBE_PROXY.name} certificate in {pki.dir}")
    return JoinConfig(server=server, ca_pem=ca.cert_pem, node_name=node_name, kubelet=kubelet,
                      kube_proxy=kube_proxy, cluster_cidr=cluster_cidr, service_cidr=service_cidr,
                      pod_cidr=pod_cidr, kubelet_serving=serving)


def save_credentials(pki: Pki, join: JoinConfig) -> None:
    """Keeps the node's credentials in the control plane's PKI (after its join file is written)."""
    client_stem, serving_stem = _stems(join.node_name)
    if pki.load_pair(client_stem) != join.kubelet:
        pki.save_pair(client_stem, join.kubelet)
    if join.kubelet_serving is not None and pki.load_pair(serving_stem) != join.kubelet_serving:
        pki.save_pair(serving_stem, join.kubelet_serving)
