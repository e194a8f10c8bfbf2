"""The DisruptionAllowed condition of a PodDisruptionBudget's status, which both the eviction
API and the disruption controller keep (component-helpers' poddisruptionbudget helper). Pure."""
from __future__ import annotations

from typing import Any

DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS, INSUFFICIENT_PODS, SYNC_FAILED = "SufficientPods", "InsufficientPods", "SyncFailed"


def with_disruption_allowed(status: dict[str, Any], now: str, sync_failure: str | None = None) -> dict[str, Any]:
    """The status with its DisruptionAllowed condition following disruptionsAllowed (or False
    with reason SyncFailed and the failure as message); lastTransitionTime moves only when
    the condition's status does, as meta.SetStatusCondition."""
    allowed = sync_failure is None and int(status.get("disruptionsAllowed") or 0) > 0
    reason = SYNC_FAILED if sync_failure is not None else SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS
    want = {"type": DISRUPTION_ALLOWED, "status": "True" if allowed else "False", "reason": reason,
            "message": sync_failure or "", "observedGeneration": status.get("observedGeneration", 0)}
    conditions = status.get("conditions") or []
    old = next((c for c in conditions if c.get("type") == DISRUPTION_ALLOWED), None)
    since = old.get("lastTransitionTime") if old is not None and old.get("status") == want["status"] else None
    kept = [c for c in conditions if c.get("type") != DISRUPTION_ALLOWED]
    return {**status, "conditions": [*kept, {**want, "lastTransitionTime": since or now}]}
