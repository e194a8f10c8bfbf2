"""DefaultTolerationSeconds admission, as kube-apiserver's: every pod created gets
tolerations of node.kubernetes.io/not-ready and node.kubernetes.io/unreachable (NoExecute,
tolerationSeconds 300) unless it already tolerates them, so its pods leave a failed node
five minutes after the node lifecycle controller taints it.
"""
from __future__ import annotations

from typing import Any

from kproxy.api import resources as R

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_SECONDS = 300


def tolerates(tolerations: list[Any], key: str) -> bool:
    """Whether a toleration already covers `key` with effect NoExecute (upstream's test: same
    key or an empty one, effect NoExecute or empty)."""
    return any(isinstance(t, dict) and t.get("key") in (key, "", None) and t.get("effect") in ("NoExecute", "", None)
               for t in tolerations)


def add_default_tolerations(spec: dict[str, Any], seconds: int = DEFAULT_SECONDS,
                            unreachable_seconds: int | None = None) -> None:
    """Adds the not-ready (`seconds`) and unreachable (`unreachable_seconds`, default the same)
    tolerations the pod lacks (kube-apiserver's --default-*-toleration-seconds)."""
    tolerations = spec.get("tolerations") or []
    unreachable = seconds if unreachable_seconds is None else unreachable_seconds
    for key, key_seconds in ((NOT_READY_TAINT, seconds), (UNREACHABLE_TAINT, unreachable)):
        if not tolerates(tolerations, key):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": key_seconds})
    spec["tolerations"] = tolerations


class DefaultTolerationSeconds:
    def __init__(self, seconds: int = DEFAULT_SECONDS, unreachable_seconds: int | None = None):
        self.seconds = seconds
        self.unreachable_seconds = seconds if unreachable_seconds is None else unreachable_seconds

    def admit_create(self, resource: R.Resource, namespace: str | None, obj: dict[str, Any]) -> None:
        if resource is R.PODS:
            add_default_tolerations(obj.setdefault("spec", {}), self.seconds, self.unreachable_seconds)
