"""Pure logic of the node lifecycle, taint eviction and root CA controllers: which taints a
node's Ready condition calls for, when a pod on a NoExecute-tainted node must go, and when
kube-root-ca.crt is written."""
from __future__ import annotations

from kproxy.controllers.node import node_with_condition_taints
from kproxy.controllers.tainteviction import eviction_time

NOW = "2026-01-01T00:00:00Z"
T0 = 1767225600.0  # NOW in seconds


def node(ready: str | None, taints=None) -> dict:
    n: dict = {"metadata": {"name": "n1"}, "spec": {}, "status": {"conditions": []}}
    if ready is not None:
        n["status"]["conditions"].append({"type": "Ready", "status": ready})
    if taints is not None:
        n["spec"]["taints"] = taints
    return n


def test_taints_follow_the_ready_condition():
    other = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    unknown = node_with_condition_taints(node("Unknown", [other]), NOW)
    assert unknown["spec"]["taints"] == [other, {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                                         {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                                          "timeAdded": NOW}]
    assert node_with_condition_taints(unknown, "2026-01-01T00:05:00Z") is None  # kept, timeAdded too
    not_ready = node_with_condition_taints(node("False", unknown["spec"]["taints"]), NOW)
    assert [(t["key"], t["effect"]) for t in not_ready["spec"]["taints"]] == [
        ("dedicated", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "NoExecute")]
    recovered = node_with_condition_taints(node("True", not_ready["spec"]["taints"]), NOW)
    assert recovered["spec"]["taints"] == [other]
    assert node_with_condition_taints(node("True"), NOW) is None
    assert "taints" not in node_with_condition_taints(node("True", unknown["spec"]["taints"][1:]), NOW)["spec"]


def pod(*tolerations) -> dict:
    return {"spec": {"tolerations": list(tolerations)}}


UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": NOW}


def test_eviction_time_from_tolerations():
    assert eviction_time(pod(), [{"key": "x", "effect": "NoSchedule"}], T0 + 5) is None
    assert eviction_time(pod(), [UNREACHABLE], T0 + 5) == T0 + 5  # not tolerated: at once
    five = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 5}
    three = {"operator": "Exists", "tolerationSeconds": 3}
    assert eviction_time(pod(five), [UNREACHABLE], T0 + 1) == T0 + 5
    assert eviction_time(pod(five, three), [UNREACHABLE], T0 + 1) == T0 + 3  # the shortest matching one
    forever = {"key": "node.kubernetes.io/unreachable", "operator": "Exists"}
    assert eviction_time(pod(forever), [UNREACHABLE], T0 + 1000) is None
    other = {"key": "gpu", "effect": "NoExecute", "timeAdded": NOW}
    assert eviction_time(pod(forever), [UNREACHABLE, other], T0 + 1) == T0 + 1  # gpu is not tolerated


def test_root_ca_config_map_written_when_missing_or_changed():
    from kproxy.controllers.rootcacert import DESCRIPTION, desired_config_map
    new = desired_config_map("team", "PEM", None)
    assert new == {"metadata": {"name": "kube-root-ca.crt", "namespace": "team",
                                "annotations": {"kubernetes.io/description": DESCRIPTION}}, "data": {"ca.crt": "PEM"}}
    assert desired_config_map("team", "PEM", new) is None
    edited = dict(new, data={"ca.crt": "EVIL"})
    assert desired_config_map("team", "PEM", edited)["data"] == {"ca.crt": "PEM"}
