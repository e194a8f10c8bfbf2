"""Installs run for real, without systemd: `kproxy install control-plane --root TMP` and, with
a join file from `kproxy install issue-node`, `kproxy install node --root TMP2` render the
units, and the test starts each unit's ExecStart command as it is (apiserver, kubelets,
agents) inside network namespaces it creates, each standing for a node's own namespace; root's
kubeconfig drives kubectl. A DaemonSet's pod runs on each node and its Service answers on the
ClusterIP from both nodes and on both NodePorts from a client namespace. Everything is stopped
and the namespaces deleted at the end, even after a failure."""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from kproxy.cli.main import main
from kproxy.lab.traffic import ContinuousClient, TrafficError, tcp_request
from tests import nsutil

pytestmark = [pytest.mark.e2e, pytest.mark.kubectl, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

NODE_IP, NODE2_IP, CLIENT_IP = "10.199.0.10", "10.199.0.11", "10.199.0.2"
POD_CIDR1, POD_CIDR2 = "10.244.1.0/24", "10.244.2.0/24"
MANIFESTS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: echo, image: kproxy.local/echo, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""
WAIT = 90.0


def exec_start(unit: Path) -> list[str]:
    """The unit's ExecStart as argv (the renderer never needs systemd's escapes for these)."""
    line = next(v for k, _, v in (ln.partition("=") for ln in unit.read_text().splitlines()) if k == "ExecStart")
    assert "%" not in line and "$" not in line, line
    return shlex.split(line)


def wait_for(what: str, check, timeout: float = WAIT, procs: dict | None = None):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        for name, proc in (procs or {}).items():
            assert proc.poll() is None, f"{name} exited ({proc.returncode}) while waiting for {what}"
        try:
            result = check()
            if result:
                return result
            last = result
        except (subprocess.CalledProcessError, TrafficError, OSError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last}")


@contextlib.contextmanager
def network() -> Iterator[tuple[str, str, str]]:
    """Two nodes and a client on one bridge (in a namespace of its own), each node with a
    default route and a route to the other's pod CIDR, as a real network would give them."""
    with nsutil.netns("inet") as net, nsutil.netns("inode1") as node1, nsutil.netns("inode2") as node2, \
            nsutil.netns("icl") as client:
        nsutil.run(["ip", "-n", net, "link", "add", "br0", "type", "bridge"])
        nsutil.run(["ip", "-n", net, "link", "set", "br0", "up"])
        for i, (ns, ip) in enumerate(((node1, NODE_IP), (node2, NODE2_IP), (client, CLIENT_IP))):
            nsutil.run(["ip", "-n", net, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns])
            nsutil.run(["ip", "-n", net, "link", "set", f"p{i}", "master", "br0", "up"])
            nsutil.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])
            nsutil.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        for ns, other_pods, other_ip in ((node1, POD_CIDR2, NODE2_IP), (node2, POD_CIDR1, NODE_IP)):
            # Service IPs are routed before the agent's DNAT: a node has a default route
            nsutil.run(["ip", "-n", ns, "route", "add", "default", "via", CLIENT_IP])
            nsutil.run(["ip", "-n", ns, "route", "add", other_pods, "via", other_ip])
        yield node1, node2, client


class Units:
    """The rendered units' commands, running in the node namespace; stopped in reverse order."""

    def __init__(self, root: Path, netns: str, logs: Path):
        self.root, self.netns, self.logs = root, netns, logs
        logs.mkdir(exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        argv = exec_start(self.root / "etc/systemd/system" / f"kproxy-{name}.service")
        with open(self.logs / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], stdout=log,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self, only: str | None = None) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if only in (None, name) and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the kubelet stops its pods and removes their namespaces
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def restart(self, name: str) -> None:
        """What `systemctl restart` does: stop, then the same ExecStart again."""
        self.stop(only=name)
        self.start(name)

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in self.logs.glob("*.log"))


def _install(capsys, *argv: str) -> None:
    assert main(["install", *argv]) == 0, capsys.readouterr().err


def test_control_plane_and_a_joined_node_run_pods_behind_a_service(tmp_path, capsys):
    cp_root, node2_root = tmp_path / "cp", tmp_path / "node2"
    with network() as (node1, node2, client):
        _install(capsys, "control-plane", "--root", str(cp_root), "--advertise-address", NODE_IP,
                 "--node-name", "inode1", "--node-netns", node1, "--pod-cidr", POD_CIDR1, "--mode", "iptables")
        join_file = str(tmp_path / "inode2.yaml")
        _install(capsys, "issue-node", "inode2", "--root", str(cp_root), "--node-ip", NODE2_IP,
                 "--pod-cidr", POD_CIDR2, "--out", join_file)
        _install(capsys, "node", "--root", str(node2_root), "--apiserver", f"https://{NODE_IP}:6443",
                 "--join-file", join_file, "--node-ip", NODE2_IP, "--node-netns", node2, "--mode", "iptables")
        # what systemd-sysctl applies at boot: nodes forward to their pods
        for ns, root in ((node1, cp_root), (node2, node2_root)):
            nsutil.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-p", str(root / "etc/sysctl.d/90-kproxy.conf")])
        env = {**os.environ, "KUBECONFIG": str(cp_root / "root/.kube/config")}

        def kubectl(*args: str, input: str | None = None) -> str:
            return subprocess.run(["ip", "netns", "exec", node1, "kubectl", *args], env=env, capture_output=True,
                                  text=True, check=True, timeout=60, input=input).stdout

        units1, units2 = Units(cp_root, node1, tmp_path / "logs1"), Units(node2_root, node2, tmp_path / "logs2")
        procs = lambda: {**{f"1/{k}": v for k, v in units1.procs.items()},  # noqa: E731
                         **{f"2/{k}": v for k, v in units2.procs.items()}}
        try:
            started = time.monotonic()
            units1.start("apiserver")
            wait_for("the apiserver", lambda: kubectl("get", "--raw", "/readyz") == "ok", procs=procs())
            timings = {"apiserver ready": time.monotonic() - started}
            for units in (units1, units2):
                units.start("kubelet")
                units.start("agent")
            for name in ("inode1", "inode2"):
                wait_for(f"node {name} Ready", lambda: kubectl(
                    "get", "node", name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}") == "True",
                    procs=procs())
            timings["both nodes Ready"] = time.monotonic() - started
            # one pod on each node, behind a NodePort Service
            kubectl("apply", "-f", "-", input=MANIFESTS)
            wait_for("a ready pod on each node", lambda: kubectl(
                "get", "daemonset", "web", "-o", "jsonpath={.status.numberReady}") == "2", procs=procs())
            cluster_ip = kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
            node_port = int(kubectl("get", "service", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"))
            pods = dict(line.split() for line in kubectl(
                "get", "pods", "-l", "app=web", "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{'\\n'}{end}").splitlines())
            assert sorted(pods.values()) == ["inode1", "inode2"], pods

            def answered_by(ns: str, ip: str, port: int) -> set[str]:
                return {tcp_request(ns, ip, port).split()[0] for _ in range(16)}

            # the ClusterIP from each node, the NodePort of each node from outside: both pods answer
            for ns in (node1, node2):
                wait_for(f"the ClusterIP from {ns} to reach both pods",
                         lambda: answered_by(ns, cluster_ip, 80) == set(pods), procs=procs())
            for ip in (NODE_IP, NODE2_IP):
                wait_for(f"the NodePort of {ip} to reach both pods",
                         lambda: answered_by(client, ip, node_port) == set(pods), procs=procs())
            timings["Service answering on every node"] = time.monotonic() - started
            print("install run, seconds from starting the apiserver unit: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
            # the joined node's agent programmed its own namespace's netfilter (no --netns)
            saved = subprocess.run(["ip", "netns", "exec", node2, "iptables-save", "-t", "nat"], capture_output=True,
                                   text=True, check=True).stdout
            assert "-A KUBE-SERVICES" in saved and cluster_ip in saved
            # and the operator's view of it: `kproxy rules` on the node, no flags
            kproxy = exec_start(node2_root / "etc/systemd/system/kproxy-agent.service")[0]
            shown = subprocess.run(["ip", "netns", "exec", node2, kproxy, "rules", "default/web"],
                                   capture_output=True, text=True, timeout=60)
            assert shown.returncode == 0 and cluster_ip in shown.stdout, shown
            for pod in pods:
                assert kubectl("get", "pod", pod, "-o", "jsonpath={.status.podIP}") in shown.stdout, shown.stdout
            # `systemctl restart kproxy-agent` loses no request: the rules stay while it restarts
            agent_log = tmp_path / "logs2/agent.log"
            synced_before = agent_log.read_text().count("first sync done")
            with ContinuousClient(client, NODE2_IP, node_port) as traffic:
                traffic.wait_for_more(20)
                units2.restart("agent")
                wait_for("the restarted agent's first sync",
                         lambda: agent_log.read_text().count("first sync done") > synced_before, procs=procs())
                traffic.wait_for_more(20)
            assert traffic.failures == [] and set(traffic.answers) == set(pods), (traffic.failures, traffic.answers)
        except BaseException:
            print(units1.log_tails(), units2.log_tails())
            raise
        finally:
            units2.stop()
            units1.stop()
