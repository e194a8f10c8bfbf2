"""The scale subresource: an autoscaling/v1 Scale view of a workload's spec.replicas (what
`kubectl scale` and autoscalers read and write), as kube-apiserver's ScaleREST does.

A Scale write changes only spec.replicas of the object it views. It is applied to the object
as read, conditional on that object's resourceVersion, so a concurrent write is never lost:
a Scale with a resourceVersion answers 409 when the object moved on; one without is re-read
and applied again.
"""
from __future__ import annotations

import copy
from typing import Any

from kproxy.api import selectors
from kproxy.api import status as st
from kproxy.api.resources import Resource
from kproxy.api.validation.errors import FieldErrors
from kproxy.api.validation.workloads import validate_scale
from kproxy.apiserver.registry import RACE_RETRIES, Registry

SCALE_GROUP = "autoscaling"


def to_scale(obj: dict[str, Any]) -> dict[str, Any]:
    """The Scale of a workload object (pure)."""
    md = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    try:
        selector = str(selectors.of_workload(obj))
    except selectors.SelectorError:
        selector = ""
    return {
        "kind": "Scale", "apiVersion": f"{SCALE_GROUP}/v1",
        "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in md},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": selector},
    }


class ScaleSubresource:
    def __init__(self, registry: Registry):
        self.registry = registry

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        return to_scale(self.registry.get(resource, namespace, name))

    def update(self, resource: Resource, namespace: str | None, name: str, body: Any,
               dry_run: bool = False) -> dict[str, Any]:
        """PUT of a Scale."""
        return self._write(resource, namespace, name, lambda scale: body, dry_run)

    def patch(self, resource: Resource, namespace: str | None, name: str, patch_type: str, patch: Any,
              dry_run: bool = False) -> dict[str, Any]:
        """PATCH of a Scale: the patch applies to the current Scale."""
        deps = self.registry.deps

        def patched(scale: dict[str, Any]) -> Any:
            try:
                if patch_type == "json":
                    return deps.json_patch(scale, patch)
                if not isinstance(patch, dict):
                    raise st.bad_request(f"{patch_type} patch must be a JSON object")
                if patch_type == "strategic":
                    return deps.strategic_merge_patch(scale, patch, None)
                return deps.merge_patch(scale, patch)
            except deps.patch_error as exc:
                raise st.bad_request(f"unable to apply {patch_type} patch: {exc}") from None
        return self._write(resource, namespace, name, patched, dry_run)

    def _write(self, resource: Resource, namespace: str | None, name: str, new_scale: Any,
               dry_run: bool) -> dict[str, Any]:
        for _ in range(RACE_RETRIES):
            current = self.registry.get(resource, namespace, name)
            scale = new_scale(to_scale(current))
            replicas = self._check(name, scale)
            wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
            obj = copy.deepcopy(current)
            obj.setdefault("spec", {})["replicas"] = replicas
            if wanted_rv:
                obj["metadata"]["resourceVersion"] = wanted_rv
                return to_scale(self.registry.update(resource, namespace, name, obj, None, dry_run)[0])
            try:
                return to_scale(self.registry.update(resource, namespace, name, obj, None, dry_run)[0])
            except st.ApiError as exc:
                if exc.code != 409:
                    raise
        raise st.conflict(resource.plural, name, "the object has been modified; please apply your changes "
                          "to the latest version and try again", resource.group)

    @staticmethod
    def _check(name: str, scale: Any) -> int:
        if not isinstance(scale, dict):
            raise st.bad_request("the request body must be a JSON object")
        if scale.get("kind") not in (None, "Scale") or scale.get("apiVersion") not in (None, f"{SCALE_GROUP}/v1"):
            raise st.bad_request(f"the body must be an {SCALE_GROUP}/v1 Scale")
        e = FieldErrors()
        validate_scale(e, scale)
        replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale.get("spec"), dict) else None
        if replicas is None and not e.causes:
            replicas = 0
        if e.causes:
            raise st.invalid("Scale", name, e.causes, SCALE_GROUP)
        return int(replicas)
