"""Container resource limits end to end: the kubelet puts a container with limits into a
cgroup of its own (memory and CPU quota as written in the pod), the kernel's OOM killer ends
one that exceeds its memory and the status says OOMKilled, and nothing is left at exit."""
from __future__ import annotations

import os

import pytest

from kproxy.api.resources import PODS
from kproxy.client.sync import Client
from kproxy.kubelet.cgroups import Cgroups
from tests.kubelet.test_kubelet_e2e import _wait, cluster  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _cgroup_lines(text: str) -> dict[str, str]:
    """controller -> path from a /proc/<pid>/cgroup the container printed."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0].isdigit():
            for c in parts[1].split(",") if parts[1] else [""]:
                out[c] = parts[2]
    return out


def test_limits_in_cgroups_and_oom_killed(cluster, tmp_path):  # noqa: F811
    _, node, client = cluster
    probe, why = Cgroups.detect(str(tmp_path / "probe"))
    if probe is None:
        pytest.skip(f"no usable cgroups here: {why}")
    probe.remove_all()
    client.create(PODS, {"metadata": {"name": "limited"}, "spec": {"nodeName": "n1", "containers": [{
        "name": "c", "image": "kproxy.local/base", "command": ["sh", "-c", "cat /proc/self/cgroup; sleep 3600"],
        "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}]}}, "default")
    client.create(PODS, {"metadata": {"name": "hog"}, "spec": {"nodeName": "n1", "restartPolicy": "Never",
                                                              "containers": [{
        "name": "c", "image": "kproxy.local/base",
        "command": ["python3", "-c", "b = bytearray(400 * 1024 * 1024); print('survived', len(b))"],
        "resources": {"limits": {"memory": "32Mi"}}}]}}, "default")

    def terminated(c: Client):
        pod = c.get(PODS, "hog", "default")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return statuses and statuses[0]["state"].get("terminated")
    term = _wait(client, terminated, "hog terminated", node)
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137, term

    log_path = None

    def cgroup_printed(c: Client):
        nonlocal log_path
        pod = c.get(PODS, "limited", "default")
        log_path = node.root / "pods" / pod["metadata"]["uid"] / "c.log"
        return _cgroup_lines(log_path.read_text()) if log_path.exists() else None
    groups = _wait(client, cgroup_printed, "limited prints its cgroups", node)
    if probe.version == 2:
        base = "/sys/fs/cgroup" + groups[""]
        assert open(f"{base}/memory.max").read().strip() == str(64 << 20)
        assert open(f"{base}/cpu.max").read().split() == ["25000", "100000"]
    else:
        memory = "/sys/fs/cgroup/memory" + groups["memory"]
        cpu = "/sys/fs/cgroup/cpu" + groups["cpu"]
        assert open(f"{memory}/memory.limit_in_bytes").read().strip() == str(64 << 20)
        assert open(f"{cpu}/cpu.cfs_quota_us").read().strip() == "25000"
        assert open(f"{cpu}/cpu.cfs_period_us").read().strip() == "100000"
        base = memory
    kubelet_base = os.path.dirname(os.path.dirname(base))
    assert os.path.basename(kubelet_base).startswith("kproxy-kubelet-")
    node.stop()
    assert not os.path.exists(kubelet_base)
