"""The DaemonSet controller's pure decisions (kproxy/controllers/daemonset_plan.py) and the
ControllerRevision history (kproxy/controllers/revisions.py)."""
from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy.api.resources import DAEMON_SETS
from kproxy.controllers.daemonset import DaemonSetController
from kproxy.controllers.daemonset_plan import (
    Placement, daemon_pod, daemon_set_status, failed_nodes, manage, placement, pods_by_node, rolling_update,
)
from kproxy.controllers.revisions import HASH_LABEL, find_matching, new_revision, prune, revision_hash
from tests.unit.set_workload_objects import DAEMON_SET

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
READY_AT = "2026-01-01T00:00:00Z"


def _ds(**spec):
    ds = copy.deepcopy(DAEMON_SET)
    ds["metadata"].update(uid="ds-uid", generation=2)
    ds["spec"].update(spec)
    return ds


def _node(name, labels=None, taints=None, ready="True", unschedulable=False):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def _pod(name, node, hash_="new", ready=True, phase="Running", created="2026-01-01T00:00:00Z", deleting=False):
    pod = {"metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": created,
                        "labels": {"app": "web", HASH_LABEL: hash_}},
           "spec": {"nodeName": node}, "status": {"phase": phase, "conditions": [
               {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": READY_AT}]}}
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    return pod


def test_placement_uses_selector_affinity_and_taints():
    ds = _ds()
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"role": "edge"}
    assert placement(ds, _node("a", {"role": "edge"})) == Placement(True, True)
    assert placement(ds, _node("b")) == Placement(False, False)
    ds = _ds()
    ds["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}
    assert placement(ds, _node("a", {"zone": "z1"})).should_run
    assert placement(ds, _node("b", {"zone": "z2"})) == Placement(False, False)
    plain = _ds()
    assert placement(plain, _node("t", taints=[{"key": "k", "effect": "NoSchedule"}])) == Placement(False, True)
    assert placement(plain, _node("t", taints=[{"key": "k", "effect": "NoExecute"}])) == Placement(False, False)
    # the default daemon tolerations: cordoned nodes and NoExecute not-ready taints are fine
    assert placement(plain, _node("c", unschedulable=True)) == Placement(True, True)
    assert placement(plain, _node("n", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}],
                                  ready="True")).should_run
    tolerant = _ds()
    tolerant["spec"]["template"]["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    assert placement(tolerant, _node("t", taints=[{"key": "k", "effect": "NoExecute"}])).should_run


def test_daemon_pod_is_pinned_and_tolerant():
    pod = daemon_pod(_ds(), "node7", "h1")
    assert pod["metadata"]["labels"] == {"app": "web", HASH_LABEL: "h1"}
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "ds-uid"
    assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node7"]}]}]}
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"} \
        in pod["spec"]["tolerations"]
    assert pods_by_node([{**pod, "metadata": {**pod["metadata"], "name": "x"}}]).keys() == {"node7"}


def test_manage_creates_deletes_and_waits_for_terminating():
    placements = {"a": Placement(True, True), "b": Placement(True, True), "c": Placement(False, False),
                  "d": Placement(True, True), "e": Placement(True, True)}
    by_node = pods_by_node([
        _pod("b-old", "b", created="2026-01-01T00:00:00Z"), _pod("b-dup", "b", created="2026-01-01T00:05:00Z"),
        _pod("c1", "c"), _pod("d-going", "d", deleting=True), _pod("e-failed", "e", phase="Failed"),
        _pod("gone-node", "x")])
    plan = manage(placements, by_node, "new", surging=False)
    assert plan.create_on == ["a"]  # d and e wait for their pods to be gone
    assert sorted(p["metadata"]["name"] for p in plan.delete) == ["b-dup", "c1", "e-failed", "gone-node"]
    assert failed_nodes(placements, by_node) == ["e"]
    held = manage(placements, by_node, "new", surging=False, backing_off=frozenset({"e"}))
    assert sorted(p["metadata"]["name"] for p in held.delete) == ["b-dup", "c1", "gone-node"]
    assert held.create_on == ["a"]


def _cluster(n_old, n_new, n_new_unready=0):
    pods = [_pod(f"old{i}", f"n{i}", "old") for i in range(n_old)]
    pods += [_pod(f"new{i}", f"n{n_old + i}") for i in range(n_new)]
    pods += [_pod(f"newu{i}", f"n{n_old + n_new + i}", ready=False) for i in range(n_new_unready)]
    nodes = n_old + n_new + n_new_unready
    return {f"n{i}": Placement(True, True) for i in range(nodes)}, pods_by_node(pods)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 8), st.integers(0, 8), st.integers(0, 4), st.integers(1, 5))
def test_rolling_update_never_exceeds_max_unavailable(n_old, n_new, n_unready, max_unavailable):
    placements, by_node = _cluster(n_old, n_new, n_unready)
    ds = _ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable,
                                                                        "maxSurge": 0}})
    plan = rolling_update(ds, placements, by_node, "new", T0)
    assert not plan.create_on
    assert all(p["metadata"]["labels"][HASH_LABEL] == "old" for p in plan.delete)
    # nodes left without an available pod after the step stay within the budget
    assert len(plan.delete) + n_unready <= max(max_unavailable, n_unready)
    if n_old and n_unready < max_unavailable:
        assert plan.delete  # progress whenever the budget allows


def test_rolling_update_replaces_unavailable_old_pods_at_once():
    placements = {"a": Placement(True, True), "b": Placement(True, True)}
    by_node = pods_by_node([_pod("a-old", "a", "old", ready=False), _pod("b-new", "b", ready=False)])
    ds = _ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    assert [p["metadata"]["name"] for p in rolling_update(ds, placements, by_node, "new", T0).delete] == ["a-old"]


def test_rolling_update_with_surge_starts_new_beside_old():
    placements = {f"n{i}": Placement(True, True) for i in range(3)}
    by_node = pods_by_node([_pod("o0", "n0", "old"), _pod("o1", "n1", "old"), _pod("o2", "n2", "old"),
                            _pod("s0", "n0")])
    ds = _ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    plan = rolling_update(ds, placements, by_node, "new", T0)
    assert [p["metadata"]["name"] for p in plan.delete] == ["o0"]  # its new pod is available
    assert plan.create_on == ["n1"]  # within maxSurge 1 (n0's surge is done)
    surged = manage(placements, by_node, "new", surging=True)
    assert surged.delete == [] and surged.create_on == []


def test_status_counts():
    placements = {"a": Placement(True, True), "b": Placement(True, True), "c": Placement(False, True),
                  "d": Placement(True, True)}
    by_node = pods_by_node([_pod("a", "a"), _pod("b", "b", "old", ready=False), _pod("c", "c")])
    status = daemon_set_status(_ds(), placements, by_node, "new", T0, 0)
    assert status == {"currentNumberScheduled": 2, "numberMisscheduled": 1, "desiredNumberScheduled": 3,
                      "numberReady": 1, "observedGeneration": 2, "updatedNumberScheduled": 1, "numberAvailable": 1,
                      "numberUnavailable": 2}


def test_revisions_match_templates_and_prune_unused():
    ds = _ds()
    ds["metadata"]["annotations"] = {"kubernetes.io/change-cause": "v1"}
    rev1 = new_revision(ds, DAEMON_SETS, 1)
    assert rev1["metadata"]["name"] == f"agent-{revision_hash(ds)}"
    assert rev1["metadata"]["labels"] == {"app": "web", HASH_LABEL: revision_hash(ds)}
    assert rev1["metadata"]["annotations"] == {"kubernetes.io/change-cause": "v1"}
    changed = copy.deepcopy(ds)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert revision_hash(changed) != revision_hash(ds) and revision_hash(ds, 1) != revision_hash(ds)
    rev2 = new_revision(changed, DAEMON_SETS, 2)
    assert find_matching(ds, [rev1, rev2]) is rev1 and find_matching(changed, [rev1]) is None
    revs = [{**rev1, "metadata": {**rev1["metadata"], "name": f"r{i}"}, "revision": i} for i in range(1, 6)]
    assert [r["revision"] for r in prune(revs, {"r1", "r5"}, 2)] == [2]


def test_on_delete_replaces_only_deleted_pods():
    placements = {"a": Placement(True, True), "b": Placement(True, True)}
    by_node = pods_by_node([_pod("a-old", "a", "old")])
    on_delete = _ds(updateStrategy={"type": "OnDelete"})
    plan = DaemonSetController._plan(on_delete, placements, by_node, "new", T0)
    assert plan.delete == [] and plan.create_on == ["b"]
    rolling = _ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0}})
    assert [p["metadata"]["name"] for p in DaemonSetController._plan(rolling, placements, by_node, "new", T0).delete] \
        == ["a-old"]
