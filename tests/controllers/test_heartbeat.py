"""kproxy.client.heartbeat keeps lab nodes Ready under the node lifecycle controller; when it
stops the node goes Unknown, and when it comes back it posts Ready again."""
from __future__ import annotations

import subprocess
import sys

from kproxy.api.resources import LEASES, NODES
from kproxy.client.heartbeat import node_posted_ready
from tests.controllers.conftest import make_node


def ready_status(node):
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return cond["status"]
    return None


def start_heartbeat(kubeconfig, *nodes):
    argv = [sys.executable, "-m", "kproxy.client.heartbeat", "--kubeconfig", kubeconfig, "--interval", "0.2"]
    for n in nodes:
        argv += ["--node-name", n]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def test_heartbeat_keeps_node_ready_and_restores_it(env):
    c = env.client
    make_node(c, "kept")
    make_node(c, "silent")
    beat = start_heartbeat(env.server.kubeconfig, "kept")
    try:
        c.wait_for(lambda c: c.get_or_none(LEASES, "kept", "kube-node-lease"), timeout=20)
        c.wait_for(lambda c: ready_status(c.get(NODES, "silent")) == "Unknown", timeout=30)
        assert ready_status(c.get(NODES, "kept")) == "True"
        assert stop(beat) == 0  # SIGTERM: clean exit
        c.wait_for(lambda c: ready_status(c.get(NODES, "kept")) == "Unknown", timeout=30)
        beat = start_heartbeat(env.server.kubeconfig, "kept")
        c.wait_for(lambda c: ready_status(c.get(NODES, "kept")) == "True", timeout=30)
    finally:
        stop(beat)


def test_node_posted_ready_is_pure_and_idempotent():
    node = {"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    new = node_posted_ready(node, "2026-01-01T00:00:00Z")
    assert node["status"]["conditions"][0]["status"] == "Unknown"  # input untouched
    assert new["status"]["conditions"][0]["status"] == "True"
    assert node_posted_ready(new, "2026-01-01T00:00:01Z") is None
    bare = node_posted_ready({"metadata": {"name": "n"}}, "t")
    assert bare["status"]["conditions"][0]["type"] == "Ready"
