"""Change trackers and state building: API dicts -> ServicePorts, no-op detection, O(changed)
incremental builds that equal a build from scratch."""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kproxy.agent import translate
from kproxy.agent.state import Endpoint
from kproxy.agent.tracker import ProxyStateBuilder, StateSettings

NODE = "node-1"


def svc(name, ns="default", ports=None, cluster_ip="10.96.0.10", type_="ClusterIP", labels=None, **spec):
    obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "resourceVersion": "1"},
        "spec": {"type": type_, "clusterIP": cluster_ip,
                 "ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}],
                 **spec},
    }
    return obj


def eps(name, service, ns="default", ports=None, endpoints=(), labels=None, annotations=None):
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "1",
                     "labels": {"kubernetes.io/service-name": service, **(labels or {})},
                     "annotations": annotations or {}},
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def ep(ip, node=None, ready=None, serving=None, terminating=None, zone=None):
    cond = {}
    for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating)):
        if v is not None:
            cond[k] = v
    out = {"addresses": [ip], "conditions": cond}
    if node:
        out["nodeName"] = node
    if zone:
        out["zone"] = zone
    return out


def builder():
    return ProxyStateBuilder(StateSettings(node_name=NODE, cluster_cidr="10.244.0.0/16"))


# ------------------------------------------------------------------ pure translation

def test_skipped_services():
    assert translate.service_ports(svc("a", cluster_ip="None")) == ()
    assert translate.service_ports(svc("a", cluster_ip="")) == ()
    assert translate.service_ports(svc("a", type_="ExternalName", cluster_ip="")) == ()
    assert translate.service_ports(svc("a", labels={"service.kubernetes.io/service-proxy-name": "x"})) == ()
    assert translate.service_ports(svc("a", labels={"service.kubernetes.io/headless": ""})) == ()
    assert len(translate.service_ports(svc("a"))) == 1


def test_service_port_fields():
    s = svc("web", type_="LoadBalancer", cluster_ip="10.96.0.5", clusterIPs=["10.96.0.5"],
            ports=[{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"},
                   {"name": "dns", "port": 53, "nodePort": 30053, "protocol": "UDP"}],
            externalIPs=["192.0.2.1"], sessionAffinity="ClientIP", externalTrafficPolicy="Local",
            internalTrafficPolicy="Local", healthCheckNodePort=31000, loadBalancerSourceRanges=["1.2.3.0/24"])
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"hostname": "x.example"}]}}
    dns, http = translate.service_ports(s)
    assert (http.key, http.protocol, http.port, http.node_port) == ("default/web:http", "TCP", 80, 30080)
    assert (dns.key, dns.protocol, dns.node_port) == ("default/web:dns", "UDP", 30053)
    assert http.cluster_ips == ("10.96.0.5",)
    assert http.external_ips == ("192.0.2.1",)
    assert http.load_balancer_ips == ("198.51.100.7",)
    assert http.load_balancer_source_ranges == ("1.2.3.0/24",)
    assert http.session_affinity_timeout == 10800
    assert http.external_policy_local and http.internal_policy_local
    assert http.health_check_node_port == 31000


def test_policy_local_only_for_external_services():
    (p,) = translate.service_ports(svc("a", externalTrafficPolicy="Local", healthCheckNodePort=31000,
                                       sessionAffinity="ClientIP",
                                       sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    assert not p.external_policy_local and p.health_check_node_port == 0
    assert p.session_affinity_timeout == 60
    assert p.node_port == 0


def test_nodeport_ignored_on_clusterip():
    (p,) = translate.service_ports(svc("a", ports=[{"port": 80, "nodePort": 30001}]))
    assert p.node_port == 0 and p.port_name == "" and p.protocol == "TCP" and p.key == "default/a:"


def test_endpoint_conditions_defaults():
    view = translate.slice_view(eps("s1", "a", endpoints=[
        ep("10.244.1.2", node=NODE),
        ep("10.244.2.2", node="node-2", ready=False),
        ep("10.244.2.3", ready=False, serving=True, terminating=True, zone="z1"),
    ]), NODE)
    ((key, endpoints),) = view
    assert key == ("http", "TCP")
    assert endpoints == (
        Endpoint("10.244.1.2", 8080, True, True, False, NODE, None, True),
        Endpoint("10.244.2.2", 8080, False, False, False, "node-2", None, False),
        Endpoint("10.244.2.3", 8080, False, True, True, None, "z1", False),
    )


def test_fqdn_slices_and_bad_endpoints_ignored():
    fqdn = eps("s1", "a", endpoints=[ep("example.com")])
    fqdn["addressType"] = "FQDN"
    assert translate.slice_view(fqdn, NODE) == ()
    weird = eps("s2", "a", endpoints=[{"addresses": []}, {"conditions": {}}, "junk"])
    assert translate.slice_view(weird, NODE) == (( ("http", "TCP"), ()),)


def test_merge_duplicates_prefers_ready_then_first():
    a = translate.slice_view(eps("a", "x", endpoints=[ep("10.0.0.1", ready=False, node="n1")]), NODE)
    b = translate.slice_view(eps("b", "x", endpoints=[ep("10.0.0.1", node="n2")]), NODE)
    c = translate.slice_view(eps("c", "x", endpoints=[ep("10.0.0.1", node="n3")]), NODE)
    (merged,) = translate.merge_endpoints([a, b, c], "http", "TCP")
    assert merged.ready and merged.node_name == "n2"


def test_node_ips_and_eligibility():
    node = {"metadata": {"name": NODE}, "status": {"addresses": [
        {"type": "Hostname", "address": NODE}, {"type": "ExternalIP", "address": "203.0.113.1"},
        {"type": "InternalIP", "address": "10.200.0.11"}]}}
    assert translate.node_ips(node) == ("10.200.0.11", "203.0.113.1")
    assert translate.node_eligible(node)
    node["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not translate.node_eligible(node)


def test_trigger_time():
    s = eps("a", "x", annotations={translate.TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:00Z"})
    assert translate.trigger_time(s) == 1767225600.0
    assert translate.trigger_time(eps("a", "x")) is None


# ------------------------------------------------------------------ trackers and builder

def test_first_build_full_and_endpoints_flow():
    b = builder()
    b.services.on_add(svc("web"))
    b.slices.on_add(eps("web-1", "web", endpoints=[ep("10.244.1.5", node=NODE), ep("10.244.2.5", node="n2")]))
    r = b.build_state()
    assert r.changes.full
    sp = r.state.services["default/web:http"]
    assert [e.address for e in sp.endpoints] == ["10.244.1.5:8080", "10.244.2.5:8080"]
    assert [e.is_local for e in sp.endpoints] == [True, False]
    assert r.state.revision == 1 and r.state.cluster_cidr == "10.244.0.0/16"


def test_no_op_changes_dropped_and_state_reused():
    b = builder()
    calls = []
    b = ProxyStateBuilder(StateSettings(node_name=NODE), on_change=lambda: calls.append(1))
    s = svc("web")
    b.services.on_add(s)
    first = b.build_state()
    bumped = copy.deepcopy(s)
    bumped["metadata"]["resourceVersion"] = "2"
    b.services.on_update(s, bumped)
    assert b.services.pending == 0
    assert len(calls) == 1
    again = b.build_state()
    assert again.state is first.state and again.changes.services == frozenset() and not again.changes.full
    # a change then its reversal before a build is also a no-op
    changed = copy.deepcopy(s)
    changed["spec"]["ports"][0]["port"] = 81
    b.services.on_update(s, changed)
    assert b.services.pending == 1
    b.services.on_update(changed, s)
    assert b.services.pending == 0
    # a headless Service is a no-op
    b.services.on_add(svc("headless", cluster_ip="None"))
    assert b.services.pending == 0


def test_only_changed_services_rebuilt_and_objects_reused():
    b = builder()
    for i in range(5):
        b.services.on_add(svc(f"s{i}", cluster_ip=f"10.96.0.{i + 1}"))
        b.slices.on_add(eps(f"s{i}-x", f"s{i}", endpoints=[ep(f"10.244.1.{i + 1}")]))
    first = b.build_state().state
    old = eps("s3-x", "s3", endpoints=[ep("10.244.1.4")])
    b.slices.on_update(old, eps("s3-x", "s3", endpoints=[ep("10.244.1.4"), ep("10.244.1.99")]))
    r = b.build_state()
    assert r.changes == type(r.changes)(full=False, services=frozenset({"default/s3:http"}))
    assert r.state.revision == first.revision + 1
    for i in (0, 1, 2, 4):
        key = f"default/s{i}:http"
        assert r.state.services[key] is first.services[key]
    assert len(r.state.services["default/s3:http"].endpoints) == 2


def test_service_delete_and_slice_relabel():
    b = builder()
    b.services.on_add(svc("a", cluster_ip="10.96.0.1"))
    b.services.on_add(svc("b", cluster_ip="10.96.0.2"))
    s = eps("sl", "a", endpoints=[ep("10.244.1.1")])
    b.slices.on_add(s)
    b.build_state()
    moved = eps("sl", "b", endpoints=[ep("10.244.1.1")])
    b.slices.on_update(s, moved)
    r = b.build_state()
    assert r.changes.services == {"default/a:http", "default/b:http"}
    assert r.state.services["default/a:http"].endpoints == ()
    assert len(r.state.services["default/b:http"].endpoints) == 1
    b.services.on_delete(svc("a", cluster_ip="10.96.0.1"))
    r = b.build_state()
    assert "default/a:http" not in r.state.services and r.changes.services == {"default/a:http"}


def test_node_address_change_is_full():
    b = builder()
    b.services.on_add(svc("a"))
    b.build_state()
    b.node.on_add({"metadata": {"name": NODE}, "status": {"addresses": [{"type": "InternalIP", "address": "10.200.0.11"}]}})
    b.node.on_add({"metadata": {"name": "other"}, "status": {"addresses": [{"type": "InternalIP", "address": "1.1.1.1"}]}})
    r = b.build_state()
    assert r.changes.full and r.state.node_ips == ("10.200.0.11",)


def test_node_zone_label_change_is_full():
    """The zone decides which hinted endpoints every ServicePort keeps (kube-proxy's
    OnNodeUpdate asks for a full sync on a label change)."""
    b = builder()
    b.services.on_add(svc("a"))
    assert b.build_state().state.node_zone == ""
    node = {"metadata": {"name": NODE, "labels": {"topology.kubernetes.io/zone": "zone-a"}}}
    b.node.on_add(node)
    r = b.build_state()
    assert r.changes.full and r.state.node_zone == "zone-a"
    relabelled = copy.deepcopy(node)
    relabelled["metadata"]["labels"]["other"] = "x"  # not the zone: nothing to do
    b.node.on_update(node, relabelled)
    assert not b.node.changed and not b.build_state().changes.full


def test_hints_and_ip_mode_proxy():
    """hints.forZones/forNodes reach the endpoints (sorted, junk left out); an ingress with
    ipMode Proxy is not programmed, VIP and unset are."""
    slc = eps("a-1", "a", endpoints=[{**ep("10.244.1.1"), "hints": {"forZones": [{"name": "z2"}, {"name": "z1"}, {}, 5],
                                                                     "forNodes": [{"name": "n1"}]}},
                                     {**ep("10.244.1.2"), "hints": "junk"}])
    ((_, (one, two)),) = translate.slice_view(slc, NODE)
    assert (one.zone_hints, one.node_hints) == (("z1", "z2"), ("n1",))
    assert (two.zone_hints, two.node_hints) == ((), ())
    lb = svc("lb", type_="LoadBalancer")
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "Proxy"}, {"ip": "192.0.2.2", "ipMode": "VIP"},
                                                 {"ip": "192.0.2.3"}, {"ip": "192.0.2.4", "ipMode": None}]}}
    (sp,) = translate.service_ports(lb)
    assert sp.load_balancer_ips == ("192.0.2.2", "192.0.2.3", "192.0.2.4")
    assert translate.service_issues(lb) == ()


def test_interface_address_change_is_full_and_asks_for_a_sync():
    asked = []
    b = ProxyStateBuilder(StateSettings(node_name=NODE), on_change=lambda: asked.append(1))
    b.services.on_add(svc("a"))
    assert b.build_state().state.local_ips is None  # not read yet
    b.build_state()
    asked.clear()
    b.set_local_ips(("10.200.0.11", "192.168.1.5"))
    assert asked == [1]
    r = b.build_state()
    assert r.changes.full and r.state.local_ips == ("10.200.0.11", "192.168.1.5")
    b.set_local_ips(("10.200.0.11", "192.168.1.5"))  # same addresses: nothing to do
    assert asked == [1]
    r2 = b.build_state()
    assert not r2.changes.full and r2.state is r.state


def test_trigger_times_returned_once():
    b = builder()
    b.services.on_add(svc("a"))
    b.slices.on_add(eps("sl", "a", endpoints=[ep("10.244.1.1")],
                        annotations={translate.TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:00Z"}))
    assert b.build_state().trigger_times == (1767225600.0,)
    assert b.build_state().trigger_times == ()


# ------------------------------------------------------------------ property tests

NAMES = ["a", "b", "c"]
NAMESPACES = ["default", "other"]
IPS = [f"10.244.{n}.{h}" for n in (1, 2) for h in (1, 2, 3)]
PORT_NAMES = ["", "http", "dns"]

port_st = st.fixed_dictionaries({
    "name": st.sampled_from(PORT_NAMES), "port": st.sampled_from([53, 80, 443]),
    "protocol": st.sampled_from(["TCP", "UDP"]),
})
service_st = st.builds(
    lambda name, ns, ports, cip, type_, labels: svc(name, ns=ns, ports=ports, cluster_ip=cip, type_=type_,
                                                    labels=labels),
    st.sampled_from(NAMES), st.sampled_from(NAMESPACES), st.lists(port_st, max_size=3),
    st.sampled_from(["10.96.0.1", "10.96.0.2", "None", ""]), st.sampled_from(["ClusterIP", "NodePort", "ExternalName"]),
    st.sampled_from([{}, {}, {"service.kubernetes.io/service-proxy-name": "other"}]),
)
endpoint_st = st.builds(
    lambda ip, node, ready, serving, terminating: ep(ip, node=node, ready=ready, serving=serving, terminating=terminating),
    st.sampled_from(IPS), st.sampled_from([None, NODE, "node-2"]), st.sampled_from([None, True, False]),
    st.sampled_from([None, True, False]), st.sampled_from([None, True, False]),
)
slice_st = st.builds(
    lambda name, service, ns, ports, endpoints: eps(name, service, ns=ns, ports=ports, endpoints=endpoints),
    st.sampled_from(["s1", "s2", "s3", "s4"]), st.sampled_from(NAMES), st.sampled_from(NAMESPACES),
    st.lists(st.fixed_dictionaries({"name": st.sampled_from(PORT_NAMES), "port": st.sampled_from([8080, 8053]),
                                    "protocol": st.sampled_from(["TCP", "UDP"])}), max_size=2),
    st.lists(endpoint_st, max_size=4),
)


def reference(services: dict, slices: dict) -> dict:
    """Straightforward computation of the expected ServicePort keys -> sorted endpoint tuples."""
    out = {}
    for s in services.values():
        labels = s["metadata"]["labels"]
        if s["spec"]["type"] == "ExternalName" or s["spec"]["clusterIP"] in ("None", "") \
                or "service.kubernetes.io/service-proxy-name" in labels:
            continue
        ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
        seen_keys = set()
        for p in s["spec"]["ports"]:
            key = f"{ns}/{name}:{p['name']}"
            if key in seen_keys:
                continue
            seen_keys.add(key)
            found: dict = {}
            for slice_name in sorted(k for k in slices):
                sl = slices[slice_name]
                if sl["metadata"]["namespace"] != ns or sl["metadata"]["labels"]["kubernetes.io/service-name"] != name:
                    continue
                for sp in sl["ports"]:
                    if sp["name"] != p["name"] or sp["protocol"] != p["protocol"]:
                        continue
                    for e in sl["endpoints"]:
                        c = e["conditions"]
                        ready = c.get("ready", True)
                        serving = c.get("serving", ready)
                        term = c.get("terminating", False)
                        node = e.get("nodeName")
                        new = Endpoint(e["addresses"][0], sp["port"], ready, serving, term, node, None, node == NODE)
                        old = found.get((new.ip, new.port))
                        if old is None or (new.ready and not old.ready):
                            found[(new.ip, new.port)] = new
            out[key] = (p["protocol"], p["port"], tuple(sorted(found.values())))
    return out


def summary(state) -> dict:
    return {k: (v.protocol, v.port, v.endpoints) for k, v in state.services.items()}


def key_of(obj):
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(service_st, max_size=6), st.lists(slice_st, max_size=6))
def test_build_equals_reference(services, slices):
    svc_map = {key_of(s): s for s in services}
    slice_map = {key_of(s): s for s in slices}
    b = builder()
    for s in svc_map.values():
        b.services.on_add(s)
    for s in slice_map.values():
        b.slices.on_add(s)
    state = b.build_state().state
    assert summary(state) == reference(svc_map, slice_map)


ops_st = st.lists(st.tuples(st.sampled_from(["svc", "slice", "del-svc", "del-slice", "build"]),
                            service_st, slice_st), max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops_st)
def test_incremental_equals_from_scratch(ops):
    b = builder()
    svc_map: dict = {}
    slice_map: dict = {}
    last = b.build_state()
    for op, s, sl in ops:
        if op == "svc":
            b.services.update(svc_map.get(key_of(s)), s)
            svc_map[key_of(s)] = s
        elif op == "slice":
            b.slices.update(slice_map.get(key_of(sl)), sl)
            slice_map[key_of(sl)] = sl
        elif op == "del-svc" and key_of(s) in svc_map:
            b.services.update(svc_map.pop(key_of(s)), None)
        elif op == "del-slice" and key_of(sl) in slice_map:
            b.slices.update(slice_map.pop(key_of(sl)), None)
        elif op == "build":
            before = last.state
            last = b.build_state()
            # Changes names exactly the keys whose ServicePort differs
            diff = {k for k in before.services.keys() | last.state.services.keys()
                    if before.services.get(k) != last.state.services.get(k)}
            assert last.changes.services == diff
            assert (last.state.revision > before.revision) == bool(diff)
    final = b.build_state().state
    fresh = builder()
    for s in svc_map.values():
        fresh.services.on_add(s)
    for s in slice_map.values():
        fresh.slices.on_add(s)
    assert dict(final.services) == dict(fresh.build_state().state.services)
    assert summary(final) == reference(svc_map, slice_map)
