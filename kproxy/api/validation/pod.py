"""Pod validation (ValidatePodCreate / ValidatePodUpdate and the pod status)."""
from __future__ import annotations

import json
from typing import Any, Mapping

from kproxy.api import names
from kproxy.api.validation.common import (
    check_conditions, check_enum, check_labels, check_port, check_protocol, check_quantity, check_time, ip_family,
)
from kproxy.api.validation.errors import FieldErrors

RESTART_POLICIES = ("Always", "Never", "OnFailure")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("FallbackToLogsOnError", "File")
POD_PHASES = ("Failed", "Pending", "Running", "Succeeded", "Unknown")


def _validate_container(e: FieldErrors, c: Any, path: str, seen_names: set[str], volumes: set[str],
                        host_network: bool) -> None:
    c = e.map(c, path)
    name = e.string(c.get("name"), f"{path}.name")
    if not name:
        e.required(f"{path}.name")
    else:
        e.invalid_all(f"{path}.name", name, names.check_dns1123_label(name))
        if name in seen_names:
            e.duplicate(f"{path}.name", name)
        seen_names.add(name)
    if not e.string(c.get("image"), f"{path}.image").strip():
        e.required(f"{path}.image")
    check_enum(e, c.get("imagePullPolicy"), f"{path}.imagePullPolicy", PULL_POLICIES, required=False)
    check_enum(e, c.get("terminationMessagePolicy"), f"{path}.terminationMessagePolicy",
                TERMINATION_MESSAGE_POLICIES, required=False)
    port_names: set[str] = set()
    for j, p in enumerate(e.list(c.get("ports"), f"{path}.ports")):
        ppath = f"{path}.ports[{j}]"
        p = e.map(p, ppath)
        pname = e.string(p.get("name"), f"{ppath}.name")
        if pname:
            e.invalid_all(f"{ppath}.name", pname, names.check_port_name(pname))
            if pname in port_names:
                e.duplicate(f"{ppath}.name", pname)
            port_names.add(pname)
        cport = check_port(e, p.get("containerPort"), f"{ppath}.containerPort")
        hport = e.integer(p.get("hostPort"), f"{ppath}.hostPort")
        if hport:
            e.invalid_all(f"{ppath}.hostPort", hport, names.check_port_number(hport))
            if host_network and cport is not None and hport != cport:
                e.invalid(f"{ppath}.hostPort", hport, "must match `containerPort` when `hostNetwork` is true")
        check_protocol(e, p.get("protocol"), f"{ppath}.protocol")
        host_ip = e.string(p.get("hostIP"), f"{ppath}.hostIP")
        if host_ip:
            e.invalid_all(f"{ppath}.hostIP", host_ip, names.check_ip(host_ip))
    for j, env in enumerate(e.list(c.get("env"), f"{path}.env")):
        epath = f"{path}.env[{j}]"
        env = e.map(env, epath)
        ename = e.string(env.get("name"), f"{epath}.name")
        if not ename:
            e.required(f"{epath}.name")
        elif "=" in ename or not ename.isprintable() or not ename.isascii():
            e.invalid(f"{epath}.name", ename, "a valid environment variable name must consist only of "
                      "printable ASCII characters other than '='")
        e.string(env.get("value"), f"{epath}.value")
    mount_paths: set[str] = set()
    for j, m in enumerate(e.list(c.get("volumeMounts"), f"{path}.volumeMounts")):
        mpath = f"{path}.volumeMounts[{j}]"
        m = e.map(m, mpath)
        vname = e.string(m.get("name"), f"{mpath}.name")
        if not vname:
            e.required(f"{mpath}.name")
        elif vname not in volumes:
            e.not_found(f"{mpath}.name", vname)
        mount = e.string(m.get("mountPath"), f"{mpath}.mountPath")
        if not mount:
            e.required(f"{mpath}.mountPath")
        elif mount in mount_paths:
            e.invalid(f"{mpath}.mountPath", mount, "must be unique")
        mount_paths.add(mount)
    resources = e.map(c.get("resources"), f"{path}.resources")
    for part in ("limits", "requests"):
        for k, v in e.map(resources.get(part), f"{path}.resources.{part}").items():
            check_quantity(e, v, f"{path}.resources.{part}[{k}]")


def _check_unique_host_ports(e: FieldErrors, containers: list[Any], field: str) -> None:
    """No two container ports of a pod may claim the same (hostIP, hostPort, protocol)."""
    taken: set[tuple[str, int, str]] = set()
    for i, c in enumerate(containers):
        ports = c.get("ports") if isinstance(c, Mapping) else None
        for j, p in enumerate(ports if isinstance(ports, list) else []):
            if not isinstance(p, Mapping) or not names.is_int(p.get("hostPort")) or p["hostPort"] == 0:
                continue
            proto = p.get("protocol") if isinstance(p.get("protocol"), str) else "TCP"
            key = (str(p.get("hostIP") or ""), p["hostPort"], proto)
            if key in taken:
                e.duplicate(f"{field}[{i}].ports[{j}].hostPort", f"{p['hostPort']}/{proto}")
            taken.add(key)


def _validate_pod_spec(e: FieldErrors, spec: dict[str, Any]) -> None:
    volumes: set[str] = set()
    for i, v in enumerate(e.list(spec.get("volumes"), "spec.volumes")):
        path = f"spec.volumes[{i}]"
        v = e.map(v, path)
        vname = e.string(v.get("name"), f"{path}.name")
        if not vname:
            e.required(f"{path}.name")
        else:
            e.invalid_all(f"{path}.name", vname, names.check_dns1123_label(vname))
            if vname in volumes:
                e.duplicate(f"{path}.name", vname)
            volumes.add(vname)
        sources = [k for k in v if k != "name"]
        if not sources:
            e.required(path, "must specify a volume type")
        elif len(sources) > 1:
            e.forbidden(f"{path}.{sources[1]}", "may not specify more than 1 volume type")
    host_network = bool(spec.get("hostNetwork") is True)
    e.boolean(spec.get("hostNetwork"), "spec.hostNetwork")
    containers = e.list(spec.get("containers"), "spec.containers")
    if not containers:
        e.required("spec.containers")
    seen: set[str] = set()
    for i, c in enumerate(containers):
        _validate_container(e, c, f"spec.containers[{i}]", seen, volumes, host_network)
    _check_unique_host_ports(e, containers, "spec.containers")
    for i, c in enumerate(e.list(spec.get("initContainers"), "spec.initContainers")):
        _validate_container(e, c, f"spec.initContainers[{i}]", seen, volumes, host_network)
        if isinstance(c, Mapping) and c.get("restartPolicy") not in (None, "Always"):
            e.not_supported(f"spec.initContainers[{i}].restartPolicy", c.get("restartPolicy"), ("Always",))
    check_enum(e, spec.get("restartPolicy"), "spec.restartPolicy", RESTART_POLICIES, required=True)
    check_enum(e, spec.get("dnsPolicy"), "spec.dnsPolicy", DNS_POLICIES, required=True)
    node = e.string(spec.get("nodeName"), "spec.nodeName")
    if node:
        e.invalid_all("spec.nodeName", node, names.check_dns1123_subdomain(node))
    sa = e.string(spec.get("serviceAccountName"), "spec.serviceAccountName")
    if sa:
        e.invalid_all("spec.serviceAccountName", sa, names.check_dns1123_subdomain(sa))
    for key in ("hostname", "subdomain"):
        value = e.string(spec.get(key), f"spec.{key}")
        if value:
            e.invalid_all(f"spec.{key}", value, names.check_dns1123_label(value))
    grace = e.integer(spec.get("terminationGracePeriodSeconds"), "spec.terminationGracePeriodSeconds")
    if grace is not None and grace < 0:
        e.invalid("spec.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0")
    deadline = e.integer(spec.get("activeDeadlineSeconds"), "spec.activeDeadlineSeconds")
    if deadline is not None and deadline < 1:
        e.invalid("spec.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive")
    check_labels(e, e.string_map(spec.get("nodeSelector"), "spec.nodeSelector"), "spec.nodeSelector")


def _validate_pod_status(e: FieldErrors, status: dict[str, Any]) -> None:
    check_enum(e, status.get("phase"), "status.phase", POD_PHASES, required=False)
    pod_ip = e.string(status.get("podIP"), "status.podIP")
    if pod_ip:
        e.invalid_all("status.podIP", pod_ip, names.check_ip(pod_ip))
    pod_ips = e.list(status.get("podIPs"), "status.podIPs")
    if len(pod_ips) > 2:
        e.too_many("status.podIPs", len(pod_ips), 2)
    ips = []
    for i, entry in enumerate(pod_ips):
        path = f"status.podIPs[{i}].ip"
        ip = e.string(e.map(entry, f"status.podIPs[{i}]").get("ip"), path)
        e.invalid_all(path, ip, names.check_ip(ip))
        ips.append(ip)
    if pod_ip and ips and ips[0] != pod_ip:
        e.invalid("status.podIPs[0].ip", ips[0], "must match `status.podIP`")
    if len(ips) == 2 and ip_family(ips[0]) and ip_family(ips[0]) == ip_family(ips[1]):
        e.invalid("status.podIPs", ips, "may specify no more than one IP for each IP family")
    host_ip = e.string(status.get("hostIP"), "status.hostIP")
    if host_ip:
        e.invalid_all("status.hostIP", host_ip, names.check_ip(host_ip))
    check_conditions(e, e.list(status.get("conditions"), "status.conditions"), "status.conditions")
    check_time(e, status.get("startTime"), "status.startTime")


_POD_MUTABLE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _pod_spec_without_mutable(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(spec))
    for key in ("containers", "initContainers"):
        for c in out.get(key) or []:
            if isinstance(c, dict):
                c.pop("image", None)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        out.pop(key, None)
    return out


def validate_pod(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    _validate_pod_spec(e, spec)
    _validate_pod_status(e, e.map(obj.get("status"), "status"))
    if old is not None and isinstance(old.get("spec"), Mapping):
        old_spec = old["spec"]
        if _pod_spec_without_mutable(spec) != _pod_spec_without_mutable(old_spec):
            e.forbidden("spec", _POD_MUTABLE_MSG)
        old_tol = old_spec.get("tolerations") or []
        new_tol = spec.get("tolerations") or []
        if isinstance(new_tol, list) and any(t not in new_tol for t in old_tol):
            e.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds")

