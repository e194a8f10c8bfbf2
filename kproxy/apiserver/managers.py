"""Who a write is recorded for in managedFields: the fieldManager and force parameters of a
request, checked as kube-apiserver checks Create/Update/PatchOptions (422 Invalid, kind
<Verb>Options of meta.k8s.io), and the default manager derived from the User-Agent."""
from __future__ import annotations

from typing import Any, Mapping

from kproxy.api import status as st
from kproxy.apiserver import fieldmanager as fm
from kproxy.apiserver.query import query_bool

OPTIONS_GROUP = "meta.k8s.io"


def write_manager(query: Mapping[str, str], user_agent: str, options_kind: str, subresource: str | None,
                  apply: bool = False) -> tuple[fm.Manager, bool]:
    """(manager, force) of a create (CreateOptions), update (UpdateOptions) or patch
    (PatchOptions) request; `apply` for an apply patch, which must name its manager."""
    name = query.get("fieldManager")
    causes: list[dict[str, Any]] = []
    for reason, message in fm.manager_problems(name or ""):
        causes.append({"reason": reason, "field": "fieldManager", "message": message})
    if apply and not name:
        causes.append({"reason": "FieldValueRequired", "field": "fieldManager",
                       "message": "Required value: is required for apply patch"})
    force_raw = query.get("force")
    if force_raw is not None and not apply:
        causes.append({"reason": "FieldValueForbidden", "field": "force",
                       "message": "Forbidden: may not be specified for non-apply patch"})
    if causes:
        summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        raise st.ApiError(st.status(422, "Invalid", f'{options_kind}.{OPTIONS_GROUP} "" is invalid: {summary}',
                                    kind=options_kind, name="", group=OPTIONS_GROUP, causes=causes))
    manager = name or fm.manager_from_user_agent(user_agent)
    return fm.Manager(manager, fm.APPLY if apply else fm.UPDATE, subresource or ""), query_bool(force_raw)
