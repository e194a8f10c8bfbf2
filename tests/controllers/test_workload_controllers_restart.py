"""`kproxy controllers` killed with SIGKILL in the middle of a rolling update: the next one
goes on from the API objects alone, creates no extra pod and the rollout completes."""
from __future__ import annotations

import copy
import random
import socket
import subprocess
import sys
import threading

from kproxy.api.resources import DEPLOYMENTS, PODS, REPLICA_SETS
from kproxy.client.sync import Client
from tests.apiserver.fixtures import start_apiserver
from tests.controllers.fake_kubelet import FakeKubelet
from tests.controllers.test_deployment_controller import wait_complete
from tests.unit.workload_objects import DEPLOYMENT

REPLICAS, SURGE = 6, 1


class PodCounter(threading.Thread):
    """Follows every pod event from a resourceVersion on; `most` is the largest number of
    pods that existed at once."""

    def __init__(self, http, resource_version: str, pods: dict):
        super().__init__(daemon=True)
        self.stream = http.watch(f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={resource_version}",
                                 timeout=300)
        self.pods = dict(pods)
        self.most = len(self.pods)

    def run(self) -> None:
        try:
            for ev in self.stream.events():
                uid = ev["object"]["metadata"].get("uid")
                if ev["type"] == "DELETED":
                    self.pods.pop(uid, None)
                elif ev["type"] in ("ADDED", "MODIFIED"):
                    self.pods[uid] = ev["object"]
                self.most = max(self.most, len(self.pods))
        except (OSError, ValueError):
            pass  # closed by the test

    def close(self) -> None:
        """Ends the stream (a shutdown wakes the blocked read; closing alone would not)."""
        sock = self.stream.conn.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.join(10)
        self.stream.close()


def _controllers(kubeconfig: str, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kproxy", "controllers", "--kubeconfig", kubeconfig,
                             "--leader-elect-lease-duration", "2s"], stdout=log, stderr=subprocess.STDOUT)


def test_sigkill_mid_rollout(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    rng = random.Random(7)
    kubelet = FakeKubelet(server.kubeconfig, ready_after=lambda pod: rng.uniform(0.3, 0.8))
    procs: list[subprocess.Popen] = []
    log = open(tmp_path / "controllers.log", "wb")
    try:
        with Client.from_kubeconfig(server.kubeconfig) as c:
            procs.append(_controllers(server.kubeconfig, log))
            d = copy.deepcopy(DEPLOYMENT)
            d["spec"].update(replicas=REPLICAS, strategy={"type": "RollingUpdate",
                                                          "rollingUpdate": {"maxSurge": SURGE, "maxUnavailable": 0}})
            c.create(DEPLOYMENTS, d)
            wait_complete(c, replicas=REPLICAS)
            listed = c.list(PODS, "default")
            counter = PodCounter(server.http(), listed["metadata"]["resourceVersion"],
                                 {p["metadata"]["uid"]: p for p in listed["items"]})
            counter.start()
            c.patch(DEPLOYMENTS, "web", {"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1.26"}]}}}}, "default", "strategic")

            def new_pods(c):
                pods = [p for p in c.list(PODS, "default")["items"]
                        if p["spec"]["containers"][0]["image"] == "nginx:1.26"]
                return pods if 1 <= len(pods) < REPLICAS else None
            c.wait_for(new_pods, timeout=60)
            procs[0].kill()  # SIGKILL: no hand-over, no cleanup
            procs[0].wait(15)
            procs.append(_controllers(server.kubeconfig, log))

            d = wait_complete(c, replicas=REPLICAS, timeout=120)
            pods = c.list(PODS, "default")["items"]
            assert len(pods) == REPLICAS and all(p["spec"]["containers"][0]["image"] == "nginx:1.26" for p in pods)
            rss = c.list(REPLICA_SETS, "default")["items"]
            assert sorted(rs["spec"]["replicas"] for rs in rss) == [0, REPLICAS]
            counter.close()
            assert counter.most <= REPLICAS + SURGE  # at no moment a pod beyond the surge
            assert len(counter.pods) == REPLICAS
            assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        log.close()
        kubelet.stop()
        server.stop()
