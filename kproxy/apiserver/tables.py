"""Server-side printing: meta.k8s.io/v1 Table responses for `kubectl get` (pure functions).

Columns follow kube-apiserver's printers for the kinds kproxy serves; priority-1 columns are
the ones `-o wide` adds.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from kproxy.api.resources import Resource
from kproxy.apiserver.objects import parse_rfc3339

Row = list[Any]
Column = tuple[str, str, int]  # name, type, priority


def wants_table(accept: str) -> bool:
    """True when the client's preferred media type is a Table (kubectl get)."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table":
            return params.get("g", "meta.k8s.io") == "meta.k8s.io"
        if part.strip():
            return False
    return False


def human_duration(seconds: float) -> str:
    """Kubernetes' duration.HumanDuration."""
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    y = d // 365
    return f"{y}y{d % 365}d" if y < 8 and d % 365 else f"{y}y"


def _age(obj: dict[str, Any], now: float) -> str:
    ts = parse_rfc3339((obj.get("metadata") or {}).get("creationTimestamp") or "")
    return "<unknown>" if ts is None else human_duration(now - ts)


def _join(values: list[str], none: str = "<none>", limit: int = 3) -> str:
    if not values:
        return none
    out = ",".join(values[:limit])
    return out + (f" + {len(values) - limit} more..." if len(values) > limit else "")


def _selector(sel: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((sel or {}).items())) or "<none>"


def _service(obj: dict[str, Any], now: float) -> Row:
    spec = obj.get("spec") or {}
    svc_type = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    for ing in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        external.append(ing.get("ip") or ing.get("hostname") or "")
    if svc_type == "ExternalName":
        ext = spec.get("externalName", "<none>")
    elif external:
        ext = ",".join(external)
    else:
        ext = "<pending>" if svc_type == "LoadBalancer" else "<none>"
    ports = []
    for p in spec.get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        ports.append(f"{text}/{p.get('protocol', 'TCP')}")
    return [obj["metadata"]["name"], svc_type, spec.get("clusterIP") or "<none>", ext,
            ",".join(ports) or "<none>", _age(obj, now), _selector(spec.get("selector"))]


def _pod(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [obj["metadata"]["name"], f"{ready}/{len(containers)}", reason, restarts, _age(obj, now),
            status.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", f"{len(gates)}/{len(gates)}" if gates else "<none>"]


def _namespace(obj: dict[str, Any], now: float) -> Row:
    return [obj["metadata"]["name"], (obj.get("status") or {}).get("phase", ""), _age(obj, now)]


def _node(obj: dict[str, Any], now: float) -> Row:
    status = obj.get("status") or {}
    state = "Unknown"
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            state = "Ready" if c.get("status") == "True" else "NotReady"
    if (obj.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = (obj.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    addresses = status.get("addresses") or []
    internal = [a.get("address", "") for a in addresses if a.get("type") == "InternalIP"]
    external = [a.get("address", "") for a in addresses if a.get("type") == "ExternalIP"]
    info = status.get("nodeInfo") or {}
    return [obj["metadata"]["name"], state, ",".join(roles) or "<none>", _age(obj, now),
            info.get("kubeletVersion", ""), ",".join(internal) or "<none>", ",".join(external) or "<none>",
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _secret(obj: dict[str, Any], now: float) -> Row:
    return [obj["metadata"]["name"], obj.get("type") or "Opaque", len(obj.get("data") or {}), _age(obj, now)]


def _service_account(obj: dict[str, Any], now: float) -> Row:
    return [obj["metadata"]["name"], len(obj.get("secrets") or []), _age(obj, now)]


def _resource_quota(obj: dict[str, Any], now: float) -> Row:
    # as kube-apiserver: "name: used/hard" per status.hard entry, limits.* in the Limit column
    status = obj.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    request, limit = [], []
    for name in sorted(hard):
        column = limit if name.split(".", 1)[0] == "limits" and "." in name else request
        column.append(f"{name}: {used.get(name, '0')}/{hard[name]}")
    return [obj["metadata"]["name"], _age(obj, now), ", ".join(request), ", ".join(limit)]


def _role(obj: dict[str, Any], now: float) -> Row:
    return [obj["metadata"]["name"], (obj.get("metadata") or {}).get("creationTimestamp", "")]


def _role_binding(obj: dict[str, Any], now: float) -> Row:
    ref = obj.get("roleRef") or {}
    users, groups, accounts = [], [], []
    for subject in obj.get("subjects") or []:
        kind, name = subject.get("kind"), subject.get("name", "")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{name}")
    return [obj["metadata"]["name"], f"{ref.get('kind', '')}/{ref.get('name', '')}", _age(obj, now),
            ", ".join(users), ", ".join(groups), ", ".join(accounts)]


def _endpointslice(obj: dict[str, Any], now: float) -> Row:
    ports = [str(p.get("port")) if p.get("port") is not None else "<unset>" for p in obj.get("ports") or []]
    addrs = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [obj["metadata"]["name"], obj.get("addressType", ""), ",".join(ports) or "<unset>",
            _join(addrs, "<unset>"), _age(obj, now)]


def _endpoints(obj: dict[str, Any], now: float) -> Row:
    eps = []
    for subset in obj.get("subsets") or []:
        for a in subset.get("addresses") or []:
            for p in subset.get("ports") or [{}]:
                eps.append(f"{a.get('ip')}:{p.get('port')}" if p.get("port") else a.get("ip", ""))
    return [obj["metadata"]["name"], _join(eps), _age(obj, now)]


def _lease(obj: dict[str, Any], now: float) -> Row:
    return [obj["metadata"]["name"], (obj.get("spec") or {}).get("holderIdentity") or "<none>", _age(obj, now)]


def _event(obj: dict[str, Any], now: float) -> Row:
    last = parse_rfc3339(obj.get("lastTimestamp") or obj.get("eventTime") or
                         (obj.get("metadata") or {}).get("creationTimestamp") or "")
    ref = obj.get("involvedObject") or {}
    return [human_duration(now - last) if last else "<unknown>", obj.get("type", ""), obj.get("reason", ""),
            f"{(ref.get('kind') or '').lower()}/{ref.get('name', '')}", obj.get("message", "")]


def _config_map(obj: dict[str, Any], now: float) -> Row:
    return [obj["metadata"]["name"], len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), _age(obj, now)]


def _label_selector(sel: dict[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: "k=v,k2 in (a,b),!k3"; "<none>" when empty."""
    parts = [f"{k}={v}" for k, v in sorted(((sel or {}).get("matchLabels") or {}).items())]
    for req in (sel or {}).get("matchExpressions") or []:
        key, op, values = req.get("key", ""), req.get("operator"), ",".join(sorted(req.get("values") or []))
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key))
    return ",".join(parts) or "<none>"


def _template_cells(obj: dict[str, Any]) -> Row:
    """Containers, Images and Selector: the wide columns of the workloads."""
    spec = obj.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    selector = spec.get("selector")
    if obj.get("kind") == "ReplicationController":  # a plain label map (labels.FormatLabels)
        shown = ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items())) or "<none>"
    else:
        shown = _label_selector(selector)
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers),
            shown]


def _deployment(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(obj, now),
            *_template_cells(obj)]


def _replica_set(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], spec.get("replicas", 0), status.get("replicas", 0),
            status.get("readyReplicas", 0), _age(obj, now), *_template_cells(obj)]


def _pod_disruption_budget(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    shown = ["N/A" if spec.get(k) is None else str(spec[k]) for k in ("minAvailable", "maxUnavailable")]
    return [obj["metadata"]["name"], *shown, status.get("disruptionsAllowed", 0), _age(obj, now)]


def _label_map(labels: dict[str, Any] | None) -> str:
    """labels.FormatLabels: "k=v,k2=v2" sorted; "<none>" when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _daemon_set(obj: dict[str, Any], now: float) -> Row:
    status = obj.get("status") or {}
    node_selector = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector")
    return [obj["metadata"]["name"], *(status.get(k, 0) for k in (
                "desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled",
                "numberAvailable")),
            _label_map(node_selector), _age(obj, now), *_template_cells(obj)]


def _stateful_set(obj: dict[str, Any], now: float) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", _age(obj, now),
            *_template_cells(obj)[:2]]


def _controller_revision(obj: dict[str, Any], now: float) -> Row:
    ref = next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    controller = "<none>"
    if ref is not None:
        group = ref.get("apiVersion", "").rpartition("/")[0]
        controller = f"{ref.get('kind', '').lower()}{'.' + group if group else ''}/{ref.get('name', '')}"
    return [obj["metadata"]["name"], controller, obj.get("revision", 0), _age(obj, now)]


def _generic(obj: dict[str, Any], now: float) -> Row:
    return [obj["metadata"]["name"], _age(obj, now)]


NAME: Column = ("Name", "string", 0)
AGE: Column = ("Age", "string", 0)
ROLE_COLUMNS: list[Column] = [NAME, ("Created At", "date", 0)]
BINDING_COLUMNS: list[Column] = [NAME, ("Role", "string", 0), AGE, ("Users", "string", 1),
                                 ("Groups", "string", 1), ("ServiceAccounts", "string", 1)]
TEMPLATE_COLUMNS: list[Column] = [("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)]
PRINTERS: dict[str, tuple[list[Column], Callable[[dict[str, Any], float], Row]]] = {
    "ConfigMap": ([NAME, ("Data", "integer", 0), AGE], _config_map),
    "Deployment": ([NAME, ("Ready", "string", 0), ("Up-to-date", "integer", 0), ("Available", "integer", 0), AGE,
                    *TEMPLATE_COLUMNS], _deployment),
    "ReplicaSet": ([NAME, ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0), AGE,
                    *TEMPLATE_COLUMNS], _replica_set),
    "ReplicationController": ([NAME, ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0),
                               AGE, *TEMPLATE_COLUMNS], _replica_set),
    "PodDisruptionBudget": ([NAME, ("Min Available", "string", 0), ("Max Unavailable", "string", 0),
                             ("Allowed Disruptions", "integer", 0), AGE], _pod_disruption_budget),
    "DaemonSet": ([NAME, ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0),
                   ("Up-to-date", "integer", 0), ("Available", "integer", 0), ("Node Selector", "string", 0), AGE,
                   *TEMPLATE_COLUMNS], _daemon_set),
    "StatefulSet": ([NAME, ("Ready", "string", 0), AGE, *TEMPLATE_COLUMNS[:2]], _stateful_set),
    "ControllerRevision": ([NAME, ("Controller", "string", 0), ("Revision", "integer", 0), AGE],
                           _controller_revision),
    "Service": ([NAME, ("Type", "string", 0), ("Cluster-IP", "string", 0), ("External-IP", "string", 0),
                 ("Port(s)", "string", 0), AGE, ("Selector", "string", 1)], _service),
    "Pod": ([NAME, ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "integer", 0), AGE,
             ("IP", "string", 1), ("Node", "string", 1), ("Nominated Node", "string", 1),
             ("Readiness Gates", "string", 1)], _pod),
    "Namespace": ([NAME, ("Status", "string", 0), AGE], _namespace),
    "Node": ([NAME, ("Status", "string", 0), ("Roles", "string", 0), AGE, ("Version", "string", 0),
              ("Internal-IP", "string", 1), ("External-IP", "string", 1), ("OS-Image", "string", 1),
              ("Kernel-Version", "string", 1), ("Container-Runtime", "string", 1)], _node),
    "Secret": ([NAME, ("Type", "string", 0), ("Data", "integer", 0), AGE], _secret),
    "ServiceAccount": ([NAME, ("Secrets", "integer", 0), AGE], _service_account),
    "ResourceQuota": ([NAME, AGE, ("Request", "string", 0), ("Limit", "string", 0)], _resource_quota),
    "Role": (ROLE_COLUMNS, _role),
    "ClusterRole": (ROLE_COLUMNS, _role),
    "RoleBinding": (BINDING_COLUMNS, _role_binding),
    "ClusterRoleBinding": (BINDING_COLUMNS, _role_binding),
    "EndpointSlice": ([NAME, ("AddressType", "string", 0), ("Ports", "string", 0), ("Endpoints", "string", 0), AGE],
                      _endpointslice),
    "Endpoints": ([NAME, ("Endpoints", "string", 0), AGE], _endpoints),
    "Lease": ([NAME, ("Holder", "string", 0), AGE], _lease),
    "Event": ([("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
               ("Object", "string", 0), ("Message", "string", 0)], _event),
}


def _columns(kind: str) -> list[dict[str, Any]]:
    cols, _ = PRINTERS.get(kind, ([NAME, AGE], _generic))
    return [{"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n, "priority": p}
            for n, t, p in cols]


def _row(resource: Resource, obj: dict[str, Any], now: float, include_object: str) -> dict[str, Any]:
    _, printer = PRINTERS.get(resource.kind, ([], _generic))
    row: dict[str, Any] = {"cells": printer(obj, now)}
    if include_object == "Object":
        row["object"] = obj
    elif include_object != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata") or {}}
    return row


class TableRenderer:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock

    def render(self, resource: Resource, obj: dict[str, Any], include_object: str = "Metadata",
               with_columns: bool = True) -> dict[str, Any]:
        """A Table of one object or of a List's items; Status objects pass through."""
        if obj.get("kind") == "Status":
            return obj
        now = self.clock()
        items = obj.get("items") if obj.get("kind", "").endswith("List") and "items" in obj else None
        rows = [_row(resource, o, now, include_object) for o in (items if items is not None else [obj])]
        listed = obj.get("metadata") or {}
        meta = {"resourceVersion": listed.get("resourceVersion", "")}
        meta.update((k, listed[k]) for k in ("continue", "remainingItemCount") if k in listed)  # paging
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                "columnDefinitions": _columns(resource.kind) if with_columns else [], "rows": rows}


def _add_batch() -> None:
    from kproxy.apiserver import tables_batch  # imports this module's names: after them
    PRINTERS.update(tables_batch.PRINTERS)


_add_batch()
