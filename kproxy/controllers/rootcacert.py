"""Root CA publisher: every active namespace holds the ConfigMap `kube-root-ca.crt` whose
`ca.crt` is the cluster CA, as kube-controller-manager's root-ca-cert-publisher. Pods read it
through the projected service-account volume to verify the apiserver.

Guarantees: a missing ConfigMap is created, one whose data or description was changed is
written back; terminating namespaces are left alone. The CA is the one this controller's own
kubeconfig trusts; without one (a plain-HTTP apiserver) nothing is published.
"""
from __future__ import annotations

import logging
from typing import Any

from kproxy.api.resources import CONFIG_MAPS, NAMESPACES
from kproxy.api.status import ApiError
from kproxy.controllers.base import Controller, Handlers, SharedInformers
from kproxy.controllers.namespace import is_terminating_namespace
from kproxy.controllers.podutil import meta

log = logging.getLogger(__name__)

ROOT_CA_NAME = "kube-root-ca.crt"
CA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


def ca_of(client: Any) -> str | None:
    """The CA PEM the client's kubeconfig trusts, None when it names none."""
    config = getattr(client, "config", None)
    if config is None:
        return None
    if config.certificate_authority_data:
        return bytes(config.certificate_authority_data).decode("ascii", "replace")
    if config.certificate_authority:
        try:
            with open(config.certificate_authority) as f:
                return f.read()
        except OSError as exc:
            log.warning("root CA not published: %s", exc)
    return None


def desired_config_map(namespace: str, ca_pem: str, current: dict | None) -> dict | None:
    """The ConfigMap to write (current one updated, or a new one), None when current is right (pure)."""
    if current is not None:
        annotations = meta(current).get("annotations") or {}
        if (current.get("data") or {}) == {CA_KEY: ca_pem} and annotations.get(DESCRIPTION_ANNOTATION) == DESCRIPTION:
            return None
        out = dict(current)
        out["metadata"] = {**meta(current), "annotations": {**annotations, DESCRIPTION_ANNOTATION: DESCRIPTION}}
        out["data"] = {CA_KEY: ca_pem}
        return out
    return {"metadata": {"name": ROOT_CA_NAME, "namespace": namespace,
                         "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
            "data": {CA_KEY: ca_pem}}


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"

    def __init__(self, client: Any, informers: SharedInformers):
        super().__init__(client, informers)
        self.ca_pem = ca_of(client)
        self.namespaces = informers.get(NAMESPACES)
        self.config_maps = informers.get(CONFIG_MAPS)
        self.namespaces.add_handler(Handlers(on_add=self._ns_changed, on_update=lambda o, n: self._ns_changed(n)))
        self.config_maps.add_handler(Handlers(on_update=lambda o, n: self._cm_changed(n), on_delete=self._cm_changed))

    def watched(self):
        return [NAMESPACES, CONFIG_MAPS]

    async def resync(self) -> None:
        if self.ca_pem is None:
            log.info("no cluster CA in the controllers' kubeconfig: %s not published", ROOT_CA_NAME)
            return
        for name in self.namespaces.cache:
            self.queue.add(name)

    def _ns_changed(self, ns: dict) -> None:
        if self.ca_pem is not None:
            self.queue.add(meta(ns)["name"])

    def _cm_changed(self, cm: dict) -> None:
        if self.ca_pem is not None and meta(cm).get("name") == ROOT_CA_NAME:
            self.queue.add(str(meta(cm).get("namespace")))

    async def reconcile(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if ns is None or is_terminating_namespace(ns) or self.ca_pem is None:
            return
        current = self.config_maps.get(ROOT_CA_NAME, namespace)
        wanted = desired_config_map(namespace, self.ca_pem, current)
        if wanted is None:
            return
        try:
            if current is None:
                await self.client.create(CONFIG_MAPS, wanted, namespace)
            else:
                await self.client.update(CONFIG_MAPS, wanted)
        except ApiError as exc:
            # 409: our cache lags (retried by the queue when it is an update); 403/404: going away
            if exc.code in (403, 404) or (exc.code == 409 and current is None):
                return
            raise
