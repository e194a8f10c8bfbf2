"""Validation of policy/v1 PodDisruptionBudgets, as kube-apiserver's pkg/apis/policy/validation:
minAvailable or maxUnavailable (a number or a percent up to 100%, not both), a well-formed
selector, a known unhealthyPodEvictionPolicy, and non-negative status counts."""
from __future__ import annotations

from typing import Any

from kproxy.api import selectors
from kproxy.api.validation.common import check_conditions, check_enum, check_labels
from kproxy.api.validation.errors import FieldErrors
from kproxy.api.validation.workloads import PERCENT_RE, _nonnegative, check_int_or_percent

UNHEALTHY_POD_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")


def _int_or_percent_up_to_100(e: FieldErrors, value: Any, field: str) -> None:
    check_int_or_percent(e, value, field)
    if isinstance(value, str) and PERCENT_RE.fullmatch(value) and int(value[:-1]) > 100:
        e.invalid(field, value, "must not be greater than 100%")


def _selector(e: FieldErrors, raw: Any, field: str) -> None:
    """A metav1.LabelSelector; absent or empty is allowed (an empty one selects every pod)."""
    if raw is None:
        return
    sel = e.map(raw, field)
    if not isinstance(raw, dict):
        return
    check_labels(e, e.string_map(sel.get("matchLabels"), f"{field}.matchLabels"), f"{field}.matchLabels")
    try:
        selectors.LabelSelector.from_dict(sel)
    except selectors.SelectorError as exc:
        e.invalid(field, sel, str(exc))


def validate_pod_disruption_budget(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        e.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set")
    if min_available is not None:
        _int_or_percent_up_to_100(e, min_available, "spec.minAvailable")
    if max_unavailable is not None:
        _int_or_percent_up_to_100(e, max_unavailable, "spec.maxUnavailable")
    _selector(e, spec.get("selector"), "spec.selector")
    if spec.get("unhealthyPodEvictionPolicy") is not None:
        check_enum(e, spec["unhealthyPodEvictionPolicy"], "spec.unhealthyPodEvictionPolicy",
                   UNHEALTHY_POD_EVICTION_POLICIES, required=True)
    status = e.map(obj.get("status"), "status")
    for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods", "observedGeneration"):
        _nonnegative(e, status.get(key), f"status.{key}")
    check_conditions(e, e.list(status.get("conditions"), "status.conditions"), "status.conditions")
    disrupted = e.map(status.get("disruptedPods"), "status.disruptedPods")
    for name, when in disrupted.items():
        if not isinstance(when, str):
            e.type_invalid(f"status.disruptedPods[{name}]", when, "must be an RFC 3339 time string")
