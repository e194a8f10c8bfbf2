"""ServiceAccount admission for pods, as kube-apiserver's: a pod without serviceAccountName
runs as `default`, and unless automountServiceAccountToken is false (on the pod, else on its
ServiceAccount) it gets the projected volume `kube-api-access-xxxxx` (a bound token, the
cluster CA from ConfigMap kube-root-ca.crt, the namespace) mounted read-only at
/var/run/secrets/kubernetes.io/serviceaccount in every container that has nothing there yet.

A ServiceAccount that does not exist (yet: the controller creates `default` shortly after its
namespace) does not refuse the pod, unlike upstream: the kubelet's token request fails and
retries until it exists.
"""
from __future__ import annotations

from typing import Any

from kproxy.api import resources as R
from kproxy.apiserver.objects import generate_name
from kproxy.store import base as sb

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION = 3607  # kube-apiserver's default for the projected token (an hour, and a mark)
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def api_access_volume(name: str) -> dict[str, Any]:
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                       "fieldPath": "metadata.namespace"}}]}},
    ]}}


def add_api_access(spec: dict[str, Any], automount_default: bool, volume_name: str) -> None:
    """Mounts the projected API volume into every container without a mount at the service
    account path (pure, changes `spec`)."""
    automount = spec.get("automountServiceAccountToken")
    if automount is False or (automount is None and not automount_default):
        return
    containers = [c for key in ("initContainers", "containers", "ephemeralContainers")
                  for c in spec.get(key) or () if isinstance(c, dict)]
    needing = [c for c in containers
               if not any(isinstance(m, dict) and m.get("mountPath") == SERVICE_ACCOUNT_DIR
                          for m in c.get("volumeMounts") or ())]
    if not needing:
        return
    volumes = spec.setdefault("volumes", [])
    existing = next((v for v in volumes if isinstance(v, dict) and str(v.get("name", "")).startswith(VOLUME_PREFIX)
                     and isinstance(v.get("projected"), dict)), None)
    if existing is None:
        volumes.append(api_access_volume(volume_name))
    else:
        volume_name = str(existing["name"])
    for c in needing:
        c.setdefault("volumeMounts", []).append({"name": volume_name, "readOnly": True,
                                                 "mountPath": SERVICE_ACCOUNT_DIR})


class ServiceAccountPodAdmission:
    """Called by the registry for every object about to be created (blocking: reads the store)."""

    def __init__(self, store: sb.Store):
        self.store = store

    def admit_create(self, resource: R.Resource, namespace: str | None, obj: dict[str, Any]) -> None:
        if resource is not R.PODS:
            return
        meta = obj.get("metadata") or {}
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            return
        spec = obj.setdefault("spec", {})
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        spec["serviceAccount"] = spec["serviceAccountName"]
        try:
            account = self.store.get(R.SERVICE_ACCOUNTS.store_key(spec["serviceAccountName"], namespace)).value
        except sb.NotFound:
            account = {}
        add_api_access(spec, account.get("automountServiceAccountToken") is not False,
                       generate_name(VOLUME_PREFIX))
