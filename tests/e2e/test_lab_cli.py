"""`kproxy lab demo | status | down` as a user runs them: separate processes that find the lab
through its state file; the demo's kubectl steps run, its requests are spread over the
Deployment's three pods and none fails during scale and rollout restart; down removes every
namespace and process, and a second down is harmless."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from kproxy.lab import netsetup, topology
from kproxy.lab.lab import Lab, LabError
from tests import nsutil

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def kproxy(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kproxy", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def lab_name(tmp_path):
    name = nsutil.unique_name("cli")
    base = str(tmp_path)
    try:
        yield name, base
    finally:
        try:
            Lab.load(name, base_dir=base).down()
        except LabError:
            Lab(name, base_dir=base).down()


def _pids(lab_dir: str) -> list[int]:
    import json

    with open(os.path.join(lab_dir, "state.json")) as f:
        state = json.load(f)
    return [state["apiserver"]["pid"], *(a["pid"] for a in state["agents"].values()),
            *(k["pid"] for k in state["kubelets"].values())]


def test_demo_status_down(lab_name):
    name, base = lab_name
    demo = kproxy("lab", "demo", "--name", name, "--base-dir", base, "--requests", "60")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    for command in ("create deployment web --image=kproxy.local/echo --replicas=3",
                    "expose deployment web --port 80 --target-port 8080",
                    "scale deployment web --replicas=5", "rollout restart deployment web"):
        assert f"$ kubectl {command}" in demo.stdout, demo.stdout
    first_table = demo.stdout.split(" requests from namespace ", 1)[1].split("\n\n", 1)[0]
    counts = dict(re.findall(r"^\s+(web-\S+)\s+(\d+)\s", first_table, re.M))
    assert len(counts) == 3 and sum(int(n) for n in counts.values()) == 60, demo.stdout
    assert re.search(r"^  failed requests: 0$", demo.stdout, re.M), demo.stdout
    assert "iptables-save" in demo.stdout and "kproxy lab down" in demo.stdout

    status = kproxy("lab", "status", "--name", name, "--base-dir", base)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "default/web" in status.stdout and "DEAD" not in status.stdout and "MISSING" not in status.stdout
    assert "kubelet node1: pid" in status.stdout and "kubelet node2: pid" in status.stdout
    # (an old pod of the rollout may still be in its preStop sleep: "ready terminating")
    assert len(re.findall(r"^  default/web-\S+ +node[12] .* Running +ready +restarts", status.stdout, re.M)) == 5, \
        status.stdout

    # kubectl logs and exec reach the pods through the apiserver and the nodes' kubelets
    pod = re.search(r"^  default/(web-\S+) ", status.stdout, re.M).group(1)
    env = {**os.environ, "KUBECONFIG": Lab.load(name, base_dir=base).kubeconfig}
    exec_ = subprocess.run(["kubectl", "exec", pod, "--", "sh", "-c", "echo in $POD_NAME$HOSTNAME; exit 3"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert exec_.returncode == 3 and exec_.stdout.startswith("in "), exec_
    logs = subprocess.run(["kubectl", "logs", pod, "--tail", "5"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert logs.returncode == 0 and logs.stderr == "", logs

    again = kproxy("lab", "up", "--name", name, "--base-dir", base)
    assert again.returncode == 1 and "already up" in again.stderr and len(again.stderr.splitlines()) == 1

    pids = _pids(os.path.join(base, name))
    down = kproxy("lab", "down", "--name", name, "--base-dir", base)
    assert down.returncode == 0, down.stderr
    plan = topology.plan_lab(name, 2)
    assert netsetup.lab_namespaces(plan, netsetup.list_namespaces()) == []
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"

    second = kproxy("lab", "down", "--name", name, "--base-dir", base)
    assert second.returncode == 0 and "nothing was there" in second.stdout
    missing = kproxy("lab", "status", "--name", name, "--base-dir", base)
    assert missing.returncode == 1 and "is not up" in missing.stderr
