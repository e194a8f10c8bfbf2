"""Defaulting as Kubernetes' SetDefaults_* (pkg/apis/core/v1/defaults.go and friends) plus the
parts of the registry strategies that fill fields before validation (Service clusterIPs and
IP families, Namespace phase and name label).

`apply_defaults(resource, obj)` returns a new dict and never mutates its input. It leaves
allocation (clusterIP, nodePort, healthCheckNodePort) to the apiserver's allocators. Values
of the wrong JSON type are left alone for validation to report.
"""
from __future__ import annotations

from typing import Any, Callable

from kproxy.api import names
from kproxy.api.meta import deep_copy
from kproxy.api.resources import Resource

DEFAULT_CLIENT_IP_TIMEOUT = 10800
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _dict(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    """parent[key] as a dict, creating it when absent; None if it holds another type."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _set_default(d: dict[str, Any], key: str, value: Any) -> None:
    if d.get(key) in (None, ""):
        d[key] = value


def _set_defaults(d: dict[str, Any], values: dict[str, Any], unset: tuple[Any, ...] = (None, "")) -> None:
    """Each key of `values` whose value in `d` is one of `unset` gets the default."""
    for key, value in values.items():
        if d.get(key) in unset:
            d[key] = value


def _default_rolling_update(spec: dict[str, Any], strategy_key: str, rolling: dict[str, Any],
                            unset: tuple[Any, ...] = (None, "")) -> None:
    """spec[strategy_key]: type RollingUpdate by default and, for RollingUpdate, the `rolling`
    defaults in its rollingUpdate."""
    strategy = _dict(spec, strategy_key)
    if strategy is not None:
        _set_default(strategy, "type", "RollingUpdate")
        if strategy.get("type") == "RollingUpdate":
            params = _dict(strategy, "rollingUpdate")
            if params is not None:
                _set_defaults(params, rolling, unset)


# --- Service -------------------------------------------------------------------------------

def _default_service(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set_default(spec, "type", "ClusterIP")
    svc_type = spec.get("type")
    _set_default(spec, "sessionAffinity", "None")
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = _dict(spec, "sessionAffinityConfig")
        client_ip = _dict(cfg, "clientIP") if cfg is not None else None
        if client_ip is not None and client_ip.get("timeoutSeconds") is None:
            client_ip["timeoutSeconds"] = DEFAULT_CLIENT_IP_TIMEOUT
    for port in _dicts(spec.get("ports")):
        _set_default(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            if names.is_int(port.get("port")):
                port["targetPort"] = port["port"]
    if svc_type in ("NodePort", "LoadBalancer"):
        _set_default(spec, "externalTrafficPolicy", "Cluster")
    if svc_type != "ExternalName":
        _set_default(spec, "internalTrafficPolicy", "Cluster")
    if svc_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    _default_service_ip_families(spec)


def _default_service_ip_families(spec: dict[str, Any]) -> None:
    """clusterIPs mirror clusterIP (and the reverse). The IP families and ipFamilyPolicy depend
    on the cluster's configured families and on the old object, so the apiserver fills them
    (kproxy.apiserver.service_families), as kube-apiserver's registry does."""
    if spec.get("type") == "ExternalName":
        return
    cluster_ip = spec.get("clusterIP")
    ips = spec.get("clusterIPs")
    if isinstance(cluster_ip, str) and cluster_ip and not ips:
        spec["clusterIPs"] = [cluster_ip]
    elif isinstance(ips, list) and ips and isinstance(ips[0], str) and not cluster_ip:
        spec["clusterIP"] = ips[0]


def preserve_service_allocations(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A copy of `new` (an update of `old`) that keeps what the apiserver allocated and the
    client left out: clusterIP(s), ipFamilies, and nodePorts/healthCheckNodePort of ports
    that still exist, unless the type change drops them. This is the registry's
    patchAllocatedValues; call it before apply_defaults and validate on update so a
    `kubectl apply`/`replace` without clusterIP keeps the allocated one."""
    out = deep_copy(new)
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    spec = out.get("spec")
    if not isinstance(spec, dict):
        return out
    old_type = old_spec.get("type") or "ClusterIP"
    new_type = spec.get("type") or "ClusterIP"
    if old_type != "ExternalName" and new_type != "ExternalName":
        if not spec.get("clusterIP") and not spec.get("clusterIPs"):
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if old_spec.get(key) and not spec.get(key):
                    spec[key] = deep_copy(old_spec[key])
    if new_type in ("NodePort", "LoadBalancer") and old_type in ("NodePort", "LoadBalancer"):
        old_ports = _dicts(old_spec.get("ports"))
        for port in _dicts(spec.get("ports")):
            if port.get("nodePort"):
                continue
            for op in old_ports:
                if op.get("port") == port.get("port") and (op.get("protocol") or "TCP") == (port.get("protocol") or "TCP"):
                    if op.get("nodePort"):
                        port["nodePort"] = op["nodePort"]
                    break
        if (new_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
                and not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort")):
            spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]
    return out


def _needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return (spec.get("type") or "ClusterIP") != "ExternalName"


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def _externally_accessible(spec: dict[str, Any]) -> bool:
    return _needs_node_ports(spec) or ((spec.get("type") or "ClusterIP") == "ClusterIP" and bool(spec.get("externalIPs")))


def _node_ports(spec: dict[str, Any]) -> list[Any]:
    return [p.get("nodePort") for p in _dicts(spec.get("ports"))]


def drop_type_dependent_fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A copy of `new` (an update of `old`) without the fields its new type no longer allows,
    where the client left them as they were (the registry's dropTypeDependentFields). So a
    `kubectl apply` that turns a NodePort Service into ClusterIP, or anything into
    ExternalName, succeeds although the live object still carries nodePorts,
    externalTrafficPolicy, clusterIPs or ipFamilies the client never wrote. A value the client
    changed is kept, and validation then reports it."""
    out = deep_copy(new)
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    spec = out.get("spec")
    if not isinstance(spec, dict):
        return out

    def same(key: str) -> bool:
        return spec.get(key) == old_spec.get(key)

    if _needs_cluster_ip(old_spec) and not _needs_cluster_ip(spec):
        if same("clusterIP") and same("clusterIPs"):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        for key in ("ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            if same(key):
                spec.pop(key, None)
    if _needs_node_ports(old_spec) and not _needs_node_ports(spec) and _node_ports(spec) == _node_ports(old_spec):
        for port in _dicts(spec.get("ports")):
            port.pop("nodePort", None)
    was_lb, is_lb = old_spec.get("type") == "LoadBalancer", spec.get("type") == "LoadBalancer"
    local_lb = is_lb and spec.get("externalTrafficPolicy") == "Local"
    if was_lb and old_spec.get("externalTrafficPolicy") == "Local" and not local_lb and same("healthCheckNodePort"):
        spec.pop("healthCheckNodePort", None)
    if was_lb and not is_lb:
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if same(key):
                spec.pop(key, None)
    if _externally_accessible(old_spec) and not _externally_accessible(spec) and same("externalTrafficPolicy"):
        spec.pop("externalTrafficPolicy", None)
    return out


# --- Pod -----------------------------------------------------------------------------------

def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):
        if probe.get(key) in (None, 0):
            probe[key] = value
    http = probe.get("httpGet")
    if isinstance(http, dict):
        _set_default(http, "path", "/")
        _set_default(http, "scheme", "HTTP")


def _image_pull_policy(image: Any) -> str:
    """Always for ":latest" or untagged images (digests pin the image: IfNotPresent)."""
    if not isinstance(image, str):
        return "IfNotPresent"
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_container(c: dict[str, Any], host_network: bool) -> None:
    _set_default(c, "terminationMessagePath", "/dev/termination-log")
    _set_default(c, "terminationMessagePolicy", "File")
    _set_default(c, "imagePullPolicy", _image_pull_policy(c.get("image")))
    for port in _dicts(c.get("ports")):
        _set_default(port, "protocol", "TCP")
        if host_network and port.get("hostPort") in (None, 0) and names.is_int(port.get("containerPort")):
            port["hostPort"] = port["containerPort"]
    for env in _dicts(c.get("env")):
        value_from = env.get("valueFrom")
        if isinstance(value_from, dict) and isinstance(value_from.get("fieldRef"), dict):
            _set_default(value_from["fieldRef"], "apiVersion", "v1")
    resources = c.get("resources")
    if resources is None:
        c["resources"] = {}
    elif isinstance(resources, dict):
        limits, requests = resources.get("limits"), resources.get("requests")
        if isinstance(limits, dict) and limits:
            if requests is None:
                resources["requests"] = requests = {}
            if isinstance(requests, dict):
                for k, v in limits.items():
                    requests.setdefault(k, v)
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(key))


def _default_pod(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set_default(spec, "restartPolicy", "Always")
    _set_default(spec, "dnsPolicy", "ClusterFirst")
    _set_default(spec, "schedulerName", "default-scheduler")
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    host_network = spec.get("hostNetwork") is True
    for key in ("containers", "initContainers"):
        for c in _dicts(spec.get(key)):
            _default_container(c, host_network)
    for vol in _dicts(spec.get("volumes")):
        for source in ("secret", "configMap", "projected", "downwardAPI"):
            src = vol.get(source)
            if isinstance(src, dict) and src.get("defaultMode") is None:
                src["defaultMode"] = 420
        if not [k for k in vol if k != "name"]:
            vol["emptyDir"] = {}
    for tol in _dicts(spec.get("tolerations")):
        if tol.get("operator") in (None, "") and tol.get("key"):
            tol["operator"] = "Equal"


# --- the other kinds -----------------------------------------------------------------------

def _default_endpoint_slice(obj: dict[str, Any]) -> None:
    for port in _dicts(obj.get("ports")):
        _set_default(port, "protocol", "TCP")
        if port.get("name") is None:
            port["name"] = ""


def _default_endpoints(obj: dict[str, Any]) -> None:
    for subset in _dicts(obj.get("subsets")):
        for port in _dicts(subset.get("ports")):
            _set_default(port, "protocol", "TCP")


def _default_namespace(obj: dict[str, Any]) -> None:
    md = _dict(obj, "metadata")
    if md is not None and isinstance(md.get("name"), str) and md["name"]:
        labels = _dict(md, "labels")
        if labels is not None:
            labels[NAMESPACE_NAME_LABEL] = md["name"]
    spec = _dict(obj, "spec")
    if spec is not None and spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]
    status = _dict(obj, "status")
    if status is not None:
        _set_default(status, "phase", "Active")


def _default_node(obj: dict[str, Any]) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and isinstance(status.get("capacity"), dict) and status.get("allocatable") is None:
        status["allocatable"] = dict(status["capacity"])


def _default_secret(obj: dict[str, Any]) -> None:
    _set_default(obj, "type", "Opaque")


def _default_event(obj: dict[str, Any]) -> None:
    if obj.get("count") is None and obj.get("firstTimestamp"):
        obj["count"] = 1


# --- apps/v1 (pkg/apis/apps/v1/defaults.go) ------------------------------------------------

def _default_pod_template(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        _default_pod(template)


def _default_replica_set(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is not None:
        _set_defaults(spec, {"replicas": 1}, unset=(None,))
        _default_pod_template(spec)


def _default_deployment(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set_defaults(spec, {"replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}, unset=(None,))
    _default_rolling_update(spec, "strategy", {"maxUnavailable": "25%", "maxSurge": "25%"}, unset=(None,))
    _default_pod_template(spec)


def _default_replication_controller(obj: dict[str, Any]) -> None:
    """SetDefaults_ReplicationController: selector and labels from the template's labels when
    empty, replicas 1."""
    spec = _dict(obj, "spec")
    if spec is None:
        return
    template = spec.get("template")
    labels = (template.get("metadata") or {}).get("labels") if isinstance(template, dict) else None
    if isinstance(labels, dict) and labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        md = obj.setdefault("metadata", {})
        if isinstance(md, dict) and not md.get("labels"):
            md["labels"] = dict(labels)
    _default_replica_set(obj)  # the rest is a ReplicaSet's


# --- batch/v1 (pkg/apis/batch/v1/defaults.go) ----------------------------------------------

def _default_job(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1  # a non-parallel Job: both unset means one pod to success
    _set_defaults(spec, {"parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False,
                         "podReplacementPolicy": "TerminatingOrFailed"}, unset=(None,))
    _default_pod_template(spec)


def _default_cron_job(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set_defaults(spec, {"concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3,
                         "failedJobsHistoryLimit": 1})
    # only the pod template inside: a Job's own defaults apply when the Job is created
    template = spec.get("jobTemplate")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        _default_pod_template(template["spec"])


# --- apps/v1 DaemonSet and StatefulSet (pkg/apis/apps/v1/defaults.go) ----------------------

def _default_daemon_set(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set_default(spec, "revisionHistoryLimit", 10)
    _default_rolling_update(spec, "updateStrategy", {"maxUnavailable": 1, "maxSurge": 0})
    _default_pod_template(spec)


def _default_stateful_set(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set_defaults(spec, {"replicas": 1, "revisionHistoryLimit": 10, "podManagementPolicy": "OrderedReady"})
    _default_rolling_update(spec, "updateStrategy", {"partition": 0})
    retention = _dict(spec, "persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        _set_defaults(retention, {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _default_pod_template(spec)


_DEFAULTERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Service": _default_service,
    "Pod": _default_pod,
    "EndpointSlice": _default_endpoint_slice,
    "Endpoints": _default_endpoints,
    "Namespace": _default_namespace,
    "Node": _default_node,
    "Secret": _default_secret,
    "Event": _default_event,
    "ReplicaSet": _default_replica_set,
    "Deployment": _default_deployment,
    "ReplicationController": _default_replication_controller,
    "Job": _default_job,
    "CronJob": _default_cron_job,


    "DaemonSet": _default_daemon_set,
    "StatefulSet": _default_stateful_set,
}


def apply_defaults(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """A defaulted copy of `obj` (the input is not modified); non-dict input is returned as is."""
    if not isinstance(obj, dict):
        return obj
    out = deep_copy(obj)
    defaulter = _DEFAULTERS.get(resource.kind)
    if defaulter is not None:
        defaulter(out)
    return out
