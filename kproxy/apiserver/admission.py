"""Admission checks that read other objects before a write, as Kubernetes' NamespaceLifecycle
and ResourceQuota admission plug-ins: the registry calls them for namespaced writes, whatever
the kind. Blocking (they read the store)."""
from __future__ import annotations

from typing import Any

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.api.resources import Resource
from kproxy.apiserver import quota
from kproxy.store import base as sb
from kproxy.store.mirror import LazyMirror


def _resource_name(resource: Resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


class NamespaceLifecycle:
    def __init__(self, store: sb.Store):
        self.store = store
        # read on every namespaced create, so from memory rather than a store query each time
        self._namespaces = LazyMirror(store, R.NAMESPACES.store_prefix(None))

    def check_accepts(self, namespace: str, resource: Resource, name: str) -> None:
        """A new object needs its namespace to exist and not be terminating."""
        ns = self._namespaces().get(R.NAMESPACES.store_key(namespace))
        if ns is None:
            raise st.not_found("namespaces", namespace)
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise st.ApiError(st.status(
                403, "Forbidden",
                f'{_resource_name(resource)} "{name}" is forbidden: unable to create new content in namespace '
                f'{namespace} because it is being terminated', kind=resource.plural, name=name, group=resource.group,
                causes=[{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                         "message": f"namespace {namespace} is being terminated"}]))


class QuotaAdmission:
    def __init__(self, store: sb.Store):
        self.store = store
        self._mirror = LazyMirror(store, R.RESOURCE_QUOTAS.store_prefix(None))  # every ResourceQuota

    def _quotas(self, namespace: str) -> list[dict[str, Any]]:
        # Read on every namespaced write, so from memory rather than a store query each time.
        return self._mirror().values(R.RESOURCE_QUOTAS.store_prefix(namespace))

    def has_quota(self, namespace: str) -> bool:
        return bool(self._quotas(namespace))

    def admit(self, resource: Resource, namespace: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Raises 403 when writing `obj` (replacing `old`) would exceed a quota of the namespace."""
        quotas = self._quotas(namespace)
        if not quotas:
            return
        requested = quota.usage(resource, obj)
        if old is not None:
            before = quota.usage(resource, old)
            requested = {k: v - before.get(k, 0) for k, v in requested.items()}
        if not any(v > 0 for v in requested.values()):
            return
        existing = [kv.value for kv in self.store.list(resource.store_prefix(namespace))[0]]
        if old is not None:
            existing = [o for o in existing if (o.get("metadata") or {}).get("uid") != (old.get("metadata") or {}).get("uid")]
            existing.append(old)
        denial = quota.check(quotas, quota.total(resource, existing), requested)
        if denial:
            name = (obj.get("metadata") or {}).get("name", "")
            raise st.forbidden(f'{_resource_name(resource)} "{name}" is forbidden: {denial}',
                               kind=resource.plural, name=name)
