"""Validation of the apps/v1 DaemonSet, StatefulSet and ControllerRevision, as kube-apiserver's
pkg/apis/apps/validation does (the selector and template checks are workloads.py's)."""
from __future__ import annotations

from typing import Any, Mapping

from kproxy.api.validation.errors import FieldErrors
from kproxy.api.validation.workloads import (
    IMMUTABLE_MSG, PERCENT_RE, _immutable_selector, _nonnegative, _selector, _status_counts, _template,
    check_int_or_percent, is_zero,
)

DAEMON_SET_STRATEGIES = ("OnDelete", "RollingUpdate")
STATEFUL_SET_STRATEGIES = ("OnDelete", "RollingUpdate")
POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
RETENTION_POLICIES = ("Retain", "Delete")
# the spec fields of a StatefulSet an update may change (ValidateStatefulSetUpdate)
STATEFUL_SET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                        "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
STATEFUL_SET_MUTABLE_MSG = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")


def _over_100_percent(value: Any) -> bool:
    return isinstance(value, str) and PERCENT_RE.fullmatch(value) is not None and int(value[:-1]) > 100


def _daemon_set_strategy(e: FieldErrors, spec: dict[str, Any]) -> None:
    path = "spec.updateStrategy"
    strategy = e.map(spec.get("updateStrategy"), path)
    kind = strategy.get("type")
    if kind in (None, ""):
        e.required(f"{path}.type")
        return
    if kind not in DAEMON_SET_STRATEGIES:
        e.not_supported(path, kind, DAEMON_SET_STRATEGIES)
        return
    if kind != "RollingUpdate":
        return
    if strategy.get("rollingUpdate") is None:
        e.required(f"{path}.rollingUpdate")
        return
    rolling = e.map(strategy.get("rollingUpdate"), f"{path}.rollingUpdate")
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    for key, value in (("maxUnavailable", unavailable), ("maxSurge", surge)):
        check_int_or_percent(e, value, f"{path}.rollingUpdate.{key}")
        if _over_100_percent(value):
            e.invalid(f"{path}.rollingUpdate.{key}", value, "must not be greater than 100%")
    has_unavailable = unavailable is not None and not is_zero(unavailable)
    has_surge = surge is not None and not is_zero(surge)
    if has_unavailable and has_surge:
        e.invalid(f"{path}.rollingUpdate.maxSurge", surge, "may not be set when maxUnavailable is non-zero")
    elif not has_unavailable and not has_surge:
        e.required(f"{path}.rollingUpdate.maxUnavailable", "cannot be 0 when maxSurge is 0")


def validate_daemon_set(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    _nonnegative(e, spec.get("minReadySeconds"), "spec.minReadySeconds")
    _nonnegative(e, spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    sel = _selector(e, spec, "daemonset")
    _template(e, spec, sel, kind="DaemonSet")
    _daemon_set_strategy(e, spec)
    _immutable_selector(e, spec, old)
    _status_counts(e, e.map(obj.get("status"), "status"), (
        "currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
        "observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable", "collisionCount"))


def _stateful_set_strategy(e: FieldErrors, spec: dict[str, Any]) -> None:
    path = "spec.updateStrategy"
    strategy = e.map(spec.get("updateStrategy"), path)
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind in (None, ""):
        e.required(path)
    elif kind not in STATEFUL_SET_STRATEGIES:
        e.invalid(path, strategy, "must be 'RollingUpdate' or 'OnDelete'")
    elif kind == "OnDelete" and rolling is not None:
        e.invalid(f"{path}.rollingUpdate", rolling, "only allowed for updateStrategy 'RollingUpdate'")
    elif rolling is not None:
        rolling = e.map(rolling, f"{path}.rollingUpdate")
        _nonnegative(e, rolling.get("partition"), f"{path}.rollingUpdate.partition")
        unavailable = rolling.get("maxUnavailable")
        if unavailable is not None:
            check_int_or_percent(e, unavailable, f"{path}.rollingUpdate.maxUnavailable")
            if is_zero(unavailable):
                e.invalid(f"{path}.rollingUpdate.maxUnavailable", unavailable, "must be greater than 0")
            elif _over_100_percent(unavailable):
                e.invalid(f"{path}.rollingUpdate.maxUnavailable", unavailable, "must not be greater than 100%")


def validate_stateful_set(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    _nonnegative(e, spec.get("replicas"), "spec.replicas")
    _nonnegative(e, spec.get("minReadySeconds"), "spec.minReadySeconds")
    _nonnegative(e, spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    ordinals = e.map(spec.get("ordinals"), "spec.ordinals")
    _nonnegative(e, ordinals.get("start"), "spec.ordinals.start")
    service = spec.get("serviceName")
    if service in (None, ""):
        e.required("spec.serviceName")
    else:
        e.string(service, "spec.serviceName")
    policy = spec.get("podManagementPolicy")
    if policy in (None, ""):
        e.required("spec.podManagementPolicy")
    elif policy not in POD_MANAGEMENT_POLICIES:
        e.invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'")
    _stateful_set_strategy(e, spec)
    retention = e.map(spec.get("persistentVolumeClaimRetentionPolicy"), "spec.persistentVolumeClaimRetentionPolicy")
    for key in ("whenDeleted", "whenScaled"):
        value = retention.get(key)
        if value is not None and value not in RETENTION_POLICIES:
            e.not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", value, RETENTION_POLICIES)
    sel = _selector(e, spec, "statefulset")
    _template(e, spec, sel, kind="StatefulSet")
    if old is not None:
        old_spec: Mapping[str, Any] = old["spec"] if isinstance(old.get("spec"), Mapping) else {}
        if any(spec.get(k) != old_spec.get(k) for k in set(spec) | set(old_spec) if k not in STATEFUL_SET_MUTABLE):
            e.forbidden("spec", STATEFUL_SET_MUTABLE_MSG)
    _status_counts(e, e.map(obj.get("status"), "status"), (
        "replicas", "readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas",
        "observedGeneration", "collisionCount"))


def validate_controller_revision(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if obj.get("data") is None:
        e.required("data")
    _nonnegative(e, obj.get("revision"), "revision")
    if old is not None and obj.get("data") != old.get("data"):
        e.invalid("data", "<value omitted>", IMMUTABLE_MSG)
