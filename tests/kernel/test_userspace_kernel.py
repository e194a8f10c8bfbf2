"""Userspace mode with real sockets and packets: a client namespace, a node namespace running the
proxy (UserspaceBackend), pod namespaces running echo servers (tests/kernel/topology.py)."""
from __future__ import annotations

import pytest

from kproxy.agent.state import Endpoint
from kproxy.netns import NetNS
from kproxy.userspace.backend import UserspaceBackend
from tests.kernel.backends import config_for, open_backend, sync
from tests.kernel.topology import CLIENT_IP, NODE_IP, ep, pods_reached, service, single_node, state

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b", "c", "d"], tag="usk") as topology:
        yield topology


def config(localhost_nodeports: bool = False):
    return config_for("userspace", iptables={"localhost_nodeports": localhost_nodeports})


@pytest.fixture
def mode():
    return "userspace"  # the backend fixture: tests/kernel/conftest.py


@pytest.fixture
def backend_config():
    return config()


def test_cluster_ip_tcp_and_udp_reach_every_endpoint(topo, backend):
    sync(backend, state(service("web", "10.96.0.10", [ep(topo, "a"), ep(topo, "b"), ep(topo, "c")]),
                        service("dns", "10.96.0.10", [ep(topo, "a"), ep(topo, "b")], port=53, protocol="UDP")))
    assert pods_reached(topo, topo.client, "10.96.0.10", 80) == {"a", "b", "c"}
    assert pods_reached(topo, topo.client, "10.96.0.10", 53, proto="udp") == {"a", "b"}
    # endpoints on this node see the client itself (transparent connect)
    assert topo.tcp(topo.client, "10.96.0.10", 80)[1] == CLIENT_IP
    # from a pod (arrives on a veth without an address: DNAT to the node IP, not REDIRECT)
    assert topo.tcp(topo.pods["d"].netns, "10.96.0.10", 80)[0] in {"a", "b", "c"}
    # from the node itself (OUTPUT)
    assert topo.tcp(topo.node, "10.96.0.10", 80)[0] in {"a", "b", "c"}


def test_nodeport_and_external_ip(topo, backend):
    sync(backend, state(service("np", "10.96.0.20", [ep(topo, "a"), ep(topo, "b")], node_port=30080,
                                external_ips=("192.0.2.10",))))
    assert pods_reached(topo, topo.client, NODE_IP, 30080) == {"a", "b"}
    assert pods_reached(topo, topo.client, "192.0.2.10", 80) == {"a", "b"}


def test_service_without_endpoints_is_refused(topo, backend):
    sync(backend, state(service("empty", "10.96.0.24", [], node_port=30083),
                        service("empty-udp", "10.96.0.24", [], port=53, protocol="UDP")))
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, "10.96.0.24", 80)
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, NODE_IP, 30083)
    with pytest.raises(ConnectionRefusedError):
        topo.udp(topo.client, "10.96.0.24", 53)


def test_session_affinity_sticks(topo, backend):
    sync(backend, state(service("sticky", "10.96.0.23", [ep(topo, "a"), ep(topo, "b"), ep(topo, "c")],
                                session_affinity_timeout=300)))
    assert len(pods_reached(topo, topo.client, "10.96.0.23", 80, tries=15)) == 1


def test_refused_endpoint_is_skipped(topo, backend):
    dead = Endpoint(topo.pods["a"].ip, 9, node_name="n1", is_local=True)  # nothing listens on port 9
    sync(backend, state(service("retry", "10.96.0.25", [dead, ep(topo, "b")])))
    assert pods_reached(topo, topo.client, "10.96.0.25", 80, tries=20) == {"b"}


def test_endpoint_change_keeps_the_listener_and_moves_udp_flows(topo, backend):
    first = sync(backend, state(service("mv", "10.96.0.26", [ep(topo, "a")], port=53, protocol="UDP")))
    assert topo.udp(topo.client, "10.96.0.26", 53, source_port=40100)[0] == "a"
    port_before = {i.key: i.port for i in backend.inspect().listeners}
    sync(backend, state(service("mv", "10.96.0.26", [ep(topo, "b")], port=53, protocol="UDP")), first, full=False)
    # same client 5-tuple: the old flow's endpoint is gone, so it is re-picked
    assert topo.udp(topo.client, "10.96.0.26", 53, source_port=40100)[0] == "b"
    assert {i.key: i.port for i in backend.inspect().listeners} == port_before


def test_removed_service_closes_its_listener_and_rules(topo, backend):
    first = sync(backend, state(service("gone", "10.96.0.27", [ep(topo, "a")])))
    (info,) = backend.inspect().listeners
    sync(backend, state(), first, full=False)
    assert backend.inspect().listeners == ()
    with pytest.raises(OSError):  # neither a rule nor a listener is left
        topo.tcp(topo.client, "10.96.0.27", 80, timeout=1)
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.node, NODE_IP, info.port, timeout=2)


def test_rules_deleted_by_hand_come_back_on_a_full_sync(topo, backend):
    st = state(service("fix", "10.96.0.28", [ep(topo, "a")]))
    sync(backend, st)
    topo.run(topo.node, ["iptables-nft", "-t", "nat", "-F", "KUBE-SERVICES"])
    with pytest.raises(OSError):
        topo.tcp(topo.client, "10.96.0.28", 80, timeout=1)
    sync(backend, st)  # previous=None: full
    assert topo.tcp(topo.client, "10.96.0.28", 80)[0] == "a"


def test_cleanup_removes_rules_and_listeners(topo, backend):
    before = topo.run(topo.node, ["iptables-nft-save"]).stdout
    sync(backend, state(service("clean", "10.96.0.29", [ep(topo, "a")])))
    assert "10.96.0.29" in topo.run(topo.node, ["iptables-nft-save"]).stdout
    backend.cleanup()
    after = topo.run(topo.node, ["iptables-nft-save"]).stdout
    assert "KUBE-" not in after and "10.96.0.29" not in after
    assert len([l for l in after.splitlines() if l.startswith("-A")]) == \
        len([l for l in before.splitlines() if l.startswith("-A") and "KUBE-" not in l])


def test_a_restarted_agent_reattaches_to_the_running_proxy(topo, backend):
    """The listeners live in the proxy process: closing the backend (agent exit) keeps them, and a
    new backend's full sync finds the same ports, so its rules do not change."""
    st = state(service("keep", "10.96.0.32", [ep(topo, "a")]))
    sync(backend, st)
    before = {i.key: i.port for i in backend.inspect().listeners}
    backend.close()
    assert topo.tcp(topo.client, "10.96.0.32", 80)[0] == "a"  # still served, no agent attached
    netns = NetNS(topo.node)
    again = UserspaceBackend(netns, config())
    try:
        sync(again, st)
        assert {i.key: i.port for i in again.inspect().listeners} == before
        assert topo.tcp(topo.client, "10.96.0.32", 80)[0] == "a"
    finally:
        again.close()
        netns.close()


def test_local_endpoints_see_the_client_address(topo, backend):
    """Connections to endpoints on this node come from the client's own address (IP_TRANSPARENT
    + socket-match policy route for the replies), as kube-proxy's externalTrafficPolicy: Local."""
    svc = service("etp", "10.96.0.33", [ep(topo, "a"), ep(topo, "b", local=False)], node_port=30081,
                  external_policy_local=True)
    udp = service("etp-udp", "10.96.0.33", [ep(topo, "a")], port=53, protocol="UDP", node_port=30082,
                  external_policy_local=True)
    sync(backend, state(svc, udp))
    assert {topo.tcp(topo.client, NODE_IP, 30081) for _ in range(10)} == {("a", CLIENT_IP)}
    assert topo.udp(topo.client, NODE_IP, 30082) == ("a", CLIENT_IP)
    # a remote endpoint (its replies would not come back here) sees the node's address
    assert {topo.tcp(topo.client, "10.96.0.33", 80) for _ in range(20)} >= {("b", NODE_IP)}
    # hairpin: a pod reaching itself is proxied from the node's address (never its own)
    remote_only = service("hair", "10.96.0.34", [ep(topo, "a")])
    sync(backend, state(svc, udp, remote_only))
    assert topo.tcp(topo.pods["a"].netns, "10.96.0.34", 80) == ("a", NODE_IP)


def test_load_balancer_source_ranges(topo, backend):
    allowed = service("lb-ok", "10.96.0.35", [ep(topo, "a")], load_balancer_ips=("198.51.100.7",),
                      load_balancer_source_ranges=("10.200.0.0/24",))
    denied = service("lb-no", "10.96.0.36", [ep(topo, "a")], load_balancer_ips=("198.51.100.8",),
                     load_balancer_source_ranges=("192.0.2.0/24",))
    sync(backend, state(allowed, denied))
    assert topo.tcp(topo.client, "198.51.100.7", 80)[0] == "a"
    with pytest.raises(TimeoutError):  # dropped by KUBE-PROXY-FIREWALL, like the iptables mode
        topo.tcp(topo.client, "198.51.100.8", 80, timeout=2)


def test_local_policy_short_circuits_pod_and_node_traffic(topo, backend):
    """externalTrafficPolicy Local (kube-proxy's KUBE-EXT chain): traffic from a pod of the cluster
    or from the node itself to a NodePort or external IP goes to every endpoint, traffic from
    outside only to local ones; with no local endpoint the outside traffic is dropped while pods
    and the node still reach the remote endpoint."""
    both = service("sc", "10.96.0.37", [ep(topo, "a"), ep(topo, "b", local=False)], node_port=30084,
                   external_ips=("192.0.2.37",), external_policy_local=True)
    remote = service("sc-remote", "10.96.0.38", [ep(topo, "b", local=False)], node_port=30085,
                     external_ips=("192.0.2.38",), external_policy_local=True)
    sync(backend, state(both, remote))
    pod = topo.pods["d"].netns
    for ip, port in ((NODE_IP, 30084), ("192.0.2.37", 80)):
        assert pods_reached(topo, topo.client, ip, port, tries=10) == {"a"}
        assert pods_reached(topo, pod, ip, port) == {"a", "b"}
        assert pods_reached(topo, topo.node, ip, port) == {"a", "b"}
    for ip, port in ((NODE_IP, 30085), ("192.0.2.38", 80)):
        assert pods_reached(topo, pod, ip, port, tries=3) == {"b"}
        assert pods_reached(topo, topo.node, ip, port, tries=3) == {"b"}
        with pytest.raises(TimeoutError):  # DROP: no local endpoint for traffic from outside
            topo.tcp(topo.client, ip, port, timeout=2)


@pytest.mark.parametrize("localhost", [True, False])
def test_localhost_node_ports_follow_the_option(topo, localhost):
    """iptables.localhostNodePorts: NodePorts answer on 127.0.0.1 unless it is false."""
    with open_backend(topo.node, config(localhost)) as b:
        sync(b, state(service("lo", "10.96.0.39", [ep(topo, "a")], node_port=30086)))
        assert topo.tcp(topo.node, NODE_IP, 30086)[0] == "a"
        if localhost:
            assert topo.tcp(topo.node, "127.0.0.1", 30086)[0] == "a"
        else:
            with pytest.raises(ConnectionRefusedError):
                topo.tcp(topo.node, "127.0.0.1", 30086)


def test_sctp_service_ports_are_named_as_skipped(topo, backend, caplog):
    """SCTP is not proxied: one log line names the ServicePort, and inspect() (what `kproxy
    rules` reads) lists it with the reason; the other ServicePorts are programmed."""
    sctp = service("sig", "10.96.0.40", [ep(topo, "a")], port=3868, protocol="SCTP")
    web = service("web2", "10.96.0.41", [ep(topo, "a")])
    with caplog.at_level("WARNING", logger="kproxy.userspace.backend"):
        sync(backend, state(sctp, web))
    assert [r.getMessage() for r in caplog.records] == [
        "not programmed: userspace mode does not proxy SCTP: default/sig:"]
    assert backend.inspect().skipped == (("default/sig:", "userspace mode does not proxy SCTP"),)
    assert topo.tcp(topo.client, "10.96.0.41", 80)[0] == "a"
