"""A dual-stack kubelet for real: `--pod-cidr` with one CIDR per family gives each pod an IPv4
and an IPv6 address inside its own namespace, reported as podIPs (primary first) and reachable
from the node over both families; the Node carries both podCIDRs and InternalIPs, and the
controllers put the pod into the IPv4 and IPv6 slices of a dual-stack Service."""
from __future__ import annotations

import socket

import pytest

from kproxy.api.resources import ENDPOINT_SLICES, NODES, PODS, SERVICES
from kproxy.client.sync import Client
from kproxy.kubelet.podnet import parse_pod_cidrs
from kproxy.netns import NetNS
from tests import nsutil
from tests.apiserver.fixtures import start_apiserver
from tests.kubelet.test_kubelet_e2e import NODE_IP, KubeletNode, _running_ready, _wait

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODE_IP6 = "fd00:10:200::11"
POD_CIDRS = "10.244.1.0/24,fd00:10:244:1::/64"


class DualStackNode(KubeletNode):
    def start_kubelet(self) -> None:
        if self.proc is None and not self.extra_args:
            nsutil.run(["ip", "-n", self.netns, "addr", "add", f"{NODE_IP6}/64", "dev", "eth0", "nodad"])
            self.extra_args = ["--pod-cidr", POD_CIDRS]  # the last --pod-cidr wins
        super().start_kubelet()


@pytest.fixture
def cluster(tmp_path):
    server = start_apiserver(tmp_path, ["--service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112"])
    node = DualStackNode(tmp_path, server)
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        node.start()
        yield node, client
    finally:
        client.close()
        node.cleanup()
        server.stop()


def ask(netns: str, ip: str, port: int) -> str:
    def connect() -> str:
        try:
            with socket.create_connection((ip, port), timeout=5) as s:
                s.sendall(b"hi\n")
                return s.recv(200).decode()
        except OSError as exc:
            return f"error: {exc}"
    ns = NetNS(netns)
    try:
        return ns.run(connect)
    finally:
        ns.close()


@pytest.mark.parametrize("text,ok", [
    ("10.244.1.0/24", True), ("fd00:10:244:1::/64", True), (POD_CIDRS, True),
    ("fd00:10:244:1::/64,10.244.1.0/24", True),
    ("10.244.1.0/24,10.244.2.0/24", False), ("10.244.1.0/30", False),
    ("fd00::/64,10.244.1.0/28", True),  # the smaller CIDR bounds the slots
    ("10.244.1.0/24,fd00::/64,10.1.0.0/16", False), ("bogus", False),
])
def test_pod_cidr_flag(text, ok):
    if ok:
        assert parse_pod_cidrs(text) == text.split(",")
    else:
        with pytest.raises(ValueError):
            parse_pod_cidrs(text)


def test_pod_gets_both_families_in_its_namespace(cluster):
    node, client = cluster
    n1 = _wait(client, lambda c: c.get_or_none(NODES, "n1"), "node registered", node)
    assert n1["spec"]["podCIDRs"] == POD_CIDRS.split(",") and n1["spec"]["podCIDR"] == "10.244.1.0/24"
    internal = [a["address"] for a in n1["status"]["addresses"] if a["type"] == "InternalIP"]
    assert internal == [NODE_IP, NODE_IP6]

    client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ipFamilyPolicy": "RequireDualStack",
        "ports": [{"port": 80, "targetPort": 8080}]}}, "default")
    client.create(PODS, {"metadata": {"name": "web-1", "labels": {"app": "web"}}, "spec": {
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "echo", "image": "kproxy.local/echo:1", "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}, "default")
    pod = _wait(client, lambda c: _running_ready(c, "web-1"), "web-1 Running and Ready", node)
    ips = [p["ip"] for p in pod["status"]["podIPs"]]
    assert len(ips) == 2 and pod["status"]["podIP"] == ips[0]
    v4, v6 = ips
    assert v4.startswith("10.244.1.") and v6.startswith("fd00:10:244:1::")
    assert v4.rsplit(".", 1)[1] == v6.rsplit(":", 1)[1]  # the same slot in both CIDRs

    pod_ns = next(n for n in node.pod_namespaces() if n.endswith("default-web-1"))
    addrs = nsutil.run(["ip", "-n", pod_ns, "-o", "addr", "show", "dev", "eth0"]).stdout
    assert f"{v4}/32" in addrs and f"{v6}/128" in addrs
    # real packets from the node over both families, answered by the pod with the source it saw
    for ip, source in ((v4, NODE_IP), (v6, NODE_IP6)):
        answer = _wait(client, lambda c: (lambda a: a if a.startswith("web-1 ") else None)(ask(node.netns, ip, 8080)),
                       f"echo over {ip}", node)
        assert answer.split()[1].rsplit(":", 1)[0] == source, answer

    def slices(c):
        got = {s["addressType"]: [a for e in s.get("endpoints") or [] for a in e["addresses"]]
               for s in c.list(ENDPOINT_SLICES, "default", label_selector="kubernetes.io/service-name=web")["items"]}
        return got if got == {"IPv4": [v4], "IPv6": [v6]} else None
    _wait(client, slices, "IPv4 and IPv6 slices", node)
