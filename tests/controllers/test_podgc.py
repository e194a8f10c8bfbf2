"""PodGC: the pure sweep, and the controller against the real apiserver deleting pods of nodes
that are gone and finished pods over the threshold (small threshold and quarantine here)."""
from __future__ import annotations

import pytest

from kproxy.api.resources import NODES, PODS
from kproxy.controllers.podgc import PodGCOptions, sweep
from tests.controllers.conftest import make_node, make_pod


def _pod(name, *, node=None, phase="Running", created="2026-01-01T00:00:00Z", deleting=False):
    md = {"name": name, "namespace": "default", "creationTimestamp": created}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T01:00:00Z"
    return {"metadata": md, "spec": {"nodeName": node} if node else {}, "status": {"phase": phase}}


def test_sweep():
    pods = [_pod("done-new", node="n1", phase="Succeeded", created="2026-01-01T00:03:00Z"),
            _pod("done-old", node="n1", phase="Failed", created="2026-01-01T00:01:00Z"),
            _pod("done-mid", node="n1", phase="Succeeded", created="2026-01-01T00:02:00Z"),
            _pod("running", node="n1"), _pod("on-ghost", node="ghost"), _pod("pending"),
            _pod("unscheduled-deleting", deleting=True), _pod("scheduled-deleting", node="n1", deleting=True)]
    out = sweep(pods, {"n1"}, threshold=1)
    names = lambda pods: [p["metadata"]["name"] for p in pods]  # noqa: E731
    assert names(out.terminated) == ["done-old", "done-mid"]
    assert names(out.orphaned) == ["on-ghost"] and names(out.unscheduled_terminating) == ["unscheduled-deleting"]
    assert sweep(pods, {"n1"}, threshold=0).terminated == [] and sweep(pods, {"n1"}, threshold=3).terminated == []


@pytest.fixture
def controller_options():
    return {"pod_gc": PodGCOptions(terminated_threshold=2, quarantine=0.5, period=0.5)}


def _names(client):
    return sorted(p["metadata"]["name"] for p in client.list(PODS, "default")["items"])


def test_pods_of_gone_nodes_and_finished_pods_over_the_threshold_are_deleted(env):
    c = env.client
    make_node(c, "n1")
    make_pod(c, "live", "10.244.1.1", node="n1")
    make_pod(c, "ghost", "10.244.1.2", node="gone")
    for i in range(4):
        pod = make_pod(c, f"done{i}", None, node="n1")
        c.update_status(PODS, {**pod, "status": {"phase": "Succeeded"}})
    c.wait_for(lambda c: _names(c) == ["done2", "done3", "live"], timeout=30)

    c.delete(NODES, "n1")
    c.wait_for(lambda c: _names(c) == [], timeout=30)
