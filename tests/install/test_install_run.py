"""A control-plane install run for real, without systemd: `kproxy install control-plane
--root TMP` renders the units, and the test starts each unit's ExecStart command as it is
(apiserver, kubelet, agent) inside a network namespace it creates, standing for the node's own
namespace; root's kubeconfig drives kubectl there. A Deployment's pods run and its Service
answers on the ClusterIP from the node and on the NodePort from a client namespace.
Everything is stopped and the namespaces deleted at the end, even after a failure."""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from kproxy.cli.main import main
from kproxy.lab.traffic import TrafficError, tcp_request
from tests import nsutil

pytestmark = [pytest.mark.e2e, pytest.mark.kubectl, pytest.mark.slow]

NODE_IP, CLIENT_IP = "10.199.0.10", "10.199.0.2"
NODE = "inode1"
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
def node_and_client() -> Iterator[tuple[str, str]]:
    with nsutil.netns("inode") as node, nsutil.netns("icl") as client:
        nsutil.run(["ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", client])
        for ns, ip in ((node, NODE_IP), (client, CLIENT_IP)):
            nsutil.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])
            nsutil.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        # as on a real node, a default route (Service IPs are routed before the agent's DNAT)
        nsutil.run(["ip", "-n", node, "route", "add", "default", "via", CLIENT_IP])
        yield node, client


class Units:
    """The rendered units' commands, running in the node namespace; stopped in reverse order."""

    def __init__(self, root: Path, netns: str, logs: Path):
        self.root, self.netns, self.logs = root, netns, logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        argv = exec_start(self.root / "etc/systemd/system" / f"kproxy-{name}.service")
        with open(self.logs / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], stdout=log,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the kubelet stops its pods and removes their namespaces
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in self.logs.glob("*.log"))


def test_control_plane_install_runs_pods_and_serves_a_service(tmp_path, capsys):
    root = tmp_path / "root"
    with node_and_client() as (node, client):
        assert main(["install", "control-plane", "--root", str(root), "--advertise-address", NODE_IP,
                     "--node-name", NODE, "--node-netns", node, "--pod-cidr", "10.244.1.0/24",
                     "--mode", "iptables"]) == 0, capsys.readouterr().err
        # what systemd-sysctl would apply at boot: the node forwards to its pods
        nsutil.run(["ip", "netns", "exec", node, "sysctl", "-q", "-p", str(root / "etc/sysctl.d/90-kproxy.conf")])
        env = {**os.environ, "KUBECONFIG": str(root / "root/.kube/config")}

        def kubectl(*args: str) -> str:
            return subprocess.run(["ip", "netns", "exec", node, "kubectl", *args], env=env, capture_output=True,
                                  text=True, check=True, timeout=60).stdout

        units = Units(root, node, tmp_path)
        try:
            units.start("apiserver")
            wait_for("the apiserver", lambda: kubectl("get", "--raw", "/readyz") == "ok", procs=units.procs)
            units.start("kubelet")
            units.start("agent")
            wait_for(f"node {NODE} Ready", lambda: kubectl(
                "get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}") == "True",
                procs=units.procs)
            kubectl("create", "deployment", "web", "--image=kproxy.local/echo", "--replicas=2")
            kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080", "--type=NodePort")
            wait_for("2 available replicas", lambda: kubectl(
                "get", "deployment", "web", "-o", "jsonpath={.status.availableReplicas}") == "2", procs=units.procs)
            cluster_ip = kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
            node_port = int(kubectl("get", "service", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"))
            pods = set(kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}").split())
            assert len(pods) == 2

            def answered_by(ns: str, ip: str, port: int) -> set[str]:
                return {tcp_request(ns, ip, port).split()[0] for _ in range(12)}

            # ClusterIP from the node itself, NodePort from another machine: both pods answer
            wait_for("the ClusterIP to reach both pods", lambda: answered_by(node, cluster_ip, 80) == pods,
                     procs=units.procs)
            wait_for("the NodePort to reach both pods", lambda: answered_by(client, NODE_IP, node_port) == pods,
                     procs=units.procs)
            # the agent programmed the node namespace's own netfilter (no --netns): the KUBE chains are there
            saved = subprocess.run(["ip", "netns", "exec", node, "iptables-save", "-t", "nat"], capture_output=True,
                                   text=True, check=True).stdout
            assert "-A KUBE-SERVICES" in saved and cluster_ip in saved
            # and the operator's view of it, from the installed agent config
            shown = subprocess.run(["ip", "netns", "exec", node, exec_start(root / "etc/systemd/system/"
                                    "kproxy-agent.service")[0], "rules", "default/web", "--config",
                                    str(root / "etc/kproxy/agent.yaml")], capture_output=True, text=True, timeout=60)
            assert shown.returncode == 0 and cluster_ip in shown.stdout and all(
                kubectl("get", "pod", p, "-o", "jsonpath={.status.podIP}") in shown.stdout for p in pods), shown
        except BaseException:
            print(units.log_tails())
            raise
        finally:
            units.stop()
