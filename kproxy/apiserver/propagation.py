"""DeleteOptions' garbage-collection choices, as kube-apiserver's generic store handles them:
`propagationPolicy` (Orphan, Background, Foreground) and the older `orphanDependents` are
validated, and a delete that asks for orphaning or foreground deletion leaves the object marked
for deletion with the `orphan` or `foregroundDeletion` finalizer, which the garbage collector
removes when it has dealt with the dependents. Every served kind defaults to Background (no
finalizer: deleted at once). Pure."""
from __future__ import annotations

from typing import Any, Mapping

from kproxy.api import status as st
from kproxy.apiserver.query import query_bool

ORPHAN, BACKGROUND, FOREGROUND = "Orphan", "Background", "Foreground"
ORPHAN_FINALIZER, FOREGROUND_FINALIZER = "orphan", "foregroundDeletion"


def parse(query: Mapping[str, str], body: Mapping[str, Any]) -> tuple[str | None, bool | None]:
    """(propagationPolicy, orphanDependents) of a delete, from the query or else the
    DeleteOptions body; a value of the wrong type is a 400, a bad choice a 422 naming
    DeleteOptions, as upstream's ValidateDeleteOptions."""
    policy: Any = query.get("propagationPolicy", body.get("propagationPolicy"))
    orphan: Any = query_bool(query["orphanDependents"]) if "orphanDependents" in query else body.get("orphanDependents")
    if policy is not None and not isinstance(policy, str):
        raise st.bad_request("propagationPolicy must be a string")
    if orphan is not None and not isinstance(orphan, bool):
        raise st.bad_request("orphanDependents must be a boolean")
    causes = []
    if policy is not None and orphan is not None:
        causes.append({"reason": "FieldValueInvalid", "field": "propagationPolicy",
                       "message": f'Invalid value: "{policy}": orphanDependents and deletionPropagation cannot be both set'})
    if policy is not None and policy not in (FOREGROUND, BACKGROUND, ORPHAN):
        causes.append({"reason": "FieldValueNotSupported", "field": "propagationPolicy",
                       "message": f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"'})
    if causes:
        summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        raise st.ApiError(st.status(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: {summary}',
                                    kind="DeleteOptions", name="", group="meta.k8s.io", causes=causes))
    return policy, orphan


def _orphans(finalizers: list[str], policy: str | None, orphan: bool | None) -> bool:
    if orphan is not None:
        return orphan
    if policy is not None:
        return policy == ORPHAN
    for f in finalizers:  # an earlier delete's choice stands
        if f in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER):
            return f == ORPHAN_FINALIZER
    return False  # Background is every served kind's default


def _foreground(finalizers: list[str], policy: str | None, orphan: bool | None) -> bool:
    if orphan is not None:
        return False
    if policy is not None:
        return policy == FOREGROUND
    return FOREGROUND_FINALIZER in finalizers


def deletion_finalizers(finalizers: list[str], policy: str | None, orphan: bool | None) -> list[str]:
    """The object's finalizers after a delete with these options: the two garbage-collection
    finalizers as the options (or an earlier delete) ask, the others kept in order."""
    kept = [f for f in finalizers if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    if _orphans(finalizers, policy, orphan):
        kept.append(ORPHAN_FINALIZER)
    if _foreground(finalizers, policy, orphan):
        kept.append(FOREGROUND_FINALIZER)
    return kept if set(kept) != set(finalizers) else list(finalizers)
