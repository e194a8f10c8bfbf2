"""pods/eviction: deleting a pod within its PodDisruptionBudget (POST a policy/v1 Eviction), as
kube-apiserver's EvictionREST:

- a pod that is not running (Pending, Succeeded, Failed) or already being deleted is deleted
  at once: it disrupts nothing more;
- a pod no budget covers is deleted; one covered by more than one budget is refused with a
  500 Failure Status (upstream does not support that either);
- a covered pod that is ready is deleted only when the budget's status allows a disruption:
  disruptionsAllowed is decremented and the pod recorded in disruptedPods through a status
  write conditional on the budget's resourceVersion, so two evictions that read the same
  budget cannot both pass (the loser re-reads it and may get the 429);
- a covered pod that is not ready is deleted without spending the budget when its policy is
  AlwaysAllow, or while the budget is met (currentHealthy >= desiredHealthy > 0), on the
  condition that the pod is still the version read (else 429: it may have become ready).
A budget whose status the disruption controller has not caught up with (observedGeneration
behind generation) answers 429 as well. Blocking: run it on the writer pool.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Callable

from kproxy.api import status as st
from kproxy.api.disruptionbudget import with_disruption_allowed
from kproxy.api.resources import POD_DISRUPTION_BUDGETS, PODS
from kproxy.api.selectors import LabelSelector, SelectorError
from kproxy.apiserver import propagation
from kproxy.apiserver.objects import rfc3339
from kproxy.apiserver.registry import RACE_RETRIES, DeleteOptions, Registry

EVICTION_API_VERSIONS = ("policy/v1", "policy/v1beta1")
BUDGET_VIOLATED = "Cannot evict pod as it would violate the pod's disruption budget."
MORE_THAN_ONE_BUDGET = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
MAX_DISRUPTED_PODS = 2000  # upstream's MaxDisruptedPodSize
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"


def delete_options_of(body: Any, pod_name: str) -> dict[str, Any]:
    """The deleteOptions of an Eviction body for pod `pod_name` (400 for anything else)."""
    if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction") or \
            body.get("apiVersion") not in (None, *EVICTION_API_VERSIONS):
        raise st.bad_request("the body of a pods/eviction request must be a policy/v1 Eviction")
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        raise st.bad_request("metadata must be an object")
    if meta.get("name") != pod_name:
        raise st.bad_request("name in URL does not match name in Eviction object")
    options = body.get("deleteOptions") or {}
    if not isinstance(options, dict):
        raise st.bad_request("deleteOptions must be an object")
    return options


def success() -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def budget_violated(cause: str, retry_after: int | None = None) -> st.ApiError:
    return st.ApiError(st.status(429, "TooManyRequests", BUDGET_VIOLATED, retry_after=retry_after,
                                 causes=[{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]))


def still_processing(pdb: dict[str, Any]) -> st.ApiError:
    name = (pdb.get("metadata") or {}).get("name", "")
    return budget_violated(f"The disruption budget {name} is still being processed by the server.", 10)


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [] if isinstance(c, dict))


def disrupts_nothing(pod: dict[str, Any]) -> bool:
    """canIgnorePDB: the pod is not running, or is already being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def covers(pdb: dict[str, Any], pod: dict[str, Any]) -> bool:
    """The budget's selector matches the pod; a missing, empty or broken selector covers
    nothing here (upstream's eviction does not let such a budget block every pod)."""
    try:
        selector = LabelSelector.from_dict((pdb.get("spec") or {}).get("selector"))
    except SelectorError:
        return False
    return not selector.empty() and selector.matches((pod.get("metadata") or {}).get("labels"))


def spend(pdb: dict[str, Any], pod_name: str, now: str) -> dict[str, Any]:
    """The budget after allowing one disruption of `pod_name` (checkAndDecrement), or the
    ApiError that refuses it. Pure."""
    md, status = pdb.get("metadata") or {}, pdb.get("status") or {}
    name = md.get("name", "")
    if int(status.get("observedGeneration") or 0) < int(md.get("generation") or 0):
        raise still_processing(pdb)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise st.forbidden(f'poddisruptionbudgets.policy "{name}" is forbidden: pdb disruptions allowed is negative',
                           "poddisruptionbudgets", name)
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise st.forbidden(f'poddisruptionbudgets.policy "{name}" is forbidden: DisruptedPods map too big - too '
                           f'many evictions not confirmed by PDB controller', "poddisruptionbudgets", name)
    if allowed == 0:
        raise budget_violated(f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} healthy "
                                   f"pods and has {status.get('currentHealthy', 0)} currently")
    new = copy.deepcopy(pdb)
    new_status = {**new.get("status", {}), "disruptionsAllowed": allowed - 1}
    if allowed - 1 == 0:
        new_status = with_disruption_allowed(new_status, now)
    new_status["disruptedPods"] = {**(new_status.get("disruptedPods") or {}), pod_name: now}
    new["status"] = new_status
    return new


def disruption_target(pod: dict[str, Any], now: str) -> dict[str, Any]:
    """The pod with the DisruptionTarget condition an eviction sets on it. Pure."""
    new = copy.deepcopy(pod)
    status = new.setdefault("status", {})
    old = next((c for c in status.get("conditions") or [] if c.get("type") == "DisruptionTarget"), None)
    since = old.get("lastTransitionTime") if old is not None and old.get("status") == "True" else None
    status["conditions"] = [*(c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"),
                            {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
                             "lastTransitionTime": since or now, "reason": "EvictionByEvictionAPI",
                             "message": "Eviction API: evicting"}]
    return new


def check_preconditions(pod: dict[str, Any], options: DeleteOptions) -> None:
    """409 when the pod is not the one the delete options name (uid, resourceVersion)."""
    md = pod.get("metadata") or {}
    for key, shown, wanted in (("uid", "UID", options.precondition_uid),
                               ("resourceVersion", "ResourceVersion", options.precondition_rv)):
        if wanted and wanted != md.get(key):
            raise st.conflict("pods", md.get("name", ""), f"Precondition failed: {shown} in precondition: "
                              f"{wanted}, {shown} in object meta: {md.get(key)}")


def delete_options(options: dict[str, Any], dry_run: bool) -> DeleteOptions:
    """The registry's DeleteOptions of an Eviction's deleteOptions."""
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise st.bad_request("deleteOptions.gracePeriodSeconds must be an integer")
    pre = options.get("preconditions") or {}
    if not isinstance(pre, dict):
        raise st.bad_request("deleteOptions.preconditions must be an object")
    policy, orphan = propagation.parse({}, options)
    return DeleteOptions(grace, pre.get("uid"), pre.get("resourceVersion"),
                         dry_run or options.get("dryRun") == ["All"], policy, orphan)


class Evictions:
    def __init__(self, registry: Registry, clock: Callable[[], float] = time.time):
        self.registry = registry
        self.clock = clock

    def evict(self, namespace: str, name: str, options: DeleteOptions) -> tuple[dict[str, Any], int]:
        """Evicts pod namespace/name: (the Status to answer, its HTTP code); raises ApiError."""
        pod = self.registry.get(PODS, namespace, name)
        if disrupts_nothing(pod):
            self._mark_and_delete(pod, options)
            return success(), 201
        budgets = [p for p in self.registry.list(POD_DISRUPTION_BUDGETS, namespace)["items"] if covers(p, pod)]
        if len(budgets) > 1:
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": MORE_THAN_ONE_BUDGET, "code": 500}, 500
        if budgets:
            pdb = budgets[0]
            if not is_ready(pod) and self._unhealthy_may_go(pdb):
                return self._delete_unchanged(pod, pdb, options)
            self._spend(pdb, name, options.dry_run)
        self._mark_and_delete(pod, options)
        return success(), 201

    @staticmethod
    def _unhealthy_may_go(pdb: dict[str, Any]) -> bool:
        """A not-ready pod leaves without spending the budget: AlwaysAllow, or while the
        budget is met (it counts no unhealthy pod)."""
        if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return True
        status = pdb.get("status") or {}
        desired = int(status.get("desiredHealthy") or 0)
        return desired > 0 and int(status.get("currentHealthy") or 0) >= desired

    def _delete_unchanged(self, pod: dict[str, Any], pdb: dict[str, Any],
                          options: DeleteOptions) -> tuple[dict[str, Any], int]:
        """Deletes the pod only if it is still the version read (not become ready meanwhile)."""
        conditional = options if options.precondition_rv else dataclasses.replace(
            options, precondition_rv=pod["metadata"].get("resourceVersion"))
        try:
            self._mark_and_delete(pod, conditional)
        except st.ApiError as exc:
            if exc.code == 409 and not options.precondition_rv:
                raise still_processing(pdb) from None
            raise
        return success(), 201

    def _mark_and_delete(self, pod: dict[str, Any], options: DeleteOptions) -> None:
        """Deletes the pod with its DisruptionTarget condition set first (addConditionAndDeletePod):
        the marking is conditional on the version read and the options' preconditions; without
        a resourceVersion precondition a conflict re-reads the pod, with one it is a 409."""
        md = pod["metadata"]
        namespace, name = md["namespace"], md["name"]
        for _ in range(RACE_RETRIES):
            if options.dry_run:
                break
            check_preconditions(pod, options)
            try:
                marked = self.registry.update(PODS, namespace, name, disruption_target(pod, rfc3339(self.clock())),
                                              "status")[0]
            except st.ApiError as exc:
                if exc.code != 409 or options.precondition_rv:
                    raise
                pod = self.registry.get(PODS, namespace, name)
                continue
            if options.precondition_rv:  # our own write moved it on
                options = dataclasses.replace(options, precondition_rv=marked["metadata"]["resourceVersion"])
            break
        self.registry.delete(PODS, namespace, name, options)

    def _spend(self, pdb: dict[str, Any], pod_name: str, dry_run: bool) -> None:
        """Takes one disruption from the budget with a write conditional on the version read;
        on a conflict the budget is read again and checked again."""
        md = pdb["metadata"]
        for _ in range(RACE_RETRIES):
            new = spend(pdb, pod_name, rfc3339(self.clock()))
            if dry_run:
                return
            try:
                self.registry.update(POD_DISRUPTION_BUDGETS, md["namespace"], md["name"], new, "status")
                return
            except st.ApiError as exc:
                if exc.code != 409:
                    raise
            pdb = self.registry.get(POD_DISRUPTION_BUDGETS, md["namespace"], md["name"])
        raise st.ApiError(st.status(504, "Timeout", f'couldn\'t update PodDisruptionBudget "{md["name"]}" due to '
                                    "conflicts", retry_after=10))
