"""Properties of the iptables renderer and the restore text it produces."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kproxy.agent.policy import categorize
from kproxy.agent.state import Changes, Endpoint, ProxyState, ServicePort, changes_between
from kproxy.iptables import names
from kproxy.iptables.render import probability, render
from kproxy.iptables.restore import full_restore, partial_restore
from kproxy.iptables.trace import Tracer
from tests.golden import iptables_services as fx

BUILTIN_TARGETS = {"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "MARK", "MASQUERADE"}


# ------------------------------------------------------------------ a model of iptables-restore --noflush

def apply_restore(kernel: dict[tuple[str, str], list[str]], text: str) -> None:
    """Applies restore text to `kernel` with --noflush semantics, failing like the real tool:
    -X of a chain that still holds rules or is still referenced, -A to an undeclared chain."""
    table = None
    staged = None
    for line in text.splitlines():
        if line.startswith("*"):
            table, staged = line[1:], {k: list(v) for k, v in kernel.items()}
        elif line.startswith(":"):
            staged[(table, line[1:].split()[0])] = []
        elif line.startswith("-A "):
            chain, _, rule = line[3:].partition(" ")
            assert (table, chain) in staged, f"-A to missing chain {chain}"
            staged[(table, chain)].append(rule)
        elif line.startswith("-X "):
            chain = line[3:]
            assert staged.get((table, chain)) == [], f"-X of non-empty chain {chain}"
            del staged[(table, chain)]
        elif line == "COMMIT":
            for (t, c), rules in staged.items():
                if t != table:
                    continue
                for rule in rules:
                    target = re.search(r"-j (\S+)", rule)
                    if target and target.group(1) not in BUILTIN_TARGETS:
                        assert (t, target.group(1)) in staged, f"{c} jumps to missing {target.group(1)}"
            kernel.clear()
            kernel.update(staged)
        else:
            raise AssertionError(f"unexpected line {line!r}")


# ------------------------------------------------------------------ strategies

ips = st.integers(min_value=2, max_value=60).map(lambda i: f"10.244.{1 + i % 2}.{i}")
endpoints = st.builds(Endpoint, ip=ips, port=st.sampled_from([8080, 9090]), ready=st.booleans(),
                      serving=st.booleans(), terminating=st.booleans(), is_local=st.booleans())


@st.composite
def service_ports(draw, index):
    eps = draw(st.lists(endpoints, max_size=6, unique_by=lambda e: (e.ip, e.port)))
    node_port = draw(st.sampled_from([0, 30000 + index]))
    lb = draw(st.sampled_from([(), (f"198.51.100.{index + 1}",)]))
    return ServicePort(
        namespace=draw(st.sampled_from(["default", "kube-system"])), name=f"svc{index}",
        port_name=draw(st.sampled_from(["", "http"])), protocol=draw(st.sampled_from(["TCP", "UDP", "SCTP"])),
        port=draw(st.sampled_from([80, 53, 443])), cluster_ips=(f"10.96.1.{index + 1}",),
        node_port=node_port, external_ips=draw(st.sampled_from([(), (f"192.0.2.{index + 1}",)])),
        load_balancer_ips=lb,
        load_balancer_source_ranges=draw(st.sampled_from([(), ("203.0.113.0/24",)])) if lb else (),
        session_affinity_timeout=draw(st.sampled_from([None, 60])),
        external_policy_local=draw(st.booleans()) and bool(node_port or lb),
        internal_policy_local=draw(st.booleans()),
        endpoints=tuple(sorted(eps)),
    )


@st.composite
def proxy_states(draw):
    count = draw(st.integers(min_value=0, max_value=6))
    sps = [draw(service_ports(i)) for i in range(count)]
    return ProxyState(node_name="n", node_ips=(fx.NODE_IP,), cluster_cidr=draw(st.sampled_from([fx.CLUSTER_CIDR, None])),
                      masquerade_all=draw(st.booleans()), services={s.key: s for s in sps})


# ------------------------------------------------------------------ tests

def test_chain_names_match_kube_proxy():
    kubernetes = ServicePort("default", "kubernetes", "https", "TCP", 443)
    dns = ServicePort("kube-system", "kube-dns", "dns", "UDP", 53)
    assert names.cluster_chain(kubernetes) == "KUBE-SVC-NPX46M4PTMTKRN6Y"  # as seen on real clusters
    assert names.cluster_chain(dns) == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert names.service_port_name(ServicePort("a", "b", "", "TCP", 1)) == "a/b"


def test_render_is_deterministic():
    a, b = render(fx.state()), render(fx.state())
    assert a == b
    assert full_restore(a) == full_restore(b)


@pytest.mark.parametrize("n", range(1, 13))
def test_probability_cascade_gives_every_endpoint_one_nth(n):
    # product of "not chosen earlier" and "chosen here" for endpoint i is 1/n
    for i in range(n):
        p = 1.0
        for j in range(i):
            p *= 1 - float(probability(n - j))
        if i < n - 1:
            p *= float(probability(n - i))
        assert p == pytest.approx(1 / n, abs=1e-9)
    eps = [Endpoint(f"10.244.1.{i + 2}", 80) for i in range(n)]
    sp = ServicePort("d", "s", "", "TCP", 80, cluster_ips=("10.96.0.1",), endpoints=tuple(eps))
    result = Tracer(render(fx.state([sp]))).trace(fx.LOCAL_POD, "10.96.0.1", 80)
    assert set(result.outcomes) == {e.address for e in eps}
    for value in result.outcomes.values():
        assert value == pytest.approx(1 / n, abs=1e-9)


def test_unchanged_fragments_are_reused_changed_ones_rerendered():
    first = render(fx.state())
    changed = replace(fx.SERVICES[0], endpoints=fx.SERVICES[0].endpoints[:1])
    services = [changed] + fx.SERVICES[1:]
    second = render(fx.state(services), first, Changes(full=False, services=frozenset({changed.key})))
    for key, frag in second.fragments.items():
        if key == changed.key:
            assert frag is not first.fragments[key]
        else:
            assert frag is first.fragments[key]


def test_context_change_rerenders_everything():
    first = render(fx.state())
    second = render(fx.state(masquerade_all=True), first, Changes(full=False))
    assert all(second.fragments[k] is not first.fragments[k] for k in first.fragments)


def test_partial_restore_mentions_only_changed_chains():
    first = render(fx.state())
    web = fx.SERVICES[0]
    changed = replace(web, endpoints=web.endpoints[:1])
    second = render(fx.state([changed] + fx.SERVICES[1:]), first, Changes(full=False, services=frozenset({web.key})))
    text = partial_restore(second, first)
    declared = set(re.findall(r"^:(\S+)", text, re.M))
    removed = {names.endpoint_chain(web, e) for e in web.endpoints[1:]}
    assert declared == {names.cluster_chain(web)} | removed
    assert set(re.findall(r"^-X (\S+)", text, re.M)) == removed
    for other in fx.SERVICES[1:]:
        assert names.cluster_chain(other) not in text


def test_partial_restore_of_identical_rulesets_is_empty():
    first = render(fx.state())
    assert partial_restore(render(fx.state(), first, Changes(full=False)), first) == ""


def test_removing_a_service_deletes_its_chains_and_dispatch_rules():
    first = render(fx.state())
    gone = fx.SERVICES[0]
    second = render(fx.state(fx.SERVICES[1:]), first, Changes(full=False, services=frozenset({gone.key})))
    text = partial_restore(second, first)
    assert f"-X {names.cluster_chain(gone)}" in text
    assert ":KUBE-SERVICES - [0:0]" in text  # its dispatch rule had to go


def test_every_jump_target_exists_in_the_fixture():
    kernel: dict = {}
    apply_restore(kernel, full_restore(render(fx.state())))
    assert ("nat", names.KUBE_MARK_MASQ) in kernel


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=proxy_states(), after=proxy_states())
def test_partial_sync_reaches_the_same_kernel_state_as_a_full_sync(before, after):
    old = render(before)
    new = render(after, old, changes_between(before, after))
    assert new == render(after)  # reuse never changes the result
    kernel: dict = {}
    apply_restore(kernel, full_restore(old))
    apply_restore(kernel, partial_restore(new, old))
    fresh: dict = {}
    apply_restore(fresh, full_restore(new))
    assert kernel == fresh


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=proxy_states())
def test_cluster_ip_traffic_reaches_exactly_the_internal_endpoints(state):
    tracer = Tracer(render(state), local_addresses=[fx.NODE_IP])
    for sp in state.services.values():
        result = tracer.trace(fx.LOCAL_POD, sp.cluster_ips[0], sp.port, sp.protocol)
        want = {e.address for e in categorize(sp).internal}
        has_any = any(e.ready or (e.serving and e.terminating) for e in sp.endpoints)
        if want:
            assert set(result.outcomes) == want
            for p in result.outcomes.values():
                assert p == pytest.approx(1 / len(want), abs=1e-9)
        else:
            assert set(result.outcomes) == ({"DROP"} if has_any else {"REJECT"})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=proxy_states())
def test_nodeport_from_outside_reaches_the_external_endpoints(state):
    tracer = Tracer(render(state), local_addresses=[fx.NODE_IP])
    for sp in state.services.values():
        if not sp.node_port:
            continue
        result = tracer.trace(fx.EXTERNAL_CLIENT, fx.NODE_IP, sp.node_port, sp.protocol)
        want = {e.address for e in categorize(sp).external}
        has_any = any(e.ready or (e.serving and e.terminating) for e in sp.endpoints)
        if want:
            assert set(result.outcomes) == want
            assert set(result.masquerade.values()) == {not sp.external_policy_local}
        else:
            assert set(result.outcomes) == ({"DROP"} if has_any else {"REJECT"})


@given(st.text(max_size=80))
def test_chain_hash_equals_base32_of_sha256(text):
    import base64
    import hashlib
    want = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]
    assert names._hash16(text) == want


def test_an_endpoint_listed_twice_is_balanced_once():
    dup = (Endpoint("10.244.1.2", 80, ready=False, serving=False), Endpoint("10.244.1.2", 80),
           Endpoint("10.244.1.3", 80))
    sp = ServicePort("d", "s", "", "TCP", 80, cluster_ips=("10.96.0.1",), endpoints=tuple(sorted(dup)))
    rs = render(fx.state([sp]))
    kernel: dict = {}
    apply_restore(kernel, full_restore(rs))
    result = Tracer(rs).trace(fx.LOCAL_POD, "10.96.0.1", 80)
    assert result.outcomes == {"10.244.1.2:80": pytest.approx(0.5), "10.244.1.3:80": pytest.approx(0.5)}


def _many(services: int, endpoints: int) -> ProxyState:
    sps = [ServicePort("d", f"s{i}", "", "TCP", 80, cluster_ips=(f"10.96.3.{i + 1}",),
                       endpoints=tuple(Endpoint(f"10.244.{i}.{j + 2}", 80) for j in range(endpoints)))
           for i in range(services)]
    return fx.state(sps)


def test_large_cluster_mode_drops_per_endpoint_comments_like_kube_proxy():
    small, large = render(_many(100, 10)), render(_many(101, 10))  # 1000 endpoints vs 1001+
    sep = lambda rs: [r for (t, c), rules in rs.chains() if c.startswith("KUBE-SEP-") for r in rules]
    assert all("--comment" in r for r in sep(small))
    assert not any("--comment" in r for r in sep(large))
    svc = [r for (t, c), rules in large.chains() if c.startswith("KUBE-SVC-") for r in rules]
    assert not any("->" in r for r in svc)
    result = Tracer(large).trace(fx.LOCAL_POD, "10.96.3.1", 80)
    assert len(result.outcomes) == 10
    # crossing the threshold changes every fragment
    assert all(render(_many(101, 10), small).fragments[k] is not small.fragments[k] for k in small.fragments)


def test_full_restore_deletes_only_stale_service_chains_and_inserts_missing_jumps_after_declaring():
    rs = render(fx.state())
    existing = {"nat": {"KUBE-SVC-STALESTALESTALE", "KUBE-SERVICES", "DOCKER", "PREROUTING"},
                "filter": {"KUBE-SEP-GONEGONEGONEGONE", "INPUT"}}
    jumps = [j for j in rs.jumps if j.chain in ("PREROUTING", "INPUT")]
    lines = full_restore(rs, existing, jumps).splitlines()
    assert "-X KUBE-SVC-STALESTALESTALE" in lines and "-X KUBE-SEP-GONEGONEGONEGONE" in lines
    assert lines.index(":KUBE-SVC-STALESTALESTALE - [0:0]") < lines.index("-X KUBE-SVC-STALESTALESTALE")
    assert not any("DOCKER" in line or line.startswith((":PREROUTING", ":INPUT")) for line in lines)
    inserts = [line for line in lines if line.startswith("-I ")]
    assert '-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in inserts
    assert len(inserts) == len(jumps)
    nat_start = lines.index("*nat")
    last_decl = max(i for i, line in enumerate(lines) if line.startswith(":") and i > nat_start)
    assert all(lines.index(line) > last_decl for line in inserts if "PREROUTING" in line)
