"""The pure parts of PodDisruptionBudgets: the disruption controller's numbers
(kproxy.controllers.disruption), the DisruptionAllowed condition and the eviction API's
spend step (kproxy.apiserver.eviction)."""
from __future__ import annotations

import pytest

from kproxy.api import status as st
from kproxy.api.disruptionbudget import with_disruption_allowed
from kproxy.apiserver.eviction import covers, disruption_target, disrupts_nothing, spend
from kproxy.controllers.disruption import (
    budget_status, expected_and_desired, scaled_value, selected_pods, still_disrupted,
)

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
STAMP = "2026-01-01T00:00:00Z"


def pod(name, *, ready=True, owner="rs-uid", labels=None, deleting=False):
    md = {"name": name, "namespace": "default", "labels": {"app": "web"} if labels is None else labels}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": owner,
                                  "controller": True}]
    if deleting:
        md["deletionTimestamp"] = STAMP
    return {"metadata": md, "status": {"phase": "Running",
                                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(generation=1, status=None, **spec):
    return {"metadata": {"name": "web", "namespace": "default", "generation": generation},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}, "status": status or {}}


@pytest.mark.parametrize("value,total,want", [(2, 10, 2), ("25%", 10, 3), ("0%", 7, 0), ("100%", 3, 3),
                                              ("50%", 3, 2), ("34%", 3, 2)])
def test_scaled_value_rounds_percents_up(value, total, want):
    assert scaled_value(value, total) == want


def test_expected_and_desired_by_kind_of_budget():
    pods = [pod("a"), pod("b"), pod("c", owner="other-rs")]
    scales = {"rs-uid": ("deploy-uid", 4), "other-rs": ("deploy-uid", 4)}  # two RSs of one Deployment
    assert expected_and_desired(pdb(maxUnavailable=1), pods, scales) == (4, 3)
    assert expected_and_desired(pdb(maxUnavailable="50%"), pods, scales) == (4, 2)
    assert expected_and_desired(pdb(minAvailable="50%"), pods, scales) == (4, 2)
    assert expected_and_desired(pdb(minAvailable=2), pods, {}) == (3, 2)  # counts pods, needs no scale
    assert expected_and_desired(pdb(), pods, {}) == (0, 0)
    # unmanaged pods are left out of the scale
    assert expected_and_desired(pdb(maxUnavailable=1), [*pods, pod("loose", owner=None)], scales) == (4, 3)


def test_budget_status_numbers_and_condition():
    pods = [pod("a"), pod("b"), pod("c", ready=False), pod("d", deleting=True)]
    status, recheck = budget_status(pdb(generation=3, maxUnavailable=1), pods, {"rs-uid": ("d", 3)}, T0, STAMP)
    assert {k: status[k] for k in ("expectedPods", "desiredHealthy", "currentHealthy", "disruptionsAllowed",
                                   "observedGeneration")} == \
        {"expectedPods": 3, "desiredHealthy": 2, "currentHealthy": 2, "disruptionsAllowed": 0, "observedGeneration": 3}
    assert status["conditions"] == [{"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                                     "message": "", "observedGeneration": 3, "lastTransitionTime": STAMP}]
    assert recheck is None
    healthy = [pod("a"), pod("b"), pod("c")]
    status, _ = budget_status(pdb(maxUnavailable=1, status=status), healthy, {"rs-uid": ("d", 3)}, T0 + 5,
                              "2026-01-01T00:00:05Z")
    assert status["disruptionsAllowed"] == 1
    assert [(c["status"], c["reason"], c["lastTransitionTime"]) for c in status["conditions"]] == \
        [("True", "SufficientPods", "2026-01-01T00:00:05Z")]
    # no expected pods: nothing may be disrupted, whatever is healthy
    assert budget_status(pdb(minAvailable=0), [], {}, T0, STAMP)[0]["disruptionsAllowed"] == 0


def test_a_missing_controller_fails_safe():
    before = {"disruptionsAllowed": 2, "currentHealthy": 3, "observedGeneration": 1}
    status, _ = budget_status(pdb(maxUnavailable=1, status=before), [pod("a")], {"rs-uid": None}, T0, STAMP)
    assert status["disruptionsAllowed"] == 0 and status["currentHealthy"] == 3
    cond = status["conditions"][0]
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "SyncFailed",
                                                                 'found no controllers for pod "a"')


def test_disrupted_pods_stay_unhealthy_until_the_deletion_timeout():
    budget = pdb(maxUnavailable=1, status={"disruptedPods": {"a": STAMP, "gone": STAMP, "b": STAMP}})
    pods = [pod("a"), pod("b", deleting=True), pod("c")]
    kept, recheck = still_disrupted(budget, pods, T0 + 60)
    assert kept == {"a": STAMP} and recheck == T0 + 120
    assert still_disrupted(budget, pods, T0 + 121) == ({}, None)
    status, _ = budget_status(budget, pods, {"rs-uid": ("d", 3)}, T0 + 60, STAMP)
    assert (status["currentHealthy"], status["disruptedPods"]) == (1, {"a": STAMP})


def test_selectors_of_a_budget():
    pods = [pod("a"), pod("b", labels={"app": "db"})]
    assert [p["metadata"]["name"] for p in selected_pods(pdb(), pods)] == ["a"]
    assert len(selected_pods({"spec": {"selector": {}}}, pods)) == 2  # empty: every pod
    assert selected_pods({"spec": {}}, pods) == []  # none: no pod
    # the eviction API never lets an empty selector cover a pod
    assert covers(pdb(), pods[0]) and not covers({"spec": {"selector": {}}}, pods[0])
    assert not disrupts_nothing(pods[0]) and disrupts_nothing(pod("x", deleting=True))


def test_spend_takes_one_disruption_or_refuses():
    budget = pdb(status={"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "observedGeneration": 1})
    spent = spend(budget, "a", STAMP)
    assert spent["status"]["disruptionsAllowed"] == 0 and spent["status"]["disruptedPods"] == {"a": STAMP}
    assert spent["status"]["conditions"][0]["reason"] == "InsufficientPods"
    assert budget["status"]["disruptionsAllowed"] == 1  # the input is left alone
    with pytest.raises(st.ApiError) as refused:
        spend(spent, "b", STAMP)
    assert refused.value.code == 429
    with pytest.raises(st.ApiError) as stale:
        spend(pdb(generation=2, status=budget["status"]), "b", STAMP)
    assert stale.value.code == 429 and stale.value.status["details"]["retryAfterSeconds"] == 10
    with pytest.raises(st.ApiError) as negative:
        spend(pdb(status={"disruptionsAllowed": -1, "observedGeneration": 1}), "b", STAMP)
    assert negative.value.code == 403


def test_condition_keeps_its_transition_time_while_unchanged():
    first = with_disruption_allowed({"disruptionsAllowed": 1}, "t1")
    again = with_disruption_allowed({**first, "disruptionsAllowed": 2}, "t2")
    assert again["conditions"][0]["lastTransitionTime"] == "t1"
    flipped = with_disruption_allowed({**again, "disruptionsAllowed": 0}, "t3")
    assert [(c["status"], c["lastTransitionTime"]) for c in flipped["conditions"]] == [("False", "t3")]


def test_disruption_target_is_set_once():
    marked = disruption_target(pod("a"), "t1")
    assert [c["type"] for c in marked["status"]["conditions"]] == ["Ready", "DisruptionTarget"]
    again = disruption_target(marked, "t2")
    assert again == marked and pod("a")["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
