"""Dual-stack Services end to end: a dual-stack lab (kproxy lab up --ip-family dual), its agents
programming both families, and the client reaching a RequireDualStack Service on its IPv4 and
IPv6 ClusterIPs and on a node's IPv4 and IPv6 address (NodePort), in every host mode that
programs IPv6."""
from __future__ import annotations

import pytest

from kproxy.lab.lab import Lab
from tests import nsutil
from tests.e2e.helpers import wait_for_pods

pytestmark = pytest.mark.e2e

IPV6_MODES = ("iptables", "nftables")  # ipvs and userspace are IPv4-only yet (issue 22)


@pytest.fixture(scope="module", params=IPV6_MODES)
def lab(request, tmp_path_factory):
    lab = Lab(nsutil.unique_name(f"ds-{request.param[:4]}"), dir=str(tmp_path_factory.mktemp("lab")))
    try:
        lab.up(nodes=2, mode=request.param, ip_family="dual", sync_period="5s", min_sync_period="0s")
        yield lab
    finally:
        lab.down()


def test_dual_stack_service_answers_on_both_families(lab):
    for name, node in (("web-1", "node1"), ("web-2", "node2")):
        lab.add_pod(name, node, {"app": "web"})
    svc = lab.create_service("web", selector={"app": "web"}, type="NodePort", ipFamilyPolicy="RequireDualStack")
    try:
        cluster_ips = svc["spec"]["clusterIPs"]
        assert len(cluster_ips) == 2 and ":" in cluster_ips[1]
        node_port = svc["spec"]["ports"][0]["nodePort"]
        client, node2 = lab.client_netns, lab.plan.node("node2")
        for ip in cluster_ips:
            wait_for_pods(client, ip, 80, {"web-1", "web-2"})
        for ip in (node2.ip, node2.ip6):
            wait_for_pods(client, ip, node_port, {"web-1", "web-2"})
    finally:
        from kproxy.api.resources import SERVICES

        lab.client.delete(SERVICES, "web", "default")
        for name in ("web-1", "web-2"):
            lab.delete_pod(name, "default")
