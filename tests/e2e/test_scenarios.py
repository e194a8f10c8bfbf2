"""The scenario suite: what a Service proxy must do, proven with real TCP and UDP packets in the
namespace lab (client -> node -> pod), for every mode in MODES.

One lab per module (2 nodes, agents with a 5 s sync period); every test makes its own Service
and pods and removes them. Waits are bounded polls that return as soon as traffic shows the
expected state.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from kproxy.api.resources import DEPLOYMENTS, ENDPOINT_SLICES, SERVICES
from kproxy.lab import pods, traffic
from kproxy.lab.traffic import Refused, TrafficError
from tests import nsutil
from tests.e2e import helpers
from tests.e2e.conftest import NODE_GRACE_SECONDS, SYNC_PERIOD_SECONDS
from tests.e2e.helpers import ContinuousClient, sample, wait_for_error, wait_for_pods

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TCP_UDP_PORTS = [
    {"name": "tcp", "port": 80, "targetPort": 8080, "protocol": "TCP"},
    {"name": "udp", "port": 80, "targetPort": 8080, "protocol": "UDP"},
]


def cluster_ip(svc: dict) -> str:
    return svc["spec"]["clusterIP"]


def node_port(svc: dict, protocol: str = "TCP") -> int:
    for p in svc["spec"]["ports"]:
        if p.get("protocol", "TCP") == protocol and p.get("nodePort"):
            return int(p["nodePort"])
    raise AssertionError(f"service {svc['metadata']['name']} has no {protocol} nodePort: {svc['spec']['ports']}")


# -- ClusterIP basics ---------------------------------------------------------------------------


def test_clusterip_reaches_every_ready_endpoint_and_no_unready_one(lab, scratch):
    scratch.pod("a", "node1")
    scratch.pod("b", "node2")
    scratch.pod("unready", "node1", ready=False)
    svc = scratch.service(ports=TCP_UDP_PORTS)
    ready = {scratch.name("a"), scratch.name("b")}
    for proto in ("tcp", "udp"):
        wait_for_pods(lab.client_netns, cluster_ip(svc), 80, ready, proto)
        after = sample(lab.client_netns, cluster_ip(svc), 80, 60, proto)
        assert after.seen == ready and not after.failures, f"{proto}: {after}"


def test_distribution_over_three_endpoints(lab, scratch):
    for suffix, node in (("a", "node1"), ("b", "node2"), ("c", "node1")):
        scratch.pod(suffix, node)
    svc = scratch.service()
    pods = {scratch.name(s) for s in "abc"}
    wait_for_pods(lab.client_netns, cluster_ip(svc), 80, pods)
    s = sample(lab.client_netns, cluster_ip(svc), 80, 600)
    assert not s.failures, s
    # Binomial(600, 1/3): mean 200, sd 11.5; 15%..52% (90..312) is > 9 sd away.
    for pod in pods:
        share = s.pods[pod] / 600
        assert 0.15 <= share <= 0.52, f"{pod} got {share:.1%}: {s}"


def test_scaling_three_to_one_to_five_converges(lab, scratch):
    names = [scratch.pod(f"p{i}", f"node{1 + i % 2}").name for i in range(3)]
    svc = scratch.service()
    ip = cluster_ip(svc)
    wait_for_pods(lab.client_netns, ip, 80, set(names))
    for name in names[1:]:
        lab.delete_pod(name)
    wait_for_pods(lab.client_netns, ip, 80, {names[0]})
    more = [scratch.pod(f"q{i}", f"node{1 + i % 2}").name for i in range(4)]
    wait_for_pods(lab.client_netns, ip, 80, {names[0], *more}, n=50)


def test_service_without_endpoints_is_refused_not_dropped(lab, scratch):
    svc = scratch.service(ports=TCP_UDP_PORTS, selector={"app": scratch.name("nothing")})
    for proto in ("tcp", "udp"):
        wait_for_error(lab.client_netns, cluster_ip(svc), 80, Refused, proto)
        # Once programmed it stays a rejection: every further request is refused too.
        s = sample(lab.client_netns, cluster_ip(svc), 80, 10, proto)
        assert s.errors == {"Refused": 10}, f"{proto}: {s}"


def test_hairpin_pod_reaches_itself_through_its_service(lab, scratch):
    pod = scratch.pod("self", "node2")
    svc = scratch.service()
    wait_for_pods(lab.client_netns, cluster_ip(svc), 80, {pod.name})
    # the client's path proves node1 programmed the Service; the pod sends through node2
    wait_for_pods(lab.netns(pod.netns), cluster_ip(svc), 80, {pod.name})
    s = sample(lab.netns(pod.netns), cluster_ip(svc), 80, 10)
    assert s.seen == {pod.name} and not s.failures, s


def test_pod_source_ip_is_preserved_through_a_clusterip(lab, scratch):
    server = scratch.pod("server", "node2")
    near = scratch.pod("near", "node2", labels={"role": scratch.name("client")})
    far = scratch.pod("far", "node1", labels={"role": scratch.name("client")})
    svc = scratch.service()
    wait_for_pods(lab.client_netns, cluster_ip(svc), 80, {server.name})
    for client in (near, far):
        expected = client.ip
        if lab.state.mode == "userspace" and client is far:
            # The userspace proxy opens its own connection: it can connect from the client's
            # address only to endpoints on its own node (IP_TRANSPARENT); replies from another
            # node would not come back through it, so a remote endpoint sees the node's address.
            expected = lab.plan.node("node1").ip
        wait_for_pods(lab.netns(client.netns), cluster_ip(svc), 80, {server.name})  # its own node is programmed
        s = sample(lab.netns(client.netns), cluster_ip(svc), 80, 5)
        assert s.seen == {server.name} and s.client_ips == {expected}, f"from {client.name}: {s}"


def test_internal_traffic_policy_local_serves_only_local_clients(lab, scratch):
    server = scratch.pod("server", "node2")
    local = scratch.pod("local", "node2", labels={"role": scratch.name("client")})
    remote = scratch.pod("remote", "node1", labels={"role": scratch.name("client")})
    svc = scratch.service(internalTrafficPolicy="Local")
    ip = cluster_ip(svc)
    wait_for_pods(lab.netns(local.netns), ip, 80, {server.name})
    probe = helpers.probe_for(lab.state.mode)
    helpers.poll(lambda: ip in probe.rules_text(lab.plan.node("node1").netns), 60,
                 "node1 to program the Service")
    s = sample(lab.netns(remote.netns), ip, 80, 3)
    assert not s.pods and len(s.failures) == 3, s


# -- NodePort and traffic policies ------------------------------------------------------------------


def test_nodeport_from_the_client_to_each_node(lab, scratch):
    scratch.pod("a", "node1")
    scratch.pod("b", "node2")
    svc = scratch.service(type="NodePort", ports=TCP_UDP_PORTS)
    pods = {scratch.name("a"), scratch.name("b")}
    for node in lab.plan.nodes:
        for proto, protocol in (("tcp", "TCP"), ("udp", "UDP")):
            wait_for_pods(lab.client_netns, node.ip, node_port(svc, protocol), pods, proto)


def test_external_traffic_policy_local_reaches_only_local_pods(lab, scratch):
    local1 = scratch.pod("n1", "node1", labels={"app": scratch.prefix, "side": scratch.name("n1")})
    local2 = scratch.pod("n2", "node2", labels={"app": scratch.prefix, "side": scratch.name("n2")})
    svc = scratch.service(type="NodePort", externalTrafficPolicy="Local")
    port = node_port(svc)
    for node, pod in (("node1", local1), ("node2", local2)):
        s = wait_for_pods(lab.client_netns, lab.plan.node(node).ip, port, {pod.name})
        # Local policy does not masquerade: the pod sees the real client address.
        assert s.client_ips == {lab.plan.client.ip}, s
    # The ClusterIP (internal policy Cluster) still reaches both.
    wait_for_pods(lab.client_netns, cluster_ip(svc), 80, {local1.name, local2.name})
    # A node without a local endpoint does not forward to a remote one.
    one_sided = scratch.service("one", type="NodePort", externalTrafficPolicy="Local",
                                selector={"side": scratch.name("n1")})
    wait_for_pods(lab.client_netns, lab.plan.node("node1").ip, node_port(one_sided), {local1.name})
    probe = helpers.probe_for(lab.state.mode)
    node2 = lab.plan.node("node2")
    helpers.poll(lambda: cluster_ip(one_sided) in probe.rules_text(node2.netns), 60,
                 "node2 to program the one-sided Service")
    # kube-proxy drops such traffic (no local endpoint), it does not reject it.
    s = sample(lab.client_netns, node2.ip, node_port(one_sided), 3)
    assert s.errors == {"Timeout": 3}, s


def test_session_affinity_client_ip_sticks(lab, scratch):
    for suffix, node in (("a", "node1"), ("b", "node2"), ("c", "node1")):
        scratch.pod(suffix, node)
    svc = scratch.service()
    ip = cluster_ip(svc)
    wait_for_pods(lab.client_netns, ip, 80, {scratch.name(s) for s in "abc"})
    lab.client.patch(SERVICES, svc["metadata"]["name"],
                     {"spec": {"sessionAffinity": "ClientIP",
                               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}}})
    # Without affinity, 20 answers from one pod of three has probability 3 * 3^-20.
    helpers.poll(lambda: len(sample(lab.client_netns, ip, 80, 20).seen) == 1, 60,
                 "affinity to take effect")
    s = sample(lab.client_netns, ip, 80, 60)
    assert len(s.seen) == 1 and not s.failures, s
    # Switched off again: the client is spread over all three.
    lab.client.patch(SERVICES, svc["metadata"]["name"], {"spec": {"sessionAffinity": "None", "sessionAffinityConfig": None}})
    wait_for_pods(lab.client_netns, ip, 80, {scratch.name(x) for x in "abc"})


def test_session_affinity_times_out(lab, scratch):
    timeout = 3
    for suffix, node in (("a", "node1"), ("b", "node2")):
        scratch.pod(suffix, node)
    svc = scratch.service(sessionAffinity="ClientIP",
                          sessionAffinityConfig={"clientIP": {"timeoutSeconds": timeout}})
    ip = cluster_ip(svc)
    helpers.poll(lambda: helpers.request(lab.client_netns, ip, 80), 60, "the Service to answer")
    first = sample(lab.client_netns, ip, 80, 10)
    assert len(first.seen) == 1 and not first.failures, first
    stuck = next(iter(first.seen))

    def other_pod_after_idle() -> bool:
        time.sleep(timeout + 1)  # idle longer than the affinity timeout (not an assertion)
        return helpers.request(lab.client_netns, ip, 80).pod != stuck

    # After each idle period the choice is random again: another pod shows up soon.
    helpers.poll(other_pod_after_idle, 120, "the affinity to expire", interval=0)


# -- UDP and stale conntrack ----------------------------------------------------------------------


@pytest.mark.parametrize("via", ["clusterip", "nodeport"])
def test_udp_survives_server_pod_replacement(lab, scratch, via):
    old = scratch.pod("old", "node2")
    svc = scratch.service(type="NodePort", ports=[{"port": 53, "targetPort": 8080, "protocol": "UDP"}])
    if via == "clusterip":
        ip, port, source_port = cluster_ip(svc), 53, 40053
    else:
        ip, port, source_port = lab.plan.node("node1").ip, node_port(svc, "UDP"), 40063
    helpers.poll(lambda: helpers.request(lab.client_netns, ip, port, "udp", source_port=source_port).pod == old.name,
                 60, "the old pod to answer UDP from the fixed source port")
    new = lab.replace_pod(old.name, scratch.name("new"), node="node1")
    # Same 5-tuple as before: it only reaches the new pod if the agent flushed the stale entry.
    helpers.poll(lambda: helpers.request(lab.client_netns, ip, port, "udp", timeout=0.5,
                                         source_port=source_port).pod == new.name,
                 60, "the new pod to answer from the same source port")


def test_udp_unready_to_ready_with_fixed_source_port(lab, scratch):
    pod = scratch.pod("only", "node1", ready=False)
    svc = scratch.service(ports=[{"port": 53, "targetPort": 8080, "protocol": "UDP"}])
    ip, source_port = cluster_ip(svc), 40054
    wait_for_error(lab.client_netns, ip, 53, Refused, "udp")
    with pytest.raises(TrafficError):
        helpers.request(lab.client_netns, ip, 53, "udp", timeout=0.5, source_port=source_port)
    lab.set_ready(pod.name, True)
    helpers.poll(lambda: helpers.request(lab.client_netns, ip, 53, "udp", timeout=0.5,
                                         source_port=source_port).pod == pod.name,
                 60, "the now-ready pod to answer from the fixed source port")


# -- agent restarts, resync and drift ---------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
def test_agent_restart_drops_no_connection(lab, scratch, sig):
    scratch.pod("a", "node1")
    scratch.pod("b", "node2")
    svc = scratch.service()
    pods = {scratch.name("a"), scratch.name("b")}
    wait_for_pods(lab.client_netns, cluster_ip(svc), 80, pods)
    with ContinuousClient(lab.plan.client.netns, cluster_ip(svc), 80) as client:
        client.wait_for_more(20)
        lab.restart_agent("node1", sig)
        client.wait_for_more(100)
    assert client.failures == [], client.failures[:5]
    assert set(client.answers) == pods


def test_a_client_faster_than_the_proxy_connects_once_the_rules_are_in(lab, scratch):
    """A client's first SYN reaches node1 before its agent has programmed the Service: node1
    routes it as plain traffic (to the gateway, which drops it) and conntrack keeps that
    untranslated entry, so without the agent's cleanup every retransmission of the SYN misses
    the rules until the attempt gives up (~2 min). The agent of node1 is down while the Service
    is created, which makes the client the faster one in every mode."""
    from concurrent.futures import ThreadPoolExecutor

    pods = {scratch.name("a"), scratch.name("b")}
    scratch.pod("a", "node1")
    scratch.pod("b", "node2")
    lab.stop_agent("node1")
    try:
        svc = scratch.service()
        with ThreadPoolExecutor(1) as pool:
            # one connect() the kernel retries (SYN at 0, 1, 3, 7, 15, 31, 63 s), answered or not
            attempt = pool.submit(traffic.tcp_reply, lab.client_netns, cluster_ip(svc), 80, 150.0)
            time.sleep(1.5)  # its first SYN has passed node1 unprogrammed
            assert not attempt.done(), attempt.exception() if attempt.done() else ""
            lab.start_agent("node1", wait_healthy=120)
            assert attempt.result(timeout=200).pod in pods
    finally:
        if not lab.agent_alive("node1"):
            lab.start_agent("node1", wait_healthy=120)


def test_periodic_full_resync_drops_no_connection(lab, scratch):
    scratch.pod("a", "node1")
    scratch.pod("b", "node2")
    svc = scratch.service()
    wait_for_pods(lab.client_netns, cluster_ip(svc), 80, {scratch.name("a"), scratch.name("b")})
    node1 = lab.plan.node("node1").netns

    def last_updated() -> str:
        import json

        code, body = lab.healthz(node1)
        return json.loads(body)["lastUpdated"] if code == 200 else ""

    with ContinuousClient(lab.plan.client.netns, cluster_ip(svc), 80) as client:
        first = helpers.poll(last_updated, 30, "healthz lastUpdated")
        # Nothing changes in the API now, so the next sync is the periodic full one.
        helpers.poll(lambda: last_updated() not in ("", first), 4 * SYNC_PERIOD_SECONDS + 10,
                     "a periodic resync")
        client.wait_for_more(50)
    assert client.failures == [], client.failures[:5]


def test_rules_deleted_by_hand_are_restored_within_a_sync_period(lab, scratch):
    pod = scratch.pod("a", "node2")
    svc = scratch.service()
    ip = cluster_ip(svc)
    wait_for_pods(lab.client_netns, ip, 80, {pod.name})
    probe = helpers.probe_for(lab.state.mode)
    node1 = lab.plan.node("node1").netns
    probe.break_dispatch(node1)
    wait_for_pods(lab.client_netns, ip, 80, {pod.name}, timeout=SYNC_PERIOD_SECONDS + 15, n=5)
    assert ip in probe.rules_text(node1)


@pytest.mark.parametrize("label", ["service.kubernetes.io/service-proxy-name", "service.kubernetes.io/headless"])
def test_labelled_service_is_left_alone(lab, scratch, label):
    pod = scratch.pod("a", "node1")
    foreign = scratch.service("foreign", labels={label: "someone-else"})
    ours = scratch.service("ours")
    wait_for_pods(lab.client_netns, cluster_ip(ours), 80, {pod.name})
    # Both Services were known to the agents before `ours` was served.
    probe = helpers.probe_for(lab.state.mode)
    for node in lab.plan.nodes:
        rules = probe.rules_text(node.netns)
        assert cluster_ip(ours) in rules
        assert cluster_ip(foreign) not in rules
    with pytest.raises(TrafficError):
        traffic.tcp_request(lab.client_netns, cluster_ip(foreign), 80, timeout=1.0)


# -- terminating endpoints -------------------------------------------------------------------------


def _endpoint(ip: str, node: str, ready: bool, serving: bool, terminating: bool) -> dict:
    return {"addresses": [ip], "nodeName": node,
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}


def test_falls_back_to_serving_terminating_endpoints(lab, scratch):
    """A selector-less Service with a hand-written EndpointSlice, so the endpoint conditions
    are exactly what kube-proxy's fallback rule talks about."""
    a = scratch.pod("a", "node1", labels={"app": scratch.name("none")})
    b = scratch.pod("b", "node2", labels={"app": scratch.name("none")})
    svc = scratch.service(selector=None, ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
    name = svc["metadata"]["name"]
    slice_name = scratch.name("slice")

    def put_slice(endpoints: list[dict]) -> None:
        lab.apply({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        })

    try:
        # a ready, b terminating but serving: only the ready one is used.
        put_slice([_endpoint(a.ip, "node1", True, True, False), _endpoint(b.ip, "node2", False, True, True)])
        wait_for_pods(lab.client_netns, cluster_ip(svc), 80, {a.name})
        # none ready, both serving and terminating: fall back to both.
        put_slice([_endpoint(a.ip, "node1", False, True, True), _endpoint(b.ip, "node2", False, True, True)])
        wait_for_pods(lab.client_netns, cluster_ip(svc), 80, {a.name, b.name})
        # terminating and not serving: nothing to fall back to, the Service rejects.
        put_slice([_endpoint(a.ip, "node1", False, False, True), _endpoint(b.ip, "node2", False, False, True)])
        wait_for_error(lab.client_netns, cluster_ip(svc), 80, Refused)
    finally:
        with contextlib.suppress(Exception):
            lab.client.delete(ENDPOINT_SLICES, slice_name, "default")


def test_graceful_pod_deletion_keeps_serving_until_nothing_is_ready(lab, scratch):
    a = scratch.pod("a", "node1")
    b = scratch.pod("b", "node2")
    svc = scratch.service()
    ip = cluster_ip(svc)
    wait_for_pods(lab.client_netns, ip, 80, {a.name, b.name})
    if not lab.delete_pod(a.name, graceful=True):
        pytest.fail("the apiserver removed a pod at once despite a grace period (no graceful deletion)")
    wait_for_pods(lab.client_netns, ip, 80, {b.name})
    assert lab.delete_pod(b.name, graceful=True)
    # Both terminating, both still serving: the proxy falls back to them.
    wait_for_pods(lab.client_netns, ip, 80, {a.name, b.name})
    lab.finish_pod(a.name)
    wait_for_pods(lab.client_netns, ip, 80, {b.name})


# -- cleanup -----------------------------------------------------------------------------------


def test_cleanup_leaves_the_namespace_rules_as_before_the_agent(lab):
    probe = helpers.probe_for(lab.state.mode)
    with nsutil.netns("cleanup") as ns:
        probe.seed_user_rules(ns)
        before = probe.snapshot(ns)
        agent = subprocess.Popen(lab.agent_argv("node1", ns), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            helpers.poll(lambda: lab.healthz(ns)[0] == 200, 60, "the extra agent to be healthy")
            helpers.poll(lambda: probe.has_kproxy_rules(ns), 30, "kproxy rules in the namespace")
            assert probe.snapshot(ns) != before
        finally:
            agent.terminate()
            try:
                agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
            lab.release_netns(ns)
        result = subprocess.run([sys.executable, "-m", "kproxy", "cleanup", "--mode", lab.state.mode, "--netns", ns],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert probe.snapshot(ns) == before


# -- pods run by the kubelets: rollouts, scaling, restarts ---------------------------------------


def _pods_of(lab, app: str) -> dict[str, dict]:
    from kproxy.api.resources import PODS

    return {p["metadata"]["name"]: p for p in lab.client.list(PODS, "default", label_selector=f"app={app}")["items"]}


def _ready_pods(lab, app: str, count: int) -> set[str] | None:
    """The names of the app's pods once there are exactly `count`, all Ready and none terminating."""
    found = _pods_of(lab, app)
    live = {n for n, p in found.items() if not p["metadata"].get("deletionTimestamp")
            and pods.condition(p, "Ready") == "True"}
    return live if len(found) == count and len(live) == count else None


def _endpoint_ready(lab, service: str, ip: str) -> bool | None:
    """The ready condition of the Service's endpoint with address `ip` (None: no such endpoint)."""
    for sl in lab.client.list(ENDPOINT_SLICES, "default",
                              label_selector=f"kubernetes.io/service-name={service}")["items"]:
        for ep in sl.get("endpoints") or []:
            if ip in ep.get("addresses", []):
                return bool((ep.get("conditions") or {}).get("ready"))
    return None


def test_deployment_rolling_update_loses_no_request(lab, scratch):
    """maxSurge 1, maxUnavailable 0, a readiness probe and a preStop sleep: every old pod
    serves until its successor is ready and the agents have dropped it."""
    dep = scratch.deployment("web", replicas=2)
    svc = scratch.service()
    ip = cluster_ip(svc)
    first = helpers.poll(lambda: _ready_pods(lab, scratch.prefix, 2), 120, "the Deployment's pods to be Ready")
    wait_for_pods(lab.client_netns, ip, 80, first)
    with ContinuousClient(lab.plan.client.netns, ip, 80) as client:
        client.wait_for_more(20)
        restarted = {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}}}}
        lab.client.patch(DEPLOYMENTS, dep["metadata"]["name"], restarted, "default")
        helpers.poll(lambda: pods.rollout_complete(lab.client.get(DEPLOYMENTS, dep["metadata"]["name"], "default")),
                     120, "the rollout to complete")
        second = helpers.poll(lambda: _ready_pods(lab, scratch.prefix, 2), 120, "the old pods to be gone")
        client.wait_for_more(20)
    assert not second & first, (first, second)
    assert client.failures == [], f"{len(client.failures)} of {client.total} failed: {client.failures[:5]}"
    assert second <= set(client.answers), client.answers


def test_deployment_scales_to_zero_and_back(lab, scratch):
    dep = scratch.deployment("web", replicas=2)
    svc = scratch.service()
    ip, name = cluster_ip(svc), dep["metadata"]["name"]
    first = helpers.poll(lambda: _ready_pods(lab, scratch.prefix, 2), 120, "the Deployment's pods to be Ready")
    wait_for_pods(lab.client_netns, ip, 80, first)
    lab.client.patch(DEPLOYMENTS, name, {"spec": {"replicas": 0}}, "default")
    wait_for_error(lab.client_netns, ip, 80, Refused)
    helpers.poll(lambda: not _pods_of(lab, scratch.prefix), 120, "every pod to be gone")
    lab.client.patch(DEPLOYMENTS, name, {"spec": {"replicas": 2}}, "default")
    again = helpers.poll(lambda: _ready_pods(lab, scratch.prefix, 2), 120, "two new pods to be Ready")
    assert not again & first
    wait_for_pods(lab.client_netns, ip, 80, again)


def _restarted_and_rejoined(lab, scratch, pod, other, svc: dict, break_it, mend_it) -> None:
    """Breaks `pod`'s container, sees its endpoint leave, mends it, and sees the container
    restarted once and the endpoint back in the Service's traffic."""
    from kproxy.api.resources import PODS

    ip = cluster_ip(svc)
    wait_for_pods(lab.client_netns, ip, 80, {pod.name, other.name})
    before = lab.client.get(PODS, pod.name, "default")
    assert pods.restart_count(before) == 0
    break_it(before)
    helpers.poll(lambda: _endpoint_ready(lab, svc["metadata"]["name"], pod.ip) is False, 60,
                 "the broken pod's endpoint to leave", interval=0.02)
    mend_it()
    after = helpers.poll(lambda: (p := lab.client.get(PODS, pod.name, "default")) and pods.restart_count(p) >= 1
                         and pods.condition(p, "Ready") == "True" and p, 60, "the container to be restarted")
    assert pods.container_pid(after) != pods.container_pid(before)
    wait_for_pods(lab.client_netns, ip, 80, {pod.name, other.name})


# A restarted container is not Ready for this long (its readiness probe's initial delay): the
# kubelet restarts a container that dies for the first time at once, as kubelet does, so
# without it the endpoint could leave and rejoin between two looks at the EndpointSlice.
RESTART_READY_DELAY = 2


def test_a_killed_pod_process_is_restarted_and_its_endpoint_rejoins(lab, scratch):
    a = lab.add_pod(scratch.name("a"), "node1", labels={"app": scratch.prefix}, ready_delay=RESTART_READY_DELAY)
    b = scratch.pod("b", "node2")
    svc = scratch.service()

    def kill(pod_obj: dict) -> None:
        pid = pods.container_pid(pod_obj)
        assert pid, pod_obj.get("status")
        os.kill(pid, signal.SIGKILL)

    _restarted_and_rejoined(lab, scratch, a, b, svc, kill, lambda: None)


def test_a_liveness_failure_restarts_the_container(lab, scratch, tmp_path):
    alive = tmp_path / "alive"
    alive.touch()
    a = lab.add_pod(scratch.name("a"), "node1", labels={"app": scratch.prefix}, live_flag=str(alive),
                    ready_delay=RESTART_READY_DELAY)
    b = scratch.pod("b", "node2")
    svc = scratch.service()
    _restarted_and_rejoined(lab, scratch, a, b, svc, lambda _pod: alive.unlink(), alive.touch)


# -- nodes, DaemonSets, Jobs and the apiserver seen from a pod -------------------------------------


def _live_ready_pods(lab, app: str) -> dict[str, dict]:
    """The app's pods that are Ready and not terminating, by name."""
    return {n: p for n, p in _pods_of(lab, app).items()
            if not p["metadata"].get("deletionTimestamp") and pods.condition(p, "Ready") == "True"}


def _node_lost(lab, node: str) -> bool:
    """The node is NotReady (Unknown) and carries the unreachable NoExecute taint."""
    from kproxy.api.resources import NODES

    obj = lab.client.get(NODES, node)
    taints = {(t.get("key"), t.get("effect")) for t in (obj.get("spec") or {}).get("taints") or []}
    return pods.condition(obj, "Ready") != "True" and ("node.kubernetes.io/unreachable", "NoExecute") in taints


def test_a_lost_node_loses_its_pods_to_the_other_and_traffic_recovers(lab, scratch):
    """node2's kubelet and pods die (kill -9). What the design promises the client: requests
    fail only while the dead pods' endpoints are still in the agents' rules (until the Node is
    NotReady, its pods are marked not ready and the agents sync); then the Service serves from
    node1 alone, and the pods are evicted after their tolerationSeconds and replaced on node1."""
    scratch.deployment("web", replicas=2)
    svc = scratch.service()
    ip, app = cluster_ip(svc), scratch.prefix
    first = helpers.poll(lambda: len(r := _live_ready_pods(lab, app)) == 2 and r, 120, "the Deployment's pods to be Ready")
    placed = {name: p["spec"]["nodeName"] for name, p in first.items()}
    if set(placed.values()) != {"node1", "node2"}:
        pytest.fail(f"the scheduler did not spread the Deployment over both nodes: {placed}")
    doomed = {name for name, node in placed.items() if node == "node2"}
    doomed_ips = {first[name]["status"]["podIP"] for name in doomed}
    wait_for_pods(lab.client_netns, ip, 80, set(first))
    try:
        with ContinuousClient(lab.plan.client.netns, ip, 80) as client:
            client.wait_for_more(20)
            assert client.failures == [], client.failures[:5]
            lab.lose_node("node2")
            helpers.poll(lambda: _node_lost(lab, "node2"), NODE_GRACE_SECONDS + 60,
                         "node2 to be NotReady and tainted unreachable")
            helpers.poll(lambda: all(_endpoint_ready(lab, svc["metadata"]["name"], a) is not True for a in doomed_ips),
                         60, "the dead pods' endpoints to be not ready")
            survivors = set(first) - doomed
            wait_for_pods(lab.client_netns, ip, 80, survivors)
            failed_while_listed = len(client.failures)
            # evicted after tolerationSeconds, replaced on the node that is left
            replaced = helpers.poll(lambda: len(r := _live_ready_pods(lab, app)) == 2 and not set(r) & doomed and r,
                                    120, "the evicted pods to be replaced")
            assert {p["spec"]["nodeName"] for p in replaced.values()} == {"node1"}, replaced
            wait_for_pods(lab.client_netns, ip, 80, set(replaced))
            client.wait_for_more(50)
        # the dead pods really took requests while listed, and nothing failed once they were not;
        # the userspace proxy retries a refused connect on the next endpoint (as kube-proxy's
        # userspace mode did), so there a client may see no failure at all
        if lab.state.mode != "userspace":
            assert failed_while_listed > 0, "no request reached the dead pods: the node loss was not seen"
        assert len(client.failures) == failed_while_listed, client.failures[failed_while_listed:][:5]
        assert set(replaced) <= set(client.answers), client.answers
    finally:
        if not lab.kubelet_alive("node2"):
            lab.start_kubelet("node2")
        lab.wait_node_ready("node2")
    helpers.poll(lambda: not _node_lost(lab, "node2") and _untainted(lab, "node2"), 60, "node2's taints to be gone")


def _untainted(lab, node: str) -> bool:
    from kproxy.api.resources import NODES

    return not (lab.client.get(NODES, node).get("spec") or {}).get("taints")


def test_a_daemonset_runs_one_pod_on_every_node_behind_its_service(lab, scratch):
    scratch.apply(pods.echo_daemonset(scratch.name("ds"), labels={"app": scratch.prefix}))
    svc = scratch.service()
    ready = helpers.poll(lambda: len(r := _live_ready_pods(lab, scratch.prefix)) == len(lab.plan.nodes) and r,
                         120, "a Ready pod on every node")
    assert sorted(p["spec"]["nodeName"] for p in ready.values()) == sorted(n.name for n in lab.plan.nodes)
    wait_for_pods(lab.client_netns, cluster_ip(svc), 80, set(ready))


def test_a_job_runs_to_completion(lab, scratch):
    from kproxy.api.resources import JOBS

    job = scratch.apply(pods.shell_job(scratch.name("job"), "echo done", completions=2, parallelism=2,
                                       labels={"app": scratch.prefix}))

    def complete() -> dict | None:
        obj = lab.client.get(JOBS, job["metadata"]["name"], "default")
        return obj if pods.condition(obj, "Complete") == "True" else None

    done = helpers.poll(complete, 120, "the Job to be Complete")
    assert done["status"].get("succeeded") == 2, done["status"]
    phases = {name: p["status"].get("phase") for name, p in _pods_of(lab, scratch.prefix).items()}
    assert list(phases.values()) == ["Succeeded", "Succeeded"], phases


# A pod's view of the apiserver: GET the pods of default through the kubernetes Service with the
# projected token and CA, printing each new answer (code and body) until one is 200.
LIST_PODS_FROM_A_POD = r"""
import json, os, ssl, time, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
url = "https://%s:%s/api/v1/namespaces/default/pods" % (os.environ["KUBERNETES_SERVICE_HOST"],
                                                         os.environ["KUBERNETES_SERVICE_PORT"])
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
last = None
while True:
    with open(sa + "/token") as f:
        request = urllib.request.Request(url, headers={"Authorization": "Bearer " + f.read()})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as answer:
            code, body = answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        code, body = exc.code, json.load(exc)
    if code != last:
        print(json.dumps({"code": code, "message": body.get("message"),
                          "pods": [p["metadata"]["name"] for p in body.get("items") or []]}), flush=True)
        last = code
    if code == 200:
        break
    time.sleep(0.5)
"""


def _kubectl(lab, *args: str) -> str:
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KUBECONFIG": lab.kubeconfig, "HOME": lab.dir})
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_a_pod_reaches_the_apiserver_through_the_kubernetes_service(lab, scratch):
    """With its projected service-account token: the default ServiceAccount may not list pods
    (403, upstream's message) until a Role allows it."""
    import json

    from kproxy.api.resources import PODS

    name = scratch.name("api")
    scratch.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                   "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                            "containers": [{"name": "main", "image": pods.BASE_IMAGE,
                                            "command": ["python3", "-c", LIST_PODS_FROM_A_POD]}]}})

    def answers() -> list[dict]:
        return [json.loads(line) for line in _kubectl(lab, "logs", name).splitlines() if line.startswith("{")]

    first = helpers.poll(answers, 120, "the pod's first answer from the apiserver")[0]
    assert first == {"code": 403, "pods": [], "message":
                     'pods is forbidden: User "system:serviceaccount:default:default" cannot list resource '
                     '"pods" in API group "" in the namespace "default"'}, first
    scratch.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": name, "namespace": "default"},
                   "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    scratch.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": name, "namespace": "default"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                   "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
    helpers.poll(lambda: lab.client.get(PODS, name, "default")["status"].get("phase") == "Succeeded", 120,
                 "the pod to list the pods and exit")
    last = answers()[-1]
    assert last["code"] == 200 and name in last["pods"], last
