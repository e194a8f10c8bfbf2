"""kproxy.agent.policy: endpoint categorisation, checked against upstream's own table.

The cases are facts transcribed from kubernetes/kubernetes pkg/proxy/topology_test.go
(TestCategorizeEndpoints), as today's kube-proxy decides them: ProxyTerminatingEndpoints is
always on, and hints alone decide topology (the Service's topology-mode annotation is no longer
read by kube-proxy: upstream's "annotation disabled / empty, hints ignored" cases therefore now
filter, like their "auto" twins). "kproxy:" cases are ours (node hints, the PreferSameNode form
of topology.go's topologyModeFromHints).
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from kproxy.agent.policy import SAME_NODE, SAME_ZONE, categorize, local_ready_count, topology_mode
from kproxy.agent.state import Endpoint, ServicePort

NODE = "node-a"


def ep(addr: str, ready: bool = True, serving: bool | None = None, terminating: bool = False,
       local: bool = False, zones: tuple[str, ...] = (), nodes: tuple[str, ...] = ()) -> Endpoint:
    ip, port = addr.split(":")
    return Endpoint(ip, int(port), ready=ready, serving=ready if serving is None else serving,
                    terminating=terminating, node_name=NODE if local else "other", is_local=local,
                    zone_hints=tuple(sorted(zones)), node_hints=tuple(sorted(nodes)))


def svc(*endpoints: Endpoint, itp_local: bool = False, etp_local: bool = False, node_port: int = 0) -> ServicePort:
    return ServicePort("ns", "svc", "", "TCP", 80, cluster_ips=("172.30.0.1",), node_port=node_port,
                       internal_policy_local=itp_local, external_policy_local=etp_local,
                       endpoints=tuple(sorted(endpoints)))


@dataclass(frozen=True)
class Case:
    name: str
    sp: ServicePort
    zone: str
    cluster: set[str] | None  # None: the ServicePort never uses Cluster endpoints
    local: set[str] | None  # None: never uses Local endpoints
    reachable: set[str] | None = None  # None: the one of cluster/local that is set
    only_remote: bool = False  # has_any although nothing is reachable from this node


_FOUR = ("10.1.2.3:80", "zone-a"), ("10.1.2.4:80", "zone-b"), ("10.1.2.5:80", "zone-c"), ("10.1.2.6:80", "zone-a")


def _four(**overrides: dict) -> list[Endpoint]:
    return [ep(a, zones=(z,), **overrides.get(a, {})) for a, z in _FOUR]


A36 = {"10.1.2.3:80", "10.1.2.6:80"}
ALL4 = {a for a, _ in _FOUR}
UPSTREAM = "upstream: "

CASES = [
    Case(UPSTREAM + "hints, zone-a: only endpoints hinted for zone-a", svc(*_four()), "zone-a", A36, None),
    Case(UPSTREAM + "externalTrafficPolicy: Local, topology ignored for Local endpoints",
         svc(ep("10.1.2.3:80", local=True, zones=("zone-a",)), ep("10.1.2.4:80", local=True, zones=("zone-b",)),
             ep("10.1.2.5:80", zones=("zone-c",)), ep("10.1.2.6:80", zones=("zone-a",)),
             etp_local=True, node_port=8080),
         "zone-a", A36, {"10.1.2.3:80", "10.1.2.4:80"}, {"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"}),
    Case(UPSTREAM + "internalTrafficPolicy: Local, topology ignored for Local endpoints",
         svc(ep("10.1.2.3:80", local=True, zones=("zone-a",)), ep("10.1.2.4:80", local=True, zones=("zone-b",)),
             ep("10.1.2.5:80", zones=("zone-c",)), ep("10.1.2.6:80", zones=("zone-a",)),
             itp_local=True, node_port=8080),
         "zone-a", A36, {"10.1.2.3:80", "10.1.2.4:80"}, {"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"}),
    Case(UPSTREAM + "empty node labels", svc(ep("10.1.2.3:80", zones=("zone-a",))), "", {"10.1.2.3:80"}, None),
    Case(UPSTREAM + "node in different zone, no endpoint filtering", svc(ep("10.1.2.3:80", zones=("zone-a",))),
         "zone-b", {"10.1.2.3:80"}, None),
    Case(UPSTREAM + "unready endpoint", svc(*_four(**{"10.1.2.6:80": {"ready": False}})), "zone-a",
         {"10.1.2.3:80"}, None),
    Case(UPSTREAM + "only unready endpoints in same zone (should not filter)",
         svc(*_four(**{"10.1.2.3:80": {"ready": False}, "10.1.2.6:80": {"ready": False}})), "zone-a",
         {"10.1.2.4:80", "10.1.2.5:80"}, None),
    Case(UPSTREAM + "missing hints, no filtering applied",
         svc(ep("10.1.2.3:80", zones=("zone-a",)), ep("10.1.2.4:80", zones=("zone-b",)), ep("10.1.2.5:80"),
             ep("10.1.2.6:80", zones=("zone-a",))), "zone-a", ALL4, None),
    Case(UPSTREAM + "multiple hints per endpoint, filtering includes any endpoint with zone included",
         svc(ep("10.1.2.3:80", zones=("zone-a", "zone-b", "zone-c")), ep("10.1.2.4:80", zones=("zone-b", "zone-c")),
             ep("10.1.2.5:80", zones=("zone-b", "zone-d")), ep("10.1.2.6:80", zones=("zone-c",))),
         "zone-c", {"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"}, None),
    Case(UPSTREAM + "conflicting topology and localness require merging allEndpoints",
         svc(ep("10.0.0.0:80", local=True, zones=("zone-a",)), ep("10.0.0.1:80", local=True, zones=("zone-b",)),
             ep("10.0.0.2:80", zones=("zone-a",)), ep("10.0.0.3:80", zones=("zone-b",)),
             etp_local=True, node_port=8080),
         "zone-a", {"10.0.0.0:80", "10.0.0.2:80"}, {"10.0.0.0:80", "10.0.0.1:80"},
         {"10.0.0.0:80", "10.0.0.1:80", "10.0.0.2:80"}),
    Case(UPSTREAM + "internalTrafficPolicy: Local, with empty endpoints", svc(itp_local=True), "", None, set()),
    Case(UPSTREAM + "internalTrafficPolicy: Local, but all endpoints are remote",
         svc(ep("10.0.0.0:80"), ep("10.0.0.1:80"), itp_local=True), "", None, set(), only_remote=True),
    Case(UPSTREAM + "internalTrafficPolicy: Local, all endpoints are local",
         svc(ep("10.0.0.0:80", local=True), ep("10.0.0.1:80", local=True), itp_local=True), "", None,
         {"10.0.0.0:80", "10.0.0.1:80"}),
    Case(UPSTREAM + "internalTrafficPolicy: Local, some endpoints are local",
         svc(ep("10.0.0.0:80", local=True), ep("10.0.0.1:80"), itp_local=True), "", None, {"10.0.0.0:80"}),
    Case(UPSTREAM + "Cluster traffic policy, endpoints not Ready",
         svc(ep("10.0.0.0:80", ready=False), ep("10.0.0.1:80", ready=False)), "", set(), None),
    Case(UPSTREAM + "Cluster traffic policy, some endpoints are Ready",
         svc(ep("10.0.0.0:80", ready=False), ep("10.0.0.1:80")), "", {"10.0.0.1:80"}, None),
    Case(UPSTREAM + "Cluster traffic policy, all endpoints are terminating",
         svc(ep("10.0.0.0:80", False, True, True, local=True), ep("10.0.0.1:80", False, True, True)), "",
         {"10.0.0.0:80", "10.0.0.1:80"}, None),
    Case(UPSTREAM + "iTP: Local, eTP: Cluster, some endpoints local",
         svc(ep("10.0.0.0:80", local=True), ep("10.0.0.1:80"), itp_local=True, node_port=8080), "",
         {"10.0.0.0:80", "10.0.0.1:80"}, {"10.0.0.0:80"}, {"10.0.0.0:80", "10.0.0.1:80"}),
    Case(UPSTREAM + "iTP: Cluster, eTP: Local, some endpoints local",
         svc(ep("10.0.0.0:80", local=True), ep("10.0.0.1:80"), etp_local=True, node_port=8080), "",
         {"10.0.0.0:80", "10.0.0.1:80"}, {"10.0.0.0:80"}, {"10.0.0.0:80", "10.0.0.1:80"}),
    Case(UPSTREAM + "iTP: Local, eTP: Local, some endpoints local",
         svc(ep("10.0.0.0:80", local=True), ep("10.0.0.1:80"), itp_local=True, etp_local=True, node_port=8080), "",
         {"10.0.0.0:80", "10.0.0.1:80"}, {"10.0.0.0:80"}, {"10.0.0.0:80", "10.0.0.1:80"}),
    Case(UPSTREAM + "iTP: Local, eTP: Local, all endpoints remote",
         svc(ep("10.0.0.0:80"), ep("10.0.0.1:80"), itp_local=True, etp_local=True, node_port=8080), "",
         {"10.0.0.0:80", "10.0.0.1:80"}, set(), {"10.0.0.0:80", "10.0.0.1:80"}),
    Case(UPSTREAM + "iTP: Local, eTP: Local, all endpoints remote and terminating",
         svc(ep("10.0.0.0:80", False, True, True), ep("10.0.0.1:80", False, True, True),
             itp_local=True, etp_local=True, node_port=8080), "",
         {"10.0.0.0:80", "10.0.0.1:80"}, set(), {"10.0.0.0:80", "10.0.0.1:80"}, only_remote=True),
    Case(UPSTREAM + "iTP: Cluster, eTP: Local, with terminating endpoints",
         svc(ep("10.0.0.0:80"), ep("10.0.0.1:80", False, False, local=True), ep("10.0.0.2:80", False, True, True, local=True),
             ep("10.0.0.3:80", False, True, True), etp_local=True, node_port=8080), "",
         {"10.0.0.0:80"}, {"10.0.0.2:80"}, {"10.0.0.0:80", "10.0.0.2:80"}),
    Case(UPSTREAM + "externalTrafficPolicy ignored if not externally accessible",
         svc(ep("10.0.0.0:80"), ep("10.0.0.1:80", local=True), etp_local=True), "",
         {"10.0.0.0:80", "10.0.0.1:80"}, None),
    Case(UPSTREAM + "no cluster endpoints for iTP:Local internal-only service",
         svc(ep("10.0.0.0:80"), ep("10.0.0.1:80", local=True), itp_local=True), "", None, {"10.0.0.1:80"}),
    # kproxy: the other forms of topologyModeFromHints
    Case("kproxy: node hints for this node win over zone hints (PreferSameNode)",
         svc(ep("10.0.0.1:80", zones=("zone-a",), nodes=(NODE,)), ep("10.0.0.2:80", zones=("zone-a",), nodes=("n2",))),
         "zone-a", {"10.0.0.1:80"}, None),
    Case("kproxy: node hints naming other nodes only: zone hints decide",
         svc(ep("10.0.0.1:80", zones=("zone-a",), nodes=("n1",)), ep("10.0.0.2:80", zones=("zone-b",), nodes=("n2",))),
         "zone-a", {"10.0.0.1:80"}, None),
    Case("kproxy: a ready endpoint without a node hint: zone hints decide",
         svc(ep("10.0.0.1:80", zones=("zone-a",), nodes=(NODE,)), ep("10.0.0.2:80", zones=("zone-b",))),
         "zone-b", {"10.0.0.2:80"}, None),
    Case("kproxy: hints of not-ready endpoints do not count",
         svc(ep("10.0.0.1:80", zones=("zone-a",)), ep("10.0.0.2:80", ready=False)), "zone-a", {"10.0.0.1:80"}, None),
    Case("kproxy: no ready endpoint: hints ignored, terminating fallback over every zone",
         svc(ep("10.0.0.1:80", False, True, True, zones=("zone-a",)), ep("10.0.0.2:80", False, True, True, zones=("zone-b",))),
         "zone-a", {"10.0.0.1:80", "10.0.0.2:80"}, None),
    Case("kproxy: short-circuit (eTP Local) Cluster endpoints follow topology",
         svc(ep("10.0.0.1:80", zones=("zone-a",)), ep("10.0.0.2:80", local=True, zones=("zone-b",)),
             etp_local=True, node_port=30000),
         "zone-a", {"10.0.0.1:80"}, {"10.0.0.2:80"}, {"10.0.0.1:80", "10.0.0.2:80"}),
]


def _addresses(endpoints: tuple[Endpoint, ...]) -> set[str]:
    return {e.address for e in endpoints}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_categorize_matches_upstream(case: Case) -> None:
    got = categorize(case.sp, NODE, case.zone)
    assert _addresses(got.cluster) == (case.cluster or set())
    assert _addresses(got.local) == (case.local or set())
    if case.reachable is not None:
        want_all = case.reachable
    else:
        want_all = case.cluster if case.cluster is not None else (case.local or set())
    assert _addresses(got.reachable) == want_all
    assert len(got.reachable) == len(want_all)  # no endpoint twice
    assert got.has_any == (bool(want_all) or case.only_remote)
    assert got.internal == (got.local if case.sp.internal_policy_local else got.cluster)
    assert got.external == (got.local if case.sp.external_policy_local else got.cluster)
    assert list(got.reachable) == sorted(got.reachable)


def test_topology_mode_names_the_form_in_use() -> None:
    zone_hinted = (ep("10.0.0.1:80", zones=("z",)), ep("10.0.0.2:80", zones=("y",)))
    assert topology_mode(zone_hinted, NODE, "z") == SAME_ZONE
    assert topology_mode(zone_hinted, NODE, "x") == ""
    assert topology_mode(zone_hinted, NODE, "") == ""
    node_hinted = (ep("10.0.0.1:80", nodes=(NODE,)), ep("10.0.0.2:80", nodes=("n2",)))
    assert topology_mode(node_hinted, NODE, "") == SAME_NODE
    assert topology_mode(node_hinted, "n3", "") == ""
    assert topology_mode((), NODE, "z") == ""


def test_local_ready_count_leaves_out_terminating_and_remote() -> None:
    sp = svc(ep("10.0.0.1:80", local=True), ep("10.0.0.2:80", False, True, True, local=True), ep("10.0.0.3:80"))
    assert local_ready_count(sp) == 1
