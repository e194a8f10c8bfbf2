"""The nftables backend with real nf_tables batches and real packets, in namespaces
(tests/kernel/topology.py)."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from kproxy.agent.backend import ApplyError
from kproxy.nftables.plan import plan_full
from kproxy.nftables.transaction import Transaction
from kproxy.rules.nftables import Dump, NftablesAdapter
from kproxy.rules.trace import Probe
from tests.kernel.backends import config_for, open_backend, render, sync
from tests.kernel.topology import CLIENT_IP, NODE_IP, TRIES, ep, pods_reached, service, single_node, state

pytestmark = pytest.mark.kernel

PODS = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def topo():
    with single_node(PODS, tag="nftk") as topology:
        yield topology


MAGLEV = config_for("nftables", nftables={"endpoint_selection": "maglev"})


@pytest.fixture
def mode():
    return "nftables"  # the backend fixture: tests/kernel/conftest.py


def nft_list(topo) -> str:
    return topo.run(topo.node, ["nft", "list", "table", "ip", "kproxy"]).stdout


# ------------------------------------------------------------------ traffic


def test_cluster_ip_reaches_every_endpoint_and_masquerades_off_cluster_clients(topo, backend):
    sync(backend, state(service("web", "10.96.0.10", [ep(topo, p) for p in "abc"])))
    answers = [topo.tcp(topo.client, "10.96.0.10", 80) for _ in range(TRIES)]
    assert {pod for pod, _ in answers} == {"a", "b", "c"}
    assert {src for _, src in answers} == {NODE_IP}  # client is off-cluster: SNAT to the node


def test_pod_to_its_own_service_hairpins_with_masquerade(topo, backend):
    sync(backend, state(service("self", "10.96.0.11", [ep(topo, "a")])))
    pod, src = topo.tcp(topo.pods["a"].netns, "10.96.0.11", 80)
    assert pod == "a" and src != topo.pods["a"].ip


def test_pod_client_keeps_its_source_address(topo, backend):
    sync(backend, state(service("keep", "10.96.0.12", [ep(topo, "b")])))
    assert topo.tcp(topo.pods["a"].netns, "10.96.0.12", 80) == ("b", topo.pods["a"].ip)


def test_udp_and_nodeport(topo, backend):
    sync(backend, state(service("dns", "10.96.0.13", [ep(topo, "c")], port=53, protocol="UDP", node_port=30053),
                        service("np", "10.96.0.14", [ep(topo, "d")], node_port=30080)))
    assert topo.udp(topo.client, "10.96.0.13", 53)[0] == "c"
    assert topo.udp(topo.client, NODE_IP, 30053)[0] == "c"
    assert topo.tcp(topo.client, NODE_IP, 30080) == ("d", NODE_IP)


def test_service_without_endpoints_is_refused(topo, backend):
    sync(backend, state(service("empty", "10.96.0.15", []), service("emptynp", "10.96.0.16", [], node_port=30081)))
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, "10.96.0.15", 80, timeout=3)
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, NODE_IP, 30081, timeout=3)
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.node, "10.96.0.15", 80, timeout=3)


@pytest.fixture
def addresses_behind_pod_e(topo):
    """Pod e also answers on an unallocated ClusterIP, on a Service's ClusterIP and on an
    address outside the Service CIDR (routed from the node), so traffic kproxy lets through
    reaches a real server and traffic it drops or rejects does not."""
    extra = ("10.96.0.99", "10.96.0.17", "192.0.2.50")
    pod = topo.pods["e"]
    host_if = f"vp{PODS.index('e')}"
    try:
        for ip in extra:
            topo.run(pod.netns, ["ip", "addr", "add", f"{ip}/32", "dev", "eth0"])
            topo.run(topo.node, ["ip", "route", "add", f"{ip}/32", "dev", host_if])
        yield extra
    finally:
        for ip in extra:
            topo.run(topo.node, ["ip", "route", "del", f"{ip}/32"], check=False)
            topo.run(pod.netns, ["ip", "addr", "del", f"{ip}/32", "dev", "eth0"], check=False)


def test_cluster_ip_wrong_port_is_refused_and_unallocated_service_ips_dropped(topo, backend, addresses_behind_pod_e):
    unallocated, cluster_ip, outside = addresses_behind_pod_e
    sync(backend, state(service("web", cluster_ip, [ep(topo, "a")]), service_cidrs=("10.96.0.0/12",)))
    assert topo.tcp(topo.client, cluster_ip, 80)[0] == "a"
    # kproxy rules trace over the kernel's own listing says what the packets below meet
    listing = Dump(nft_list(topo))
    for dst, port, outcome in ((cluster_ip, 8080, "REJECT"), (unallocated, 8080, "DROP"), (outside, 8080, "ACCEPT")):
        report = NftablesAdapter().trace(listing, Probe("tcp", CLIENT_IP, 0, dst, port), [NODE_IP])
        assert [c.outcome for c in report.candidates] == [outcome], (dst, report)
    # a port the Service lacks: rejected (not passed on to the host that has the address)
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, cluster_ip, 8080, timeout=3)
    with pytest.raises(ConnectionRefusedError):
        topo.udp(topo.client, cluster_ip, 8080, timeout=3)
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.node, cluster_ip, 8080, timeout=3)
    # an unallocated address of the Service CIDR: dropped, no answer at all
    with pytest.raises(TimeoutError):
        topo.tcp(topo.client, unallocated, 8080, timeout=1.5)
    with pytest.raises((TimeoutError, PermissionError)):  # dropped in output: EPERM to the caller
        topo.tcp(topo.node, unallocated, 8080, timeout=1.5)
    # outside the Service CIDR: not ours, untouched
    assert topo.tcp(topo.client, outside, 8080) == ("e", CLIENT_IP)
    assert topo.tcp(topo.node, outside, 8080)[0] == "e"
    # without a Service CIDR only the wrong-port check stays
    sync(backend, state(service("web", cluster_ip, [ep(topo, "a")])))
    assert topo.tcp(topo.client, unallocated, 8080) == ("e", CLIENT_IP)
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, cluster_ip, 8080, timeout=3)


def test_external_policy_local_keeps_client_address_and_only_local_endpoints(topo, backend):
    eps = [ep(topo, "a", local=True), ep(topo, "b", local=False)]
    sync(backend, state(service("local", "10.96.0.17", eps, node_port=30082, external_policy_local=True,
                                external_ips=("192.0.2.7",))))
    assert {topo.tcp(topo.client, NODE_IP, 30082) for _ in range(10)} == {("a", CLIENT_IP)}
    assert {topo.tcp(topo.client, "192.0.2.7", 80) for _ in range(10)} == {("a", CLIENT_IP)}


def test_session_affinity_sticks_to_one_endpoint(topo, backend):
    sync(backend, state(service("sticky", "10.96.0.18", [ep(topo, p) for p in "abc"],
                                session_affinity_timeout=600)))
    assert len(pods_reached(topo, topo.client, "10.96.0.18", 80, tries=20)) == 1


def test_a_changed_affinity_timeout_reaches_the_kernel_in_a_partial_sync(topo, backend):
    sp = service("aff", "10.96.0.29", [ep(topo, "a")], session_affinity_timeout=60)
    first = sync(backend, state(sp))
    assert "timeout 1m" in nft_list(topo)
    sync(backend, state(replace(sp, session_affinity_timeout=120)), previous=first, full=False)
    text = nft_list(topo)
    assert "timeout 2m" in text and "timeout 1m" not in text


def test_load_balancer_source_ranges_drop_other_sources(topo, backend):
    sync(backend, state(service("lb", "10.96.0.19", [ep(topo, "a")], load_balancer_ips=("198.51.100.9",),
                                load_balancer_source_ranges=("10.200.0.2/32",)),
                        service("lb2", "10.96.0.20", [ep(topo, "b")], load_balancer_ips=("198.51.100.10",),
                                load_balancer_source_ranges=("10.9.0.0/16",))))
    assert topo.tcp(topo.client, "198.51.100.9", 80)[0] == "a"
    with pytest.raises((TimeoutError, OSError)):
        topo.tcp(topo.client, "198.51.100.10", 80, timeout=1.5)


# ------------------------------------------------------------------ sync behaviour


def test_partial_sync_changes_one_service_and_matches_a_full_sync(topo, backend):
    a = service("one", "10.96.0.21", [ep(topo, "a")])
    b = service("two", "10.96.0.22", [ep(topo, "b")])
    first = sync(backend, state(a, b))
    b2 = replace(b, endpoints=(ep(topo, "c"), ep(topo, "d")))
    second = sync(backend, state(a, b2), previous=first, full=False)
    assert second.fragments[a.key] is first.fragments[a.key]
    assert pods_reached(topo, topo.client, "10.96.0.22", 80) == {"c", "d"}
    partial_text = nft_list(topo)
    backend.cleanup()
    sync(backend, state(a, b2))
    assert _sorted_lines(nft_list(topo)) == _sorted_lines(partial_text)
    # removing a Service removes its chains and map entries
    sync(backend, state(a), previous=second, full=False)
    text = nft_list(topo)
    assert "default/two/" not in text and "10.96.0.22" not in text
    assert topo.tcp(topo.client, "10.96.0.21", 80)[0] == "a"


def _sorted_lines(text: str) -> list[str]:
    """The listing's lines without counters (traffic moved them), in order."""
    return sorted(re.sub(r" counter packets \d+ bytes \d+", "", line).strip().rstrip(",")
                  for line in text.splitlines())


def test_a_pod_behind_two_services_keeps_hairpin_while_either_holds_it(topo, backend):
    """@hairpin is shared: "a . a" must outlive its removal from one Service while the other
    still sends a to itself (a partial sync that forgot the other holder would break it)."""
    one = service("hp1", "10.96.0.40", [ep(topo, "a")])
    two = service("hp2", "10.96.0.41", [ep(topo, "a")])
    first = sync(backend, state(one, two))
    assert "10.244.1.2 . 10.244.1.2" in nft_list(topo)
    second = sync(backend, state(replace(one, endpoints=(ep(topo, "b"),)), two), previous=first, full=False)
    pod, src = topo.tcp(topo.pods["a"].netns, "10.96.0.41", 80)
    assert pod == "a" and src != topo.pods["a"].ip  # still masqueraded: a reached itself
    sync(backend, state(replace(one, endpoints=(ep(topo, "b"),))), previous=second, full=False)
    text = nft_list(topo)
    assert "10.244.1.2 . 10.244.1.2" not in text and "10.244.1.3 . 10.244.1.3" in text


def test_full_sync_is_idempotent_and_repairs_drift(topo, backend):
    st = state(service("drift", "10.96.0.23", [ep(topo, "a")]))
    sync(backend, st)
    before = nft_list(topo)
    topo.run(topo.node, ["nft", "flush", "chain", "ip", "kproxy", "services"])
    topo.run(topo.node, ["nft", "add", "chain", "ip", "kproxy", "leftover"])
    with pytest.raises((TimeoutError, OSError)):
        topo.tcp(topo.client, "10.96.0.23", 80, timeout=1.5)
    sync(backend, st)
    sync(backend, st)
    assert nft_list(topo) == before
    assert topo.tcp(topo.client, "10.96.0.23", 80)[0] == "a"


def test_nft_lists_the_rules_we_meant(topo, backend):
    st = state(service("shown", "10.96.0.24", [ep(topo, "a"), ep(topo, "b")], node_port=30090,
                       session_affinity_timeout=10800),
               service("plain", "10.96.0.29", [ep(topo, "c"), ep(topo, "d")], port=53, protocol="UDP"),
               service("gone", "10.96.0.25", []))
    ruleset = sync(backend, st)
    listed = _chains_in_listing(nft_list(topo))
    assert set(listed) == set(ruleset.chains)
    for name, chain in ruleset.chains.items():
        assert listed[name] == [r.text for r in chain.rules], name


def test_nft_lists_the_maglev_rules_we_meant(topo):
    with open_backend(topo.node, MAGLEV) as b:
        st = state(service("mag", "10.96.0.46", [ep(topo, "a"), ep(topo, "b")]),
                   service("magudp", "10.96.0.47", [ep(topo, "c")], port=53, protocol="UDP"),
                   service("magaff", "10.96.0.48", [ep(topo, "d")], session_affinity_timeout=60))
        ruleset = sync(b, st)
        listed = _chains_in_listing(nft_list(topo))
        for name, chain in ruleset.chains.items():
            assert listed[name] == [r.text for r in chain.rules], name


def _chains_in_listing(text: str) -> dict[str, list[str]]:
    chains: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("chain "):
            current = line.split()[1]
            chains[current] = []
        elif line == "}":
            current = None
        elif current is not None and line and not line.startswith("type "):
            chains[current].append(line)
    return chains


def test_failed_batch_changes_nothing_and_names_the_operation(topo, backend):
    sync(backend, state(service("keep", "10.96.0.26", [ep(topo, "a")])))
    before = nft_list(topo)
    tx = Transaction()
    tx.flush_chain("services")
    tx.delete_chain("no-such-chain")
    with pytest.raises(ApplyError, match="delete chain no-such-chain"):
        backend._commit(tx)
    assert nft_list(topo) == before
    assert topo.tcp(topo.client, "10.96.0.26", 80)[0] == "a"


def test_cleanup_removes_only_our_table(topo, backend):
    topo.run(topo.node, ["nft", "add", "table", "ip", "someone-else"])
    try:
        sync(backend, state(service("c", "10.96.0.27", [ep(topo, "a")])))
        backend.cleanup()
        tables = topo.run(topo.node, ["nft", "list", "tables"]).stdout
        assert "kproxy" not in tables and "someone-else" in tables
        assert backend.inspect().exists is False
    finally:
        topo.run(topo.node, ["nft", "delete", "table", "ip", "someone-else"], check=False)


def test_inspect_reads_the_table_back(topo, backend):
    ruleset = sync(backend, state(service("i", "10.96.0.28", [ep(topo, "a"), ep(topo, "b")])))
    seen = backend.inspect()
    assert seen.exists
    assert seen.chains == {name: len(c.rules) for name, c in ruleset.chains.items()}
    assert seen.sets["service-ips"] == 1
    assert seen.hooks["nat-prerouting"] == ("nat", 0, -100)


def test_maglev_removing_one_of_five_endpoints_moves_only_its_clients(topo):
    with open_backend(topo.node, MAGLEV) as b:
        eps = [ep(topo, p) for p in PODS]
        first = sync(b, state(service("mag", "10.96.0.30", eps)))
        ports = range(20000, 20120)

        before = {p: _tcp_from(topo, "10.96.0.30", p) for p in ports}
        assert len(set(before.values())) == 5
        topo.run(topo.node, ["conntrack", "-F"], check=False)
        sync(b, state(service("mag", "10.96.0.30", [e for e in eps if e.ip != topo.pods["c"].ip])),
             previous=first, full=False)
        after = {p: _tcp_from(topo, "10.96.0.30", p) for p in ports}
        moved_others = [p for p in ports if before[p] != after[p] and before[p] != "c"]
        assert "c" not in after.values()
        # Maglev moves little more than the removed endpoint's share: with 251 slots, 5 -> 4
        # endpoints, about 4 slots besides c's 50; random selection would move ~4/5 of all.
        assert len(moved_others) <= len(ports) // 10, (len(moved_others), before, after)


def test_trace_names_the_endpoint_maglev_picks_for_a_client_port(topo):
    """`kproxy rules trace --src IP:PORT` in maglev mode computes the kernel's jhash of the
    client (nftables/jhash.py): the endpoint it names is the one that answers."""
    from kproxy.rules.nftables import Dump, NftablesAdapter
    from kproxy.rules.trace import Probe
    with open_backend(topo.node, MAGLEV) as b:
        sync(b, state(service("magtrace", "10.96.0.49", [ep(topo, p) for p in PODS])))
        dump = Dump(nft_list(topo))
        by_ip = {pod.ip: name for name, pod in topo.pods.items()}
        predicted, answered = {}, {}
        for port in range(21000, 21030):
            report = NftablesAdapter().trace(dump, Probe("tcp", CLIENT_IP, port, "10.96.0.49", 80), [NODE_IP])
            (only,) = report.candidates
            assert only.probability == pytest.approx(1.0)
            predicted[port] = by_ip[only.outcome.rsplit(":", 1)[0]]
            answered[port] = _tcp_from(topo, "10.96.0.49", port)
        assert predicted == answered
        assert len(set(answered.values())) >= 3  # the ports really spread over the endpoints
        anyport = NftablesAdapter().trace(dump, Probe("tcp", CLIENT_IP, 0, "10.96.0.49", 80), [NODE_IP])
        assert sum(c.probability for c in anyport.candidates) == pytest.approx(1.0) and len(anyport.candidates) == 5


def _tcp_from(topo, ip: str, source_port: int) -> str:
    """The pod answering a TCP connection from the client's fixed source port."""
    return topo.tcp(topo.client, ip, 80, source=CLIENT_IP, source_port=source_port)[0]


def test_switching_affinity_on_and_off_replaces_the_services_map_in_a_partial_sync(topo, backend):
    """The balancing map changes kind (endpoint data map <-> verdict map of endpoint chains):
    the kernel refuses to re-declare a set under its name, so the plan deletes and re-creates
    it in the same batch (a lab agent once failed every sync on this)."""
    plain = service("aff", "10.96.0.42", [ep(topo, p) for p in "abc"])
    first = sync(backend, state(plain))
    sticky = replace(plain, session_affinity_timeout=600)
    second = sync(backend, state(sticky), previous=first, full=False)
    assert len(pods_reached(topo, topo.client, "10.96.0.42", 80, tries=10)) == 1
    third = sync(backend, state(plain), previous=second, full=False)
    assert pods_reached(topo, topo.client, "10.96.0.42", 80) == {"a", "b", "c"}
    assert "chain endpoint-" not in nft_list(topo) and "affinity-" not in nft_list(topo)
    assert third.sets == first.sets


def test_a_full_sync_recreates_a_set_of_another_kind_and_keeps_the_rest(topo, backend):
    sp = service("kind", "10.96.0.43", [ep(topo, "a"), ep(topo, "b")])
    ruleset = sync(backend, state(sp))
    chains, sets = backend._run(backend._list_names)
    # what the kernel reports of each set is what the plan expects: nothing to re-create
    assert not [op.description for op in plan_full(ruleset, chains, sets).ops if op.description.startswith("delete set")]
    # the same name, another kind, used by a rule (as an older layout or a hand edit leaves it)
    topo.run(topo.node, ["nft", "delete", "table", "ip", "kproxy"])
    for cmd in (["add", "table", "ip", "kproxy"],
                ["add", "map", "ip", "kproxy", "endpoints-0", "{ type mark : verdict; }"],
                ["add", "chain", "ip", "kproxy", "old"],
                ["add", "rule", "ip", "kproxy", "old", "meta", "mark", "vmap", "@endpoints-0"]):
        topo.run(topo.node, ["nft", *cmd])
    sync(backend, state(sp))
    assert pods_reached(topo, topo.client, "10.96.0.43", 80) == {"a", "b"}
    chains, now = backend._run(backend._list_names)
    assert now["endpoints-0"] == sets["endpoints-0"] and "old" not in chains


def test_a_full_sync_of_an_unchanged_kernel_sends_only_the_differences(topo, backend):
    """The periodic full sync: when the kernel's ruleset generation is still the one our last
    commit left, nothing was committed since and only differences are sent; any other commit
    (here: another table) makes it a real rewrite."""
    st = state(service("gen", "10.96.0.44", [ep(topo, "a")]))
    ruleset = sync(backend, st)
    result = backend.apply(backend.render(st), None)
    assert result.full and result.objects_written == 0 and "unchanged" in result.detail
    grown = state(service("gen", "10.96.0.44", [ep(topo, "a"), ep(topo, "b")]))
    result = backend.apply(render(backend, grown, ruleset), None)
    assert 0 < result.objects_written < 10 and "unchanged" in result.detail
    assert pods_reached(topo, topo.client, "10.96.0.44", 80) == {"a", "b"}
    topo.run(topo.node, ["nft", "add", "table", "ip", "someone-else"])
    try:
        result = backend.apply(backend.render(grown), None)
        assert result.objects_written > 10 and "unchanged" not in result.detail
        assert pods_reached(topo, topo.client, "10.96.0.44", 80) == {"a", "b"}
    finally:
        topo.run(topo.node, ["nft", "delete", "table", "ip", "someone-else"], check=False)


def test_a_batch_bound_to_an_old_generation_is_refused_and_retried(topo, backend):
    """NFNL_BATCH_GENID: the kernel refuses a batch whose generation moved on (ERESTART); the
    backend reads the generation again and resends."""
    from kproxy.nftables.nlsocket import NftSocket as NetlinkSocket
    sync(backend, state(service("g", "10.96.0.45", [ep(topo, "a")])))

    def stale_batch() -> int:
        sock = NetlinkSocket()
        try:
            tx = Transaction()
            tx.add_table()
            stale = sock.generation() - 1
            first = sock.seq
            data, _, last = tx.encode(first, stale)
            return sock.send_batch(data, first, last)[0].errno
        finally:
            sock.close()
    import errno
    assert backend._run(stale_batch) == errno.ERESTART
    # the backend's own commit after someone else's: its first try is refused the same way
    first = sync(backend, state(service("g", "10.96.0.45", [ep(topo, "a")])))
    real_generation, real_send = NetlinkSocket.generation, NetlinkSocket.send_batch
    reads, answers = [], []

    def lagging(sock):  # the first read misses a commit that lands just after it
        reads.append(1)
        return real_generation(sock) - (1 if len(reads) == 1 else 0)

    def send(sock, *args):
        errors = real_send(sock, *args)
        answers.append([e.errno for e in errors])
        return errors
    NetlinkSocket.generation, NetlinkSocket.send_batch = lagging, send
    try:
        sync(backend, state(service("g", "10.96.0.45", [ep(topo, "b")])), previous=first, full=False)
    finally:
        NetlinkSocket.generation, NetlinkSocket.send_batch = real_generation, real_send
    assert answers == [[errno.ERESTART], []]  # refused once, then committed
    assert topo.tcp(topo.client, "10.96.0.45", 80)[0] == "b"
