"""Validation of ConfigMaps and the apps/v1 workloads (ReplicaSet, Deployment) and of the
autoscaling/v1 Scale their scale subresource takes, as kube-apiserver's
pkg/apis/apps/validation and pkg/apis/core/validation do."""
from __future__ import annotations

import re
from typing import Any, Mapping

from kproxy.api import selectors
from kproxy.api.validation.common import check_enum, check_labels
from kproxy.api.validation.errors import FieldErrors
from kproxy.api.validation.other_kinds import MAX_SECRET_BYTES, check_config_key, decoded_size
from kproxy.api.validation.pod import validate_pod

STRATEGY_TYPES = ("Recreate", "RollingUpdate")
PERCENT_RE = re.compile(r"[0-9]+%")
PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' "
               "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")
NONNEGATIVE_MSG = "must be greater than or equal to 0"
IMMUTABLE_MSG = "field is immutable"


def validate_config_map(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    total = 0
    data = e.string_map(obj.get("data"), "data")
    for k, v in data.items():
        check_config_key(e, k, f"data[{k}]")
        total += len(v.encode())
    for k, v in e.map(obj.get("binaryData"), "binaryData").items():
        path = f"binaryData[{k}]"
        check_config_key(e, k, path)
        if k in data:
            e.invalid(path, k, "duplicate of key present in data")
        total += decoded_size(e, v, path)
    if total > MAX_SECRET_BYTES:
        e.too_long("", MAX_SECRET_BYTES)
    e.boolean(obj.get("immutable"), "immutable")
    if old is not None and old.get("immutable") is True:
        if obj.get("immutable") is not True:
            e.forbidden("immutable", "field is immutable when `immutable` is set")
        for key in ("data", "binaryData"):
            if (obj.get(key) or {}) != (old.get(key) or {}):
                e.forbidden(key, "field is immutable when `immutable` is set")


def _nonnegative(e: FieldErrors, value: Any, field: str) -> int | None:
    n = e.integer(value, field)
    if n is not None and n < 0:
        e.invalid(field, n, NONNEGATIVE_MSG)
    return n


def check_int_or_percent(e: FieldErrors, value: Any, field: str) -> None:
    """A non-negative number or a percent string (ValidatePositiveIntOrPercent)."""
    if isinstance(value, bool) or value is None:
        if value is not None:
            e.type_invalid(field, value, "must be an integer or a percent string")
        return
    if isinstance(value, int):
        if value < 0:
            e.invalid(field, value, NONNEGATIVE_MSG)
    elif isinstance(value, str):
        if not PERCENT_RE.fullmatch(value):
            e.invalid(field, value, PERCENT_MSG)
    else:
        e.type_invalid(field, value, "must be an integer or a percent string")


def is_zero(value: Any) -> bool:
    """An IntOrString that scales to 0 whatever the replica count: 0 or "0%"."""
    return value == 0 or (isinstance(value, str) and PERCENT_RE.fullmatch(value) is not None and int(value[:-1]) == 0)


def _selector(e: FieldErrors, spec: dict[str, Any], kind: str) -> selectors.LabelSelector | None:
    raw = spec.get("selector")
    if raw is None:
        e.required("spec.selector")
        return None
    sel_map = e.map(raw, "spec.selector")
    if not isinstance(raw, Mapping):
        return None
    check_labels(e, e.string_map(sel_map.get("matchLabels"), "spec.selector.matchLabels"),
                 "spec.selector.matchLabels")
    try:
        sel = selectors.LabelSelector.from_dict(sel_map)
    except selectors.SelectorError as exc:
        e.invalid("spec.selector", sel_map, str(exc))
        return None
    if sel.empty():
        e.invalid("spec.selector", sel_map, f"empty selector is invalid for {kind}")
        return None
    return sel


def _template(e: FieldErrors, spec: dict[str, Any], sel: selectors.LabelSelector | None, *,
              path: str = "spec", restart_policies: tuple[str, ...] = ("Always",),
              kind: str = "ReplicaSet") -> None:
    """The pod template at `path`.template: labels matching the selector, a valid pod spec with
    one of `restart_policies` (controllers that keep pods running allow only Always, and no
    activeDeadlineSeconds; `kind` names such a controller in that error)."""
    tpath = f"{path}.template"
    if spec.get("template") is None:
        e.required(tpath)
        return
    template = e.map(spec.get("template"), tpath)
    md = e.map(template.get("metadata"), f"{tpath}.metadata")
    labels = e.string_map(md.get("labels"), f"{tpath}.metadata.labels")
    check_labels(e, labels, f"{tpath}.metadata.labels")
    if sel is not None and not sel.matches(labels):
        e.invalid(f"{tpath}.metadata.labels", labels, "`selector` does not match template `labels`")
    pod_errors = FieldErrors()
    validate_pod(pod_errors, {"spec": template.get("spec")}, None)
    for cause in pod_errors.causes:
        e.causes.append({**cause, "field": f"{tpath}." + cause["field"]})
    pod_spec = template.get("spec") if isinstance(template.get("spec"), Mapping) else {}
    policy = pod_spec.get("restartPolicy")
    if isinstance(policy, str) and policy not in restart_policies:
        e.not_supported(f"{tpath}.spec.restartPolicy", policy, restart_policies)
    if restart_policies == ("Always",) and pod_spec.get("activeDeadlineSeconds") is not None:
        e.forbidden(f"{tpath}.spec.activeDeadlineSeconds",
                    f"activeDeadlineSeconds in {kind} is not Supported")


def _immutable_selector(e: FieldErrors, spec: dict[str, Any], old: dict[str, Any] | None) -> None:
    if old is None:
        return
    old_spec = old.get("spec") if isinstance(old.get("spec"), Mapping) else {}
    if spec.get("selector") != old_spec.get("selector"):
        e.invalid("spec.selector", spec.get("selector"), IMMUTABLE_MSG)


def _status_counts(e: FieldErrors, status: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Each of `keys` in status, when set, a non-negative integer."""
    for key in keys:
        _nonnegative(e, status.get(key), f"status.{key}")


def _workload_status(e: FieldErrors, status: dict[str, Any]) -> None:
    _status_counts(e, status, ("replicas", "readyReplicas", "availableReplicas", "updatedReplicas",
                               "unavailableReplicas", "fullyLabeledReplicas", "terminatingReplicas",
                               "observedGeneration", "collisionCount"))


def validate_replica_set(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    _nonnegative(e, spec.get("replicas"), "spec.replicas")
    _nonnegative(e, spec.get("minReadySeconds"), "spec.minReadySeconds")
    sel = _selector(e, spec, "deployment")
    _template(e, spec, sel)
    _immutable_selector(e, spec, old)
    _workload_status(e, e.map(obj.get("status"), "status"))


def validate_replication_controller(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """A v1 ReplicationController (ValidateReplicationControllerSpec): its selector is a plain
    label map, required and non-empty, matching the template's labels; unlike a ReplicaSet's
    it may change."""
    spec = e.map(obj.get("spec"), "spec")
    _nonnegative(e, spec.get("replicas"), "spec.replicas")
    _nonnegative(e, spec.get("minReadySeconds"), "spec.minReadySeconds")
    sel_map = e.string_map(spec.get("selector"), "spec.selector")
    check_labels(e, sel_map, "spec.selector")
    if not sel_map:
        e.required("spec.selector")
    _template(e, spec, selectors.LabelSelector.from_labels(sel_map) if sel_map else None,
              kind="ReplicationController")
    _workload_status(e, e.map(obj.get("status"), "status"))


def validate_deployment(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    _nonnegative(e, spec.get("replicas"), "spec.replicas")
    min_ready = _nonnegative(e, spec.get("minReadySeconds"), "spec.minReadySeconds")
    _nonnegative(e, spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    deadline = _nonnegative(e, spec.get("progressDeadlineSeconds"), "spec.progressDeadlineSeconds")
    if deadline is not None and min_ready is not None and deadline <= min_ready:
        e.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")
    e.boolean(spec.get("paused"), "spec.paused")
    sel = _selector(e, spec, "deployment")
    _template(e, spec, sel)
    strategy = e.map(spec.get("strategy"), "spec.strategy")
    kind = check_enum(e, strategy.get("type"), "spec.strategy.type", STRATEGY_TYPES, required=True)
    if kind == "Recreate" and strategy.get("rollingUpdate") is not None:
        e.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
    elif kind == "RollingUpdate":
        rolling = e.map(strategy.get("rollingUpdate"), "spec.strategy.rollingUpdate")
        surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
        check_int_or_percent(e, surge, "spec.strategy.rollingUpdate.maxSurge")
        check_int_or_percent(e, unavailable, "spec.strategy.rollingUpdate.maxUnavailable")
        if isinstance(unavailable, str) and PERCENT_RE.fullmatch(unavailable) and int(unavailable[:-1]) > 100:
            e.invalid("spec.strategy.rollingUpdate.maxUnavailable", unavailable, "must not be greater than 100%")
        if is_zero(surge) and is_zero(unavailable):
            e.invalid("spec.strategy.rollingUpdate.maxUnavailable", unavailable,
                      "may not be 0 when `maxSurge` is 0")
    _immutable_selector(e, spec, old)
    status = e.map(obj.get("status"), "status")
    _workload_status(e, status)


def validate_scale(e: FieldErrors, scale: dict[str, Any]) -> None:
    """An autoscaling/v1 Scale written to a scale subresource."""
    spec = e.map(scale.get("spec"), "spec")
    _nonnegative(e, spec.get("replicas"), "spec.replicas")
