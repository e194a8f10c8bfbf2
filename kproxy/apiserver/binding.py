"""pods/binding: how a scheduler assigns a pod to a node (POST a v1 Binding), with
kube-apiserver's checks: the Binding names the pod, targets a Node by name, and a pod that
already has a node or is being deleted is not assigned again (409)."""
from __future__ import annotations

import copy
from typing import Any

from kproxy.api import status as st
from kproxy.api.meta import now_rfc3339


def binding_target(body: Any, pod_name: str) -> tuple[str, dict[str, str]]:
    """(node name, annotations to add) of a Binding body for pod `pod_name`."""
    if not isinstance(body, dict) or body.get("kind") not in (None, "Binding"):
        raise st.bad_request("the body of a pods/binding request must be a Binding object")
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        raise st.bad_request("metadata must be an object")
    if meta.get("name") not in (None, "", pod_name):
        raise st.bad_request("name in URL does not match name in Binding object")
    target = body.get("target")
    causes = []
    if not isinstance(target, dict):
        causes.append({"reason": "FieldValueRequired", "field": "target", "message": "Required value"})
        target = {}
    node = target.get("name")
    if not isinstance(node, str) or not node:
        causes.append({"reason": "FieldValueRequired", "field": "target.name", "message": "Required value"})
    if target.get("kind") not in (None, "", "Node"):
        causes.append({"reason": "FieldValueNotSupported", "field": "target.kind",
                       "message": f'Unsupported value: "{target.get("kind")}": supported values: "Node"'})
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.annotations",
                       "message": "Invalid value: annotations must be a map of strings"})
    if causes:
        raise st.invalid("Binding", pod_name, causes)
    return str(node), dict(annotations)


def assign(pod: dict[str, Any], node: str, annotations: dict[str, str], now: str | None = None) -> dict[str, Any]:
    """The pod bound to `node`: spec.nodeName set, the Binding's annotations added and the
    PodScheduled condition True."""
    meta = pod.get("metadata") or {}
    name = meta.get("name", "")
    if meta.get("deletionTimestamp"):
        raise st.conflict("pods", name, f"pod {name} is being deleted, cannot be assigned to a host")
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise st.conflict("pods", name, f'pod {name} is already assigned to node "{current}"')
    new = copy.deepcopy(pod)
    new["spec"]["nodeName"] = node
    if annotations:
        new["metadata"].setdefault("annotations", {}).update(annotations)
    status = new.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": now or now_rfc3339()})
    status["conditions"] = conditions
    return new
