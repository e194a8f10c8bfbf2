"""Server-side printing (pure): Table rows for the kinds kubectl shows."""
from __future__ import annotations

import pytest

from kproxy.api import resources as R
from kproxy.apiserver.objects import rfc3339
from kproxy.apiserver.tables import TableRenderer, human_duration

NOW = 1_700_000_000.0


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (30 * 3600, "30h"),
    (3 * 86400, "3d"), (400 * 86400, "400d"), (3 * 365 * 86400, "3y"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text



def test_service_and_pod_rows():
    r = TableRenderer(clock=lambda: NOW)
    svc = {"kind": "Service", "metadata": {"name": "web", "creationTimestamp": rfc3339(NOW - 30)},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}
    table = r.render(R.SERVICES, {"kind": "ServiceList", "metadata": {"resourceVersion": "7"}, "items": [svc]})
    assert table["kind"] == "Table" and table["metadata"]["resourceVersion"] == "7"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)"]
    assert table["rows"][0]["cells"] == ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP", "30s", "app=web"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    pod = {"kind": "Pod", "metadata": {"name": "p", "creationTimestamp": rfc3339(NOW), "deletionTimestamp": "x"},
           "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
           "status": {"phase": "Running", "podIP": "10.244.1.2",
                      "containerStatuses": [{"ready": True, "restartCount": 2}]}}
    row = r.render(R.PODS, pod, with_columns=False)
    assert row["columnDefinitions"] == []
    assert row["rows"][0]["cells"][:5] == ["p", "1/1", "Terminating", 2, "0s"]


def test_status_objects_pass_through():
    status = {"kind": "Status", "status": "Failure"}
    assert TableRenderer().render(R.PODS, status) is status
