"""The PKI a `kproxy apiserver --data-dir DIR` needs, created on first start and reused after.

Layout (DIR/pki is 0700, every *.key 0600):
    ca.crt ca.key                  cluster CA
    apiserver.crt apiserver.key    serving certificate (reissued when it no longer covers the
                                   hosts asked for, expires within a day, or the CA changed)
    sa.key                         service-account token signing key
    <identity>.crt <identity>.key  client certificates of the built-in identities
    apiserver-kubelet-client.*     the apiserver's client certificate toward kubelets
and DIR/<identity>.kubeconfig (0600) for admin, kube-proxy, controllers and scheduler.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from kproxy.pki import ca as pki_ca
from kproxy.pki.ca import KeyPair
from kproxy.pki.files import ensure_private_dir, write_private
from kproxy.pki.kubeconfig import kubeconfig_doc, write_kubeconfig

PKI_DIR = "pki"
KUBERNETES_DNS_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                        "kubernetes.default.svc.cluster.local", "localhost")
LOOPBACK = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Identity:
    """A built-in client identity: file stem, user (certificate CN) and groups (O)."""
    name: str
    user: str
    groups: tuple[str, ...] = ()


ADMIN = Identity("admin", "kubernetes-admin", ("system:masters",))
KUBE_PROXY = Identity("kube-proxy", "system:kube-proxy")
CONTROLLERS = Identity("controllers", "system:kube-controller-manager")
SCHEDULER = Identity("scheduler", "system:kube-scheduler")
IDENTITIES = (ADMIN, KUBE_PROXY, CONTROLLERS, SCHEDULER)
# the apiserver's identity toward kubelets (logs, exec), as kubeadm names it; no kubeconfig
KUBELET_CLIENT = Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",))


@dataclass(frozen=True)
class Pki:
    """Paths of the PKI of one data dir (all absolute)."""
    data_dir: str

    @property
    def dir(self) -> str:
        return os.path.join(self.data_dir, PKI_DIR)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def ca_cert(self) -> str:
        return self.path("ca.crt")

    @property
    def serving_cert(self) -> str:
        return self.path("apiserver.crt")

    @property
    def serving_key(self) -> str:
        return self.path("apiserver.key")

    @property
    def sa_key(self) -> str:
        return self.path("sa.key")

    def kubeconfig(self, identity: Identity) -> str:
        return os.path.join(self.data_dir, f"{identity.name}.kubeconfig")

    def load_pair(self, stem: str) -> KeyPair | None:
        try:
            with open(self.path(stem + ".crt"), "rb") as c, open(self.path(stem + ".key"), "rb") as k:
                return KeyPair(c.read(), k.read())
        except FileNotFoundError:
            return None

    def save_pair(self, stem: str, pair: KeyPair) -> None:
        # key first: a certificate on disk always has its key next to it
        write_private(self.path(stem + ".key"), pair.key_pem)
        write_private(self.path(stem + ".crt"), pair.cert_pem)

    def ca(self) -> KeyPair:
        pair = self.load_pair("ca")
        if pair is None:
            raise pki_ca.PKIError(f"no CA in {self.dir} (start the apiserver once to create it)")
        return pair


def serving_hosts_for(bind_host: str, service_ip: str | None, extra: tuple[str, ...] = ()) -> list[str]:
    """Hosts the serving certificate must cover: loopback, the bind address (unless it is the
    wildcard), the first Service IP, the kubernetes Service's DNS names and any extras."""
    hosts = list(LOOPBACK)
    if bind_host and bind_host not in ("0.0.0.0", "::", "localhost"):
        hosts.append(str(ipaddress.ip_address(bind_host)))
    if service_ip:
        hosts.append(service_ip)
    hosts.extend(KUBERNETES_DNS_NAMES)
    hosts.extend(extra)
    return list(dict.fromkeys(hosts))


def ensure_pki(data_dir: str, hosts: list[str]) -> Pki:
    """Creates whatever is missing or stale; leaves valid material alone. Idempotent."""
    pki = Pki(os.path.abspath(data_dir))
    ensure_private_dir(pki.dir)
    ca = pki.load_pair("ca")
    if ca is None:
        ca = pki_ca.create_ca()
        pki.save_pair("ca", ca)
    ca_cert = ca.cert
    serving = pki.load_pair("apiserver")
    if serving is None or not _serving_ok(serving, ca_cert, hosts):
        pki.save_pair("apiserver", pki_ca.issue_serving(ca, hosts))
    if not os.path.exists(pki.sa_key):
        write_private(pki.sa_key, pki_ca.key_pem(pki_ca.new_key()))
    for ident in (*IDENTITIES, KUBELET_CLIENT):
        pair = pki.load_pair(ident.name)
        if pair is None or not pki_ca.is_current(pair.cert) or not pki_ca.signed_by(pair.cert, ca_cert):
            pki.save_pair(ident.name, pki_ca.issue_client(ca, ident.user, ident.groups))
    return pki


def _serving_ok(pair: KeyPair, ca_cert, hosts: list[str]) -> bool:
    cert = pair.cert
    return (pki_ca.is_current(cert) and pki_ca.signed_by(cert, ca_cert)
            and set(hosts) <= pki_ca.serving_hosts(cert))


def rotate_serving(data_dir: str, hosts: list[str]) -> KeyPair:
    """Issues a new serving certificate and key; a running apiserver reloads them (it watches
    the files), so new connections see the new certificate."""
    pki = Pki(os.path.abspath(data_dir))
    pair = pki_ca.issue_serving(pki.ca(), hosts)
    pki.save_pair("apiserver", pair)
    return pair


def write_kubeconfigs(pki: Pki, server_url: str) -> None:
    """DIR/<identity>.kubeconfig for every built-in identity. Over https they carry the CA and
    the identity's client certificate; over plain http only the server URL."""
    with open(pki.ca_cert, "rb") as f:
        ca_pem = f.read()
    secure = server_url.startswith("https://")
    # admin.kubeconfig last: callers wait for it to know the server is ready
    for ident in sorted(IDENTITIES, key=lambda i: i is ADMIN):
        pair = pki.load_pair(ident.name) if secure else None
        doc = kubeconfig_doc(server_url, ident.user if secure else ident.name, ca_pem=ca_pem, client=pair)
        write_kubeconfig(pki.kubeconfig(ident), doc)
