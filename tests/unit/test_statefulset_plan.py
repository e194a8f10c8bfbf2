"""The StatefulSet controller's pure decisions (kproxy/controllers/statefulset_plan.py)."""
from __future__ import annotations

import copy

from kproxy.api.resources import STATEFUL_SETS
from kproxy.controllers.revisions import HASH_LABEL, new_revision
from kproxy.controllers.statefulset_plan import (
    next_step, ordinal_of, revision_for, stateful_pod, stateful_set_status,
)
from tests.unit.set_workload_objects import STATEFUL_SET

T0 = 1767225600.0


def _sts(replicas=3, policy="OrderedReady", partition=0, strategy="RollingUpdate"):
    sts = copy.deepcopy(STATEFUL_SET)
    sts["metadata"].update(uid="sts-uid", generation=1)
    sts["spec"].update(replicas=replicas, podManagementPolicy=policy)
    sts["spec"]["updateStrategy"] = {"type": strategy}
    if strategy == "RollingUpdate":
        sts["spec"]["updateStrategy"]["rollingUpdate"] = {"partition": partition}
    return sts


def _pod(ordinal, rev="new", ready=True, phase="Running", deleting=False):
    pod = {"metadata": {"name": f"db-{ordinal}", "uid": f"u{ordinal}", "labels": {HASH_LABEL: rev}},
           "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                      "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    return pod


def _names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_identity():
    sts = _sts()
    rev = new_revision(sts, STATEFUL_SETS, 1)
    pod = stateful_pod(sts, 4, rev)
    assert pod["metadata"]["name"] == "db-4" and pod["spec"]["hostname"] == "db-4" and pod["spec"]["subdomain"] == "db"
    assert pod["metadata"]["labels"] == {"app": "web", "statefulset.kubernetes.io/pod-name": "db-4",
                                         "apps.kubernetes.io/pod-index": "4", HASH_LABEL: rev["metadata"]["name"]}
    assert "$patch" not in pod["spec"] and pod["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert [ordinal_of(sts, {"metadata": {"name": n}}) for n in ("db-0", "db-12", "db-x", "dbx-1", "db-01")] \
        == [0, 12, None, None, None]


def test_ordered_ready_creates_one_at_a_time():
    sts = _sts()
    assert next_step(sts, [], "new", "new", T0).create == [(0, "new")]
    assert next_step(sts, [_pod(0, ready=False)], "new", "new", T0).create == []
    assert next_step(sts, [_pod(0)], "new", "new", T0).create == [(1, "new")]
    parallel = next_step(_sts(policy="Parallel"), [_pod(0, ready=False)], "new", "new", T0)
    assert parallel.create == [(1, "new"), (2, "new")]


def test_failed_pods_are_replaced_and_condemned_go_highest_first():
    step = next_step(_sts(), [_pod(0, phase="Failed"), _pod(1)], "new", "new", T0)
    assert _names(step.delete) == ["db-0"] and step.create == []
    sts = _sts(replicas=1)
    pods = [_pod(0), _pod(1), _pod(2)]
    assert _names(next_step(sts, pods, "new", "new", T0).delete) == ["db-2"]
    assert _names(next_step(sts, [_pod(0), _pod(1), _pod(2, deleting=True)], "new", "new", T0).delete) == []
    # not while a wanted pod is unhealthy
    assert _names(next_step(sts, [_pod(0, ready=False), _pod(1)], "new", "new", T0).delete) == []
    assert _names(next_step(_sts(replicas=1, policy="Parallel"), pods, "new", "new", T0).delete) == ["db-2", "db-1"]


def test_rolling_update_highest_first_down_to_partition():
    sts = _sts(partition=1)
    pods = [_pod(i, "old") for i in range(3)]
    assert _names(next_step(sts, pods, "old", "new", T0).delete) == ["db-2"]
    pods[2] = _pod(2, "new", ready=False)
    assert _names(next_step(sts, pods, "old", "new", T0).delete) == []  # waits for db-2 to be ready
    pods[2] = _pod(2, "new")
    assert _names(next_step(sts, pods, "old", "new", T0).delete) == ["db-1"]
    pods[1] = _pod(1, "new")
    assert _names(next_step(sts, pods, "old", "new", T0).delete) == []  # db-0 is below the partition
    assert revision_for(sts, 0, "old", "new") == "old" and revision_for(sts, 1, "old", "new") == "new"
    assert _names(next_step(_sts(strategy="OnDelete"), [_pod(i, "old") for i in range(3)], "old", "new", T0).delete) == []
    assert revision_for(_sts(strategy="OnDelete"), 0, "old", "new") == "new"


def test_status_completes_rollout():
    sts = _sts()
    status = stateful_set_status(sts, [_pod(0, "old"), _pod(1), _pod(2, ready=False)], "old", "new", T0, 0)
    assert (status["replicas"], status["readyReplicas"], status["currentReplicas"], status["updatedReplicas"],
            status["currentRevision"]) == (3, 2, 1, 2, "old")
    done = stateful_set_status(sts, [_pod(i) for i in range(3)], "old", "new", T0, 0)
    assert (done["currentRevision"], done["currentReplicas"]) == ("new", 3)


def test_min_ready_seconds_holds_the_next_pod():
    sts = _sts()
    sts["spec"]["minReadySeconds"] = 30
    assert next_step(sts, [_pod(0)], "new", "new", T0 + 10).create == []
    assert next_step(sts, [_pod(0)], "new", "new", T0 + 30).create == [(1, "new")]
