"""The iptables backend with real rules and real packets, in namespaces (tests/kernel/topology.py),
for both iptables-nft and iptables-legacy."""
from __future__ import annotations

from dataclasses import replace

import pytest

from kproxy.agent.backend import ApplyError
from kproxy.agent.state import ProxyState
from kproxy.iptables import names
from kproxy.iptables.backend import IptablesBackend
from kproxy.iptables.driver import Iptables
from tests.kernel.backends import config_for, render, sync
from tests.kernel.topology import CLIENT_IP, NODE_IP, ep, pods_reached, service, single_node, state

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b", "c", "d"], tag="iptk") as topology:
        yield topology


@pytest.fixture(params=["nft", "legacy"])
def mode(request):
    return request.param  # the backend fixture (tests/kernel/conftest.py): iptables with this variant


def save(backend) -> list[str]:
    out = backend.netns.command([backend.variant.save]).stdout
    return [line for line in out.splitlines() if not line.startswith("#")]


# ------------------------------------------------------------------ traffic


def test_cluster_ip_tcp_reaches_every_endpoint_and_masquerades_off_cluster_clients(topo, backend):
    sync(backend, state(service("web", "10.96.0.10", [ep(topo, "a"), ep(topo, "b"), ep(topo, "c")])))
    assert pods_reached(topo, topo.client, "10.96.0.10", 80) == {"a", "b", "c"}
    # the client is outside the cluster CIDR: masqueraded to the node's address
    assert topo.tcp(topo.client, "10.96.0.10", 80)[1] == NODE_IP
    # a pod keeps its own address (no SNAT inside the cluster)
    pod, seen = topo.tcp(topo.pods["d"].netns, "10.96.0.10", 80)
    assert seen == topo.pods["d"].ip


def test_cluster_ip_udp(topo, backend):
    sync(backend, state(service("dns", "10.96.0.53", [ep(topo, "a"), ep(topo, "b")], port=53, protocol="UDP")))
    assert pods_reached(topo, topo.client, "10.96.0.53", 53, tries=30, proto="udp") == {"a", "b"}


def test_nodeport_and_external_ip(topo, backend):
    svc = service("np", "10.96.0.20", [ep(topo, "a"), ep(topo, "b")], node_port=30080,
                  external_ips=("192.0.2.10",))
    sync(backend, state(svc))
    assert pods_reached(topo, topo.client, NODE_IP, 30080) == {"a", "b"}
    assert pods_reached(topo, topo.client, "192.0.2.10", 80) == {"a", "b"}
    # localhost NodePort from the node itself (route_localnet set by the backend)
    assert topo.tcp(topo.node, "127.0.0.1", 30080)[0] in {"a", "b"}


def test_service_without_endpoints_is_refused_not_timed_out(topo, backend):
    sync(backend, state(service("empty", "10.96.0.24", [], node_port=30083),
                        service("empty-udp", "10.96.0.24", [], port=53, protocol="UDP")))
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, "10.96.0.24", 80, timeout=5)
    with pytest.raises(ConnectionRefusedError):
        topo.tcp(topo.client, NODE_IP, 30083, timeout=5)
    with pytest.raises(ConnectionRefusedError):  # ICMP port unreachable reaches the UDP socket
        topo.udp(topo.client, "10.96.0.24", 53, timeout=5)


def test_session_affinity_sticks(topo, backend):
    sync(backend, state(service("sticky", "10.96.0.23", [ep(topo, "a"), ep(topo, "b"), ep(topo, "c")],
                                session_affinity_timeout=300)))
    assert len(pods_reached(topo, topo.client, "10.96.0.23", 80, tries=15)) == 1


def test_hairpin_pod_reaches_itself_through_its_service(topo, backend):
    sync(backend, state(service("self", "10.96.0.30", [ep(topo, "a")])))
    pod, seen = topo.tcp(topo.pods["a"].netns, "10.96.0.30", 80)
    assert pod == "a"
    assert seen != topo.pods["a"].ip  # masqueraded, or the reply would bypass the DNAT


def test_external_traffic_policy_local_reaches_only_local_endpoints_and_keeps_source(topo, backend):
    svc = service("etp", "10.96.0.21", [ep(topo, "a"), ep(topo, "b", local=False)], node_port=30081,
                  external_policy_local=True)
    sync(backend, state(svc))
    assert pods_reached(topo, topo.client, NODE_IP, 30081, tries=20) == {"a"}
    assert topo.tcp(topo.client, NODE_IP, 30081)[1] == CLIENT_IP
    # cluster IP traffic still uses every endpoint
    assert pods_reached(topo, topo.client, "10.96.0.21", 80) == {"a", "b"}


def test_internal_traffic_policy_local_without_local_endpoints_drops(topo, backend):
    sync(backend, state(service("itp", "10.96.0.22", [ep(topo, "b", local=False)], internal_policy_local=True)))
    with pytest.raises(TimeoutError):
        topo.tcp(topo.client, "10.96.0.22", 80, timeout=1)


# ------------------------------------------------------------------ sync behaviour


def test_partial_sync_applies_only_the_change(topo, backend):
    web = service("web", "10.96.0.10", [ep(topo, "a"), ep(topo, "b"), ep(topo, "c")])
    other = service("other", "10.96.0.11", [ep(topo, "d")])
    first = sync(backend, state(web, other))
    scaled = replace(web, endpoints=(ep(topo, "c"),))
    added = service("added", "10.96.0.12", [ep(topo, "b")])
    second = render(backend, state(scaled, other, added), first)
    result = backend.apply(second, first)
    assert not result.full
    assert pods_reached(topo, topo.client, "10.96.0.10", 80, tries=10) == {"c"}
    assert topo.tcp(topo.client, "10.96.0.12", 80)[0] == "b"
    assert topo.tcp(topo.client, "10.96.0.11", 80)[0] == "d"
    # the kernel now holds exactly what a full sync of the new state writes
    partial = save(backend)
    backend.apply(second, None)
    assert save(backend) == partial


def test_full_restore_is_idempotent(topo, backend):
    st = state(service("web", "10.96.0.10", [ep(topo, "a"), ep(topo, "b")], node_port=30080),
               service("sctp", "10.96.0.12", [ep(topo, "c")], protocol="SCTP", session_affinity_timeout=60),
               service("lb", "10.96.0.13", [ep(topo, "c", local=False)], node_port=30081, external_policy_local=True,
                       load_balancer_ips=("198.51.100.7",), load_balancer_source_ranges=("10.0.0.0/8",)))
    ruleset = sync(backend, st)
    once = save(backend)
    backend.apply(ruleset, None)
    assert save(backend) == once
    assert sum(1 for line in once if "-j KUBE-SERVICES" in line and "-A PREROUTING" in line) == 1


def test_rules_deleted_by_hand_come_back_on_the_next_full_sync(topo, backend):
    svc = service("web", "10.96.0.10", [ep(topo, "a")])
    ruleset = sync(backend, state(svc))
    before = save(backend)
    ipt = [backend.variant.iptables, "-t", "nat"]
    backend.netns.command(ipt + ["-F", names.cluster_chain(svc)])
    backend.netns.command(ipt + ["-D", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals",
                                 "-j", "KUBE-SERVICES"])
    with pytest.raises(TimeoutError):
        topo.tcp(topo.client, "10.96.0.10", 80, timeout=1)
    backend.apply(ruleset, None)
    assert sorted(save(backend)) == sorted(before)
    assert topo.tcp(topo.client, "10.96.0.10", 80)[0] == "a"


def test_stale_chains_from_an_earlier_agent_are_removed_by_a_full_sync(topo, backend):
    old = service("old", "10.96.0.40", [ep(topo, "a")])
    sync(backend, state(old))
    fresh = IptablesBackend(backend.netns, backend.config)  # a restarted agent: no previous ruleset
    fresh.apply(fresh.render(state()), None)
    assert not any(names.cluster_chain(old) in line for line in save(backend))


def test_cleanup_leaves_iptables_save_as_before(topo, backend):
    ipt = [backend.variant.iptables, "-w", "5"]
    foreign = [["-t", "nat", "-A", "POSTROUTING", "-s", "10.9.9.0/24", "-j", "MASQUERADE"],
               ["-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "2222", "-j", "ACCEPT"],
               ["-t", "filter", "-A", "FORWARD", "-p", "tcp", "--dport", "2223", "-j", "ACCEPT"]]
    for rule in foreign:
        backend.netns.command(ipt + rule)
    before = save(backend)
    sync(backend, state(service("web", "10.96.0.10", [ep(topo, "a")], node_port=30080)))
    assert save(backend) != before
    backend.cleanup()
    assert save(backend) == before
    for rule in foreign:  # leave the namespace clean for the next test
        backend.netns.command(ipt + [rule[0], rule[1], "-D"] + rule[3:])


def test_failed_restore_raises_apply_error_naming_the_rule_and_changes_nothing(topo, backend):
    st = state(service("web", "10.96.0.10", [ep(topo, "a")]))
    ruleset = sync(backend, st)
    before = save(backend)
    static = dict(ruleset.static)
    static[("nat", names.KUBE_MARK_MASQ)] = ("-m nosuchmatch -j ACCEPT",)
    broken = replace(ruleset, static=static)
    with pytest.raises(ApplyError) as err:
        backend.apply(broken, ruleset)
    assert "nosuchmatch" in str(err.value) and "line" in str(err.value)
    assert save(backend) == before


def test_auto_backend_follows_the_variant_that_holds_kube_chains(topo, backend):
    sync(backend, state(service("web", "10.96.0.10", [ep(topo, "a")])))
    auto = IptablesBackend(backend.netns, config_for("iptables-auto"))
    assert auto.variant == backend.variant
    assert auto.inspect().view.chains["nat"].keys() >= {"KUBE-SERVICES", names.cluster_chain(
        service("web", "10.96.0.10"))}


def test_inspect_reports_our_chains_jumps_and_counters(topo, backend):
    sync(backend, state(service("web", "10.96.0.10", [ep(topo, "a")])))
    topo.tcp(topo.client, "10.96.0.10", 80)
    seen = backend.inspect()
    assert seen.variant == backend.variant.name
    dispatch = seen.view.chains["nat"]["KUBE-SERVICES"]
    assert any(rule.packets >= 1 for rule in dispatch if "10.96.0.10" in rule.text)
    assert {(t, c) for t, c, _ in seen.view.jumps} >= {("nat", "PREROUTING"), ("nat", "OUTPUT"),
                                                      ("nat", "POSTROUTING"), ("filter", "FORWARD")}
    assert all(not c.startswith(("PREROUTING", "INPUT")) for t in seen.view.chains for c in seen.view.chains[t])


def test_load_balancer_source_ranges(topo, backend):
    lb = service("lb", "10.96.0.25", [ep(topo, "a")], node_port=30084, load_balancer_ips=("198.51.100.10",),
                 load_balancer_source_ranges=("203.0.113.0/24",))
    first = sync(backend, state(lb))
    with pytest.raises(TimeoutError):  # the client 10.200.0.2 is outside the allowed range: dropped
        topo.tcp(topo.client, "198.51.100.10", 80, timeout=1)
    assert topo.tcp(topo.client, NODE_IP, 30084)[0] == "a"  # NodePorts ignore source ranges
    allowed = replace(lb, load_balancer_source_ranges=("203.0.113.0/24", "10.200.0.0/24"))
    backend.apply(render(backend, state(allowed), first), first)
    assert topo.tcp(topo.client, "198.51.100.10", 80)[0] == "a"


def test_masquerade_all_snats_pod_traffic_too(topo, backend):
    sync(backend, state(service("web", "10.96.0.10", [ep(topo, "a")]), masquerade_all=True))
    pod, seen = topo.tcp(topo.pods["d"].netns, "10.96.0.10", 80)
    assert pod == "a" and seen != topo.pods["d"].ip


def _random_state(topo, rng) -> ProxyState:
    pods = sorted(topo.pods)
    services = []
    for i in range(rng.randint(0, 5)):
        eps = [ep(topo, p, local=rng.random() < 0.7, ready=rng.random() < 0.8)
               for p in rng.sample(pods, rng.randint(0, len(pods)))]
        services.append(service(f"s{i}", f"10.96.2.{i + 1}", eps, port=rng.choice([80, 81]),
                                node_port=rng.choice([0, 30100 + i]),
                                external_policy_local=rng.random() < 0.3,
                                session_affinity_timeout=rng.choice([None, 30])))
    return state(*services)


def test_sequence_of_partial_syncs_matches_full_syncs_in_the_kernel(topo, backend):
    import random
    rng = random.Random(20261201)
    previous = sync(backend, _random_state(topo, rng))
    for _ in range(6):
        ruleset = render(backend, _random_state(topo, rng), previous)
        backend.apply(ruleset, previous)
        after_partial = save(backend)
        backend.apply(ruleset, None)
        assert save(backend) == after_partial
        previous = ruleset


def test_tracing_the_kernels_rules_gives_the_rendered_outcomes(backend):
    """What the kernel holds (read back with iptables-save) routes every fixture case exactly as
    the rendered ruleset does: the kernel applied our rules with their meaning intact."""
    from kproxy.iptables.trace import Tracer, kernel_chains
    from tests.golden import iptables_services as fx
    from tests.flows.cases import FIXTURE_CASES as CASES
    rendered = sync(backend, fx.state())
    kernel = Tracer(kernel_chains(backend.inspect().view), local_addresses=[fx.NODE_IP])
    model = Tracer(rendered, local_addresses=[fx.NODE_IP])
    for case, src, dst, dport, proto, expected, _ in CASES:
        got, want = kernel.trace(src, dst, dport, proto), model.trace(src, dst, dport, proto)
        assert set(got.outcomes) == expected, case
        assert got.masquerade == want.masquerade, case
        for outcome, p in want.outcomes.items():
            assert got.outcomes[outcome] == pytest.approx(p, abs=1e-6), case


# ------------------------------------------------------------------ conntrack

def test_a_connection_attempt_older_than_the_rules_is_released_by_the_agents_cleanup(topo, backend):
    """A client SYN that reaches the node before the Service's rules is routed as plain traffic
    (here back to the client, which drops it, as a default gateway would); its conntrack entry
    keeps every retransmission untranslated after the rules arrive, until the agent's cleanup
    (kproxy.agent.conntrack.flush_unanswered) deletes it."""
    from kproxy.agent import conntrack

    vip, port = "10.96.0.77", 40777
    other = service("other", "10.96.0.78", [ep(topo, "b")])
    st = state(other, service("early", vip, [ep(topo, "a")]))
    # the node already proxies another Service (so its namespace tracks connections)
    previous = sync(backend, state(other))
    topo.run(topo.node, ["ip", "route", "add", "10.96.0.0/12", "via", CLIENT_IP])
    try:
        with pytest.raises(TimeoutError):
            topo.tcp(topo.client, vip, 80, timeout=1.5, source_port=port)  # before the rules
        sync(backend, st, previous)
        with pytest.raises(TimeoutError):  # the rules are in, yet this client port is stuck
            topo.tcp(topo.client, vip, 80, timeout=2.5, source_port=port)
        assert topo.tcp(topo.client, vip, 80)[0] == "a"  # any other port works
        assert conntrack.flush_unanswered(backend.netns, conntrack.plan_unanswered(state(other), st)) == 1
        assert topo.tcp(topo.client, vip, 80, source_port=port)[0] == "a"
    finally:
        topo.run(topo.node, ["ip", "route", "del", "10.96.0.0/12", "via", CLIENT_IP], check=False)


def test_restore_in_small_commit_sections_programs_the_same_rules(topo, backend):
    """iptables-nft writes big tables in COMMIT sections (restore.py); with sections of 3
    chains the kernel ends up holding exactly what one section per table gives, and it serves."""
    from dataclasses import replace as dc_replace

    st = state(service("web", "10.96.0.10", [ep(topo, "a"), ep(topo, "b")], node_port=30080),
               service("api", "10.96.0.11", [ep(topo, "c")]))
    sync(backend, st)
    whole = sorted(save(backend))
    backend.cleanup()
    backend._driver = Iptables(backend.netns, dc_replace(backend.variant, chains_per_commit=3))
    ruleset = sync(backend, st)
    assert sorted(save(backend)) == whole
    assert pods_reached(topo, topo.client, "10.96.0.10", 80) == {"a", "b"}
    changed = state(service("web", "10.96.0.10", [ep(topo, "a")], node_port=30080),
                    service("api", "10.96.0.11", [ep(topo, "c"), ep(topo, "d")]))
    sync(backend, changed, ruleset, full=False)
    assert pods_reached(topo, topo.client, "10.96.0.11", 80) == {"c", "d"}
    assert pods_reached(topo, topo.client, "10.96.0.10", 80) == {"a"}
