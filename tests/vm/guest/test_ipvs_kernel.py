"""IpvsBackend with real IPVS, real ipsets and real packets, inside the test VM (this kernel has
IPVS and dummy interfaces; the host's may not). Topology: tests/kernel/topology.py.

Run by tests/vm/test_vm.py inside one VM boot; directly: KPROXY_IN_VM=1 pytest tests/vm/guest
on a machine whose kernel has ip_vs.
"""
from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time

import pytest

from kproxy.agent.state import Endpoint, ProxyState
from kproxy.ipvs import nfrules, procfs
from kproxy.ipvs.backend import DUMMY_DEVICE, desired_map
from tests.kernel.backends import config_for, open_backend
from tests.kernel.topology import CLIENT_IP, NODE_IP, POD_PORT, service, single_node, state

pytestmark = pytest.mark.kernel

TRIES = 40  # P(one of 3 endpoints never chosen in 40 rr tries) = 0: rr cycles
HOLD_PORT = 9090


@pytest.fixture(scope="module")
def topo():
    subprocess.run(["modprobe", "ip_vs"], check=True)
    with single_node(["a", "b", "c"], tag="ipvs") as topology:
        yield topology


def config(scheduler: str = ""):
    return config_for("ipvs-auto", ipvs={"scheduler": scheduler})


@pytest.fixture
def backend(topo):
    with open_backend(topo.node, config()) as b:
        yield b


def ep(topo, pod: str, port: int = POD_PORT, **kw) -> Endpoint:
    return Endpoint(topo.pods[pod].ip, port, is_local=True, node_name="n1", **kw)


def sync(backend, st: ProxyState, previous=None):
    ruleset = backend.render(st)
    result = backend.apply(ruleset, previous)
    return ruleset, result


def ipvsadm(topo) -> str:
    return topo.run(topo.node, ["ipvsadm", "-Ln"]).stdout


def parse_ipvsadm(text: str) -> dict[tuple[str, int, str], set[tuple[str, int, int]]]:
    """`ipvsadm -Ln` -> {(vip, port, proto): {(rip, rport, weight)}}."""
    out: dict = {}
    current = None
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in ("TCP", "UDP", "SCTP"):
            ip, port = words[1].rsplit(":", 1)
            current = (ip, int(port), words[0])
            out[current] = set()
        elif words and words[0] == "->" and current is not None and words[1] != "RemoteAddress:Port":
            ip, port = words[1].rsplit(":", 1)
            out[current].add((ip, int(port), int(words[3])))
    return out


def assert_kernel_matches(topo, backend, ruleset) -> None:
    """ipvsadm, our own dump (inspect) and the ruleset agree (weight-0 drains excluded)."""
    kernel = {k: {r for r in v if r[2] > 0} for k, v in parse_ipvsadm(ipvsadm(topo)).items()}
    want = {k: {(r.address, r.port, r.weight) for r in e.reals} for k, e in ruleset.services.items()}
    assert kernel == want
    assert backend.inspect().as_map() == desired_map(ruleset)


# ------------------------------------------------------------------ traffic


def test_cluster_ip_round_robins_over_endpoints_and_masquerades_off_cluster_clients(topo, backend):
    ruleset, _ = sync(backend, state(service("web", "10.96.0.10", [ep(topo, p) for p in "abc"])))
    assert_kernel_matches(topo, backend, ruleset)
    replies = [topo.tcp(topo.client, "10.96.0.10", 80) for _ in range(9)]
    assert {pod for pod, _ in replies} == {"a", "b", "c"}
    assert {src for _, src in replies} == {NODE_IP}  # the client is off-cluster: masqueraded
    addrs = topo.run(topo.node, ["ip", "-o", "-4", "addr", "show", "dev", DUMMY_DEVICE]).stdout
    assert "10.96.0.10/32" in addrs
    assert backend.inspect().owners[("10.96.0.10", 80, "TCP")] == ("clusterIP", "default/web:")


def test_pod_client_keeps_its_address_and_hairpin_is_masqueraded(topo, backend):
    sync(backend, state(service("web", "10.96.0.11", [ep(topo, "a"), ep(topo, "b")])))
    seen = {}
    for _ in range(6):
        pod, src = topo.tcp(topo.pods["c"].netns, "10.96.0.11", 80)
        seen[pod] = src
    assert seen == {"a": topo.pods["c"].ip, "b": topo.pods["c"].ip}
    for _ in range(4):  # a pod reaching itself through the Service: source must not be itself
        pod, src = topo.tcp(topo.pods["a"].netns, "10.96.0.11", 80)
        if pod == "a":
            assert src != topo.pods["a"].ip
        else:
            assert src == topo.pods["a"].ip


def test_udp_and_node_port(topo, backend):
    udp = service("dns", "10.96.0.53", [ep(topo, "a")], port=53, protocol="UDP")
    np = service("np", "10.96.0.12", [ep(topo, "b")], node_port=30080)
    ruleset, _ = sync(backend, state(udp, np))
    assert_kernel_matches(topo, backend, ruleset)
    assert topo.udp(topo.client, "10.96.0.53", 53)[0] == "a"
    pod, src = topo.tcp(topo.client, NODE_IP, 30080)
    assert (pod, src) == ("b", NODE_IP)


def test_node_port_local_policy_keeps_client_address(topo, backend):
    np = service("npl", "10.96.0.13", [ep(topo, "c")], node_port=30081, external_policy_local=True)
    sync(backend, state(np))
    assert topo.tcp(topo.client, NODE_IP, 30081) == ("c", CLIENT_IP)


def test_local_policy_without_a_local_endpoint_drops_external_traffic(topo, backend):
    remote = Endpoint(topo.pods["a"].ip, POD_PORT, is_local=False, node_name="n2")
    sync(backend, state(service("npr", "10.96.0.16", [remote], node_port=30082, external_policy_local=True)))
    with pytest.raises(TimeoutError):  # dropped, not refused (kube-proxy)
        topo.tcp(topo.client, NODE_IP, 30082, timeout=2)
    assert topo.tcp(topo.client, "10.96.0.16", 80)[0] == "a"  # the ClusterIP still reaches it


def test_load_balancer_source_ranges_drop_other_sources(topo, backend):
    """An LB IP whose loadBalancerSourceRanges hold the client reaches an endpoint; one whose
    ranges do not drops the client's connection (no answer, as kube-proxy); the ClusterIP of
    the blocked Service stays open. The kernel holds the ranges (hash:ip,port,net) as rendered."""
    allowed = service("lbok", "10.96.0.17", [ep(topo, "a")], load_balancer_ips=("192.0.2.41",),
                      load_balancer_source_ranges=(f"{CLIENT_IP}/32",))
    blocked = service("lbno", "10.96.0.18", [ep(topo, "b")], load_balancer_ips=("192.0.2.42",),
                      load_balancer_source_ranges=("203.0.113.0/24",))
    sync(backend, state(allowed, blocked))
    assert topo.tcp(topo.client, "192.0.2.41", 80)[0] == "a"
    with pytest.raises(TimeoutError):
        topo.tcp(topo.client, "192.0.2.42", 80, timeout=2)
    assert topo.tcp(topo.client, "10.96.0.18", 80)[0] == "b"
    assert backend.inspect().allowed_sources == {("192.0.2.41", 80, "TCP"): (f"{CLIENT_IP}/32",),
                                                 ("192.0.2.42", 80, "TCP"): ("203.0.113.0/24",)}


def test_service_without_endpoints_is_rejected(topo, backend):
    sync(backend, state(service("empty", "10.96.0.14")))
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, "10.96.0.14", 80, timeout=3)


def test_session_affinity_and_mh_scheduler_are_programmed(topo):
    with open_backend(topo.node, config("mh")) as b:
        sp = service("sticky", "10.96.0.15", [ep(topo, p) for p in "abc"], session_affinity_timeout=600)
        sync(b, state(sp))
        out = ipvsadm(topo)
        line = next(l for l in out.splitlines() if "10.96.0.15:80" in l)
        assert "mh" in line and "persistent 600" in line and "mh-fallback" in line and "mh-port" in line
        first = topo.tcp(topo.client, "10.96.0.15", 80)[0]
        assert {topo.tcp(topo.client, "10.96.0.15", 80)[0] for _ in range(6)} == {first}


# ------------------------------------------------------------------ sync behaviour


def test_second_full_sync_writes_nothing_and_partial_sync_touches_only_the_change(topo, backend):
    services = [service(f"s{i}", f"10.96.1.{i}", [ep(topo, "a"), ep(topo, "b")]) for i in range(1, 21)]
    ruleset, first = sync(backend, state(*services))
    assert first.objects_written == 20 * 3
    _, again = sync(backend, state(*services))
    assert again.objects_written == 0
    changed = list(services)
    changed[4] = service("s5", "10.96.1.5", [ep(topo, "a"), ep(topo, "c")])
    new_ruleset, partial = sync(backend, state(*changed), previous=ruleset)
    # c added; b has no connections, so it is deleted at once: two requests
    assert partial.objects_written == 2
    assert_kernel_matches(topo, backend, new_ruleset)


def test_proc_table_agrees_with_the_netlink_dumps(topo, backend):
    """What a full sync reads in one go (/proc/thread-self/net/ip_vs on the namespace's thread)
    is what netlink dumps per virtual server: addresses, ports, weights, forwarding method and
    connection counts, persistent and NodePort virtual servers included."""
    st = state(service("p1", "10.96.2.1", [ep(topo, "a"), ep(topo, "b")], session_affinity_timeout=600),
               service("p2", "10.96.2.2", [ep(topo, "c")], protocol="UDP", port=53),
               service("p3", "10.96.2.3", [ep(topo, "a")], node_port=30093),
               service("p4", "10.96.2.4", []))
    ruleset, _ = sync(backend, st)
    assert topo.tcp(topo.client, "10.96.2.1", 80)[0] in ("a", "b")  # a connection to count
    sync(backend, state(*[s for s in st.services.values() if s.name != "p1"],
                        service("p1", "10.96.2.1", [ep(topo, "a")], session_affinity_timeout=600)), previous=ruleset)

    def both():
        sock = backend._socket()
        by_netlink = {vs.key: sorted(sock.dests(vs), key=lambda d: d.server) for vs in sock.services()}
        by_proc = {k: sorted(v, key=lambda d: d.server) for k, v in procfs.read().items()}
        return by_netlink, by_proc

    by_netlink, by_proc = backend.netns.run(both)
    assert by_proc == by_netlink
    assert len(by_proc) == len(ruleset.services) and ("10.96.2.2", 53, "UDP") in by_proc
    assert sum(d.active + d.inactive for dests in by_proc.values() for d in dests) >= 1


def test_full_sync_repairs_drift(topo, backend):
    st = state(service("d1", "10.96.0.21", [ep(topo, "a")]), service("d2", "10.96.0.22", [ep(topo, "b")]))
    ruleset, _ = sync(backend, st)
    topo.run(topo.node, ["ipvsadm", "-D", "-t", "10.96.0.21:80"])
    topo.run(topo.node, ["ipvsadm", "-e", "-t", "10.96.0.22:80", "-r", f"{topo.pods['b'].ip}:{POD_PORT}", "-m", "-w", "7"])
    topo.run(topo.node, ["ipvsadm", "-A", "-t", "10.96.0.99:80", "-s", "rr"])
    topo.run(topo.node, ["ip", "addr", "del", "10.96.0.22/32", "dev", DUMMY_DEVICE])
    topo.run(topo.node, ["ipset", "flush", nfrules.SET_CLUSTER_IP])
    variant = backend.netns.run(backend._iptables_driver).variant
    iptables = variant.iptables
    saved = topo.run(topo.node, [variant.save]).stdout
    # a rule of ours and a jump to our chains deleted by hand
    topo.run(topo.node, [iptables, "-t", "nat", "-F", nfrules.NAT_POSTROUTING])
    topo.run(topo.node, [iptables, "-t", "filter", "-D", *nfrules.jump_args("INPUT", nfrules.FILTER_CHAIN)])
    assert topo.run(topo.node, [variant.save]).stdout != saved
    sync(backend, st)
    assert_kernel_matches(topo, backend, ruleset)
    assert topo.tcp(topo.client, "10.96.0.22", 80)[0] == "b"
    assert "10.96.0.22,tcp:80" in topo.run(topo.node, ["ipset", "list", nfrules.SET_CLUSTER_IP]).stdout
    ours = lambda text: [l for l in text.splitlines() if nfrules.PREFIX in l]  # noqa: E731
    assert ours(topo.run(topo.node, [variant.save]).stdout) == ours(saved)
    # the dummy interface itself deleted: the next full sync makes it again, with its addresses
    topo.run(topo.node, ["ip", "link", "del", DUMMY_DEVICE])
    sync(backend, st)
    assert_kernel_matches(topo, backend, ruleset)
    assert topo.tcp(topo.client, "10.96.0.21", 80)[0] == "a"


def test_removed_service_and_address_are_deleted(topo, backend):
    a = service("keep", "10.96.0.31", [ep(topo, "a")])
    b = service("drop", "10.96.0.32", [ep(topo, "b")])
    ruleset, _ = sync(backend, state(a, b))
    ruleset2, _ = sync(backend, state(a), previous=ruleset)
    assert_kernel_matches(topo, backend, ruleset2)
    addrs = topo.run(topo.node, ["ip", "-o", "-4", "addr", "show", "dev", DUMMY_DEVICE]).stdout
    assert "10.96.0.32/" not in addrs and "10.96.0.31/" in addrs


def test_cleanup_removes_everything(topo):
    with open_backend(topo.node, config()) as b:
        sync(b, state(service("c1", "10.96.0.41", [ep(topo, "a")], node_port=30090)))
        b.cleanup()
        assert parse_ipvsadm(ipvsadm(topo)) == {}
        assert topo.run(topo.node, ["ip", "link", "show", DUMMY_DEVICE], check=False).returncode != 0
        assert "KUBE-IPVS" not in topo.run(topo.node, ["ipset", "list", "-n"]).stdout
        for variant in ("iptables-nft-save", "iptables-legacy-save"):
            assert "KUBE-IPVS" not in topo.run(topo.node, [variant], check=False).stdout


# ------------------------------------------------------------------ graceful termination


def reset(s: socket.socket) -> None:
    """Closes with RST (SO_LINGER 0): IPVS then holds the connection in CLOSE for 10 s instead
    of TIME_WAIT for 120 s, which keeps the drain test short."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@pytest.fixture
def hold_servers(topo):
    """A line-echo server that keeps connections open, on HOLD_PORT in pods a and b."""
    code = ("import socket,sys,threading\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('0.0.0.0', {HOLD_PORT})); s.listen(16)\n"
            "def serve(c):\n"
            "    f=c.makefile('rwb')\n"
            "    for line in f:\n"
            "        f.write(sys.argv[1].encode()+b' '+line); f.flush()\n"
            "    c.close()\n"
            "while True:\n"
            "    c,_=s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()\n")
    procs = []
    try:
        for name in "ab":
            procs.append(subprocess.Popen(["ip", "netns", "exec", topo.pods[name].netns, sys.executable, "-c", code, name]))
        for name in "ab":
            deadline = time.monotonic() + 180  # an emulated VM under load starts Python slowly
            while topo.run(topo.pods[name].netns, ["ss", "-ltn", f"sport = :{HOLD_PORT}"]).stdout.count("LISTEN") == 0:
                assert time.monotonic() < deadline, "hold server did not start"
                time.sleep(0.1)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_removed_endpoint_drains_established_connections_until_they_close(topo, backend, hold_servers):
    def connect() -> tuple[socket.socket, str]:
        def do():
            s = socket.create_connection(("10.96.0.50", 80), timeout=5)
            s.sendall(b"ping\n")
            return s, s.recv(64).decode().split()[0]
        return topo.ns(topo.client).run(do)

    def talk(s: socket.socket) -> str:
        return topo.ns(topo.client).run(lambda: (s.sendall(b"again\n"), s.recv(64).decode())[1])

    eps = [ep(topo, "a", HOLD_PORT), ep(topo, "b", HOLD_PORT)]
    ruleset, _ = sync(backend, state(service("hold", "10.96.0.50", eps)))
    conns = [connect() for _ in range(2)]
    held = next(s for s, pod in conns if pod == "a")
    # endpoint a leaves the Service: its real server is kept with weight 0
    ruleset2, _ = sync(backend, state(service("hold", "10.96.0.50", eps[1:])), previous=ruleset)
    weights = parse_ipvsadm(ipvsadm(topo))[("10.96.0.50", 80, "TCP")]
    assert (topo.pods["a"].ip, HOLD_PORT, 0) in weights and (topo.pods["b"].ip, HOLD_PORT, 1) in weights
    assert talk(held) == "a again\n"  # the established connection still works
    new = [connect() for _ in range(3)]
    assert {pod for _, pod in new} == {"b"}  # new connections avoid the draining server
    ruleset3, _ = sync(backend, state(service("hold", "10.96.0.50", eps[1:])), previous=ruleset2)
    assert (topo.pods["a"].ip, HOLD_PORT, 0) in parse_ipvsadm(ipvsadm(topo))[("10.96.0.50", 80, "TCP")]
    for s, _ in conns + new:
        topo.ns(topo.client).run(reset, s)
    # once its connections are gone (reset: IPVS keeps them 10 s in CLOSE), a sync deletes it
    deadline = time.monotonic() + 60
    while True:
        sync(backend, state(service("hold", "10.96.0.50", eps[1:])), previous=ruleset3)
        reals = parse_ipvsadm(ipvsadm(topo))[("10.96.0.50", 80, "TCP")]
        if reals == {(topo.pods["b"].ip, HOLD_PORT, 1)}:
            break
        assert time.monotonic() < deadline, f"draining real server never deleted: {reals}"
        time.sleep(1)


def test_last_endpoint_drains_while_new_connections_are_rejected(topo, backend, hold_servers):
    """The Service's only endpoint leaves: new connections get the no-endpoints REJECT, the
    established one keeps talking to its weight-0 real server (the REJECT matches new
    connections only, and filter INPUT sees packets before IPVS does)."""
    eps = [ep(topo, "a", HOLD_PORT)]
    ruleset, _ = sync(backend, state(service("last", "10.96.0.52", eps)))

    def connect():
        s = socket.create_connection(("10.96.0.52", 80), timeout=5)
        s.sendall(b"ping\n")
        return s, s.recv(64).decode()

    held, first = topo.ns(topo.client).run(connect)
    try:
        assert first == "a ping\n"
        sync(backend, state(service("last", "10.96.0.52", [])), previous=ruleset)
        assert parse_ipvsadm(ipvsadm(topo))[("10.96.0.52", 80, "TCP")] == {(topo.pods["a"].ip, HOLD_PORT, 0)}
        assert topo.ns(topo.client).run(lambda: (held.sendall(b"still\n"), held.recv(64).decode())[1]) == "a still\n"
        with pytest.raises(ConnectionRefusedError):
            topo.ns(topo.client).run(connect)
    finally:
        topo.ns(topo.client).run(reset, held)


def test_drain_deadline_deletes_a_busy_real_server(topo, backend, hold_servers):
    backend.drain_seconds = 1.0
    eps = [ep(topo, "a", HOLD_PORT)]
    ruleset, _ = sync(backend, state(service("busy", "10.96.0.51", eps)))
    s = topo.ns(topo.client).run(lambda: socket.create_connection(("10.96.0.51", 80), timeout=5))
    try:
        ruleset2, _ = sync(backend, state(service("busy", "10.96.0.51", [])), previous=ruleset)
        assert parse_ipvsadm(ipvsadm(topo))[("10.96.0.51", 80, "TCP")] == {(topo.pods["a"].ip, HOLD_PORT, 0)}
        time.sleep(1.2)
        sync(backend, state(service("busy", "10.96.0.51", [])), previous=ruleset2)
        assert parse_ipvsadm(ipvsadm(topo))[("10.96.0.51", 80, "TCP")] == set()
    finally:
        topo.ns(topo.client).run(s.close)


# ------------------------------------------------------------------ conntrack

def test_a_connection_attempt_older_than_the_rules_is_released_by_the_agents_cleanup(topo, backend):
    """As in tests/kernel/test_iptables_kernel.py, through IPVS: a SYN routed as plain traffic
    before the ClusterIP was local leaves a confirmed, untranslated entry; IPVS would forward
    its retransmissions without masquerade (it only rewrites unconfirmed entries; to a pod on
    another node, whose answer bypasses this node, the attempt fails: the lab scenario
    test_a_client_faster_than_the_proxy_connects_once_the_rules_are_in). The agent's cleanup
    finds that entry among IPVS's and deletes it; the same client port then connects."""
    from kproxy.agent import conntrack

    vip, port = "10.96.3.77", 40777
    other = service("other", "10.96.3.78", [ep(topo, "b")])
    st = state(other, service("early", vip, [ep(topo, "a")]))
    previous, _ = sync(backend, state(other))
    topo.run(topo.node, ["ip", "route", "add", "10.96.0.0/12", "via", CLIENT_IP])
    try:
        with pytest.raises(TimeoutError):
            topo.tcp(topo.client, vip, 80, timeout=1.5, source_port=port)  # before the rules
        sync(backend, st, previous)
        assert topo.tcp(topo.client, vip, 80)[0] == "a"  # a translated entry the cleanup keeps
        assert conntrack.flush_unanswered(backend.netns, conntrack.plan_unanswered(state(other), st)) == 1
        assert topo.tcp(topo.client, vip, 80, source_port=port)[0] == "a"
    finally:
        topo.run(topo.node, ["ip", "route", "del", "10.96.0.0/12", "via", CLIENT_IP], check=False)



@pytest.mark.timeout(600)  # a whole `kproxy rules` under software emulation: 290 s seen on a busy host
def test_kproxy_rules_finds_ipvs_mode_by_itself():
    """`kproxy rules` without --mode on an ipvs node (no agent answering /proxyMode): it reads
    the ipvs view (kube-ipvs0), not an empty iptables one, and says why; without kube-ipvs0 the
    virtual servers alone still tell (read from the namespace's own /proc/net/ip_vs). No traffic
    is sent, so a bare namespace will do."""
    import json

    from kproxy.rules.detect import kernel_findings
    from tests import nsutil
    from tests.vm.ipvs_probe import kproxy_cli

    subprocess.run(["modprobe", "ip_vs"], check=True)
    with nsutil.netns("ipvs-detect") as name, open_backend(name, config()) as b:
        web = service("web", "10.96.0.60", [Endpoint("10.244.1.2", POD_PORT, node_name="n1", is_local=True)])
        b.apply(b.render(ProxyState("n1", node_ips=(NODE_IP,), services={web.key: web})), None)
        code, out, err = kproxy_cli(["rules", "--netns", name, "-o", "json"])  # in-process: the VM is slow
        assert code == 0, err
        doc = json.loads(out)
        assert doc["mode"] == "ipvs" and [s["name"] for s in doc["services"]] == ["web"]
        assert doc["modeDetection"]["source"] == "kernel"
        assert f"the namespace holds the {DUMMY_DEVICE} interface" in doc["modeDetection"]["reason"]
        nsutil.run(["ip", "-n", name, "link", "del", DUMMY_DEVICE])
        found, notes = kernel_findings(b.netns)
        assert found["ipvs"] == "IPVS virtual servers (1)" and notes == []
