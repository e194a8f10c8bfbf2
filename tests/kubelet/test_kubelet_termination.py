"""A running termination is cut short as kubelet does: a pod deleted with a long grace period
(a long preStop sleep) that is then force-deleted stops at once; it does not sleep on."""
from __future__ import annotations

import os

import pytest

from kproxy.api.resources import NODES, PODS
from tests.kubelet.test_kubelet_e2e import WAIT, _running_ready, _tcp_ask, _wait, cluster  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LONG = 3600  # far longer than any wait below: only a cut-short termination ends in time


def test_force_delete_cuts_a_graceful_termination_short(cluster):  # noqa: F811
    _, node, client = cluster
    _wait(client, lambda c: c.get_or_none(NODES, "n1"), "node registered", node)
    client.create(PODS, {"metadata": {"name": "slow"}, "spec": {
        "terminationGracePeriodSeconds": LONG,
        "containers": [{"name": "echo", "image": "kproxy.local/echo",
                        "lifecycle": {"preStop": {"sleep": {"seconds": LONG}}}}]}}, "default")
    pod = _wait(client, lambda c: _running_ready(c, "slow"), "slow Running and Ready", node)
    ip, netns = pod["status"]["podIP"], f"{node.pod_prefix}default-slow"

    client.delete(PODS, "slow", "default", grace_period_seconds=LONG)
    terminating = _wait(client, lambda c: (p := c.get_or_none(PODS, "slow", "default"))
                        and p["metadata"].get("deletionTimestamp") and p, "slow terminating", node)
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == LONG
    # in its preStop sleep the container still serves
    _wait(client, lambda c: _tcp_ask(node.netns, ip, 8080).startswith("slow "), "slow serving while terminating", node)

    client.delete(PODS, "slow", "default", grace_period_seconds=0)
    _wait(client, lambda c: not os.path.exists(f"/run/netns/{netns}"), "the pod namespace removed", node, timeout=WAIT)
    assert client.get_or_none(PODS, "slow", "default") is None
