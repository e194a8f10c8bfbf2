"""ClusterIP / NodePort allocation: the allocators as pure logic, and through HTTP including
explicit requests, release on delete and type change, and rebuild after a restart."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from kproxy.apiserver.allocators import AllocationError, ClusterIPAllocator, NodePortAllocator, parse_port_range
from tests.apiserver.fixtures import start_apiserver

SVCS = "/api/v1/namespaces/default/services"


def svc(name, **spec):
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


# --- pure allocators ------------------------------------------------------------------------

def test_cluster_ip_allocator_never_repeats_and_reserves_first():
    a = ClusterIPAllocator("10.0.0.0/29", random.Random(1))  # 6 usable, .1 reserved
    got = {a.allocate_next() for _ in range(5)}
    assert got == {f"10.0.0.{i}" for i in range(2, 7)}
    with pytest.raises(AllocationError) as exc:
        a.allocate_next()
    assert exc.value.kind == "full"
    assert a.allocate("10.0.0.1") == "10.0.0.1"  # only on explicit request
    with pytest.raises(AllocationError) as exc:
        a.allocate("10.0.0.3")
    assert exc.value.kind == "taken" and "provided IP is already allocated" in str(exc.value)
    with pytest.raises(AllocationError) as exc:
        a.allocate("10.0.0.7")  # broadcast
    assert exc.value.kind == "range" and "not in the valid range" in str(exc.value)
    a.release("10.0.0.3")
    assert a.allocate_next() == "10.0.0.3"


@settings(max_examples=50, deadline=None)
@given(ops=hs.lists(hs.one_of(hs.just(("next", None)), hs.tuples(hs.just("release"), hs.integers(0, 20))),
                    max_size=60))
def test_node_port_allocator_matches_a_set_model(ops):
    a = NodePortAllocator("30000-30015", random.Random(0))
    held: set[int] = set()
    for op, arg in ops:
        if op == "next":
            if len(held) == 16:
                with pytest.raises(AllocationError):
                    a.allocate_next()
            else:
                port = a.allocate_next()
                assert port not in held and 30000 <= port <= 30015
                held.add(port)
        elif held:
            port = sorted(held)[arg % len(held)]
            a.release(port)
            held.discard(port)
    assert all(a.in_use(p) for p in held)


def test_rebuild_reports_out_of_range_and_marks_in_use():
    a = ClusterIPAllocator("10.96.0.0/24")
    assert a.rebuild(["10.96.0.10", "192.168.0.1"]) == ["192.168.0.1"]
    assert a.in_use("10.96.0.10") and not a.in_use("10.96.0.11")


@pytest.mark.parametrize("text", ["", "abc", "5-1", "0-10", "1-70000", "1-2-3"])
def test_bad_port_ranges(text):
    with pytest.raises(ValueError):
        parse_port_range(text)


# --- over HTTP ------------------------------------------------------------------------------

@pytest.fixture
def server(tmp_path):
    s = start_apiserver(tmp_path, ["--no-controllers", "--service-cluster-ip-range", "10.96.0.0/28",
                                   "--service-node-port-range", "30000-30003"])
    try:
        yield s
    finally:
        s.stop()


def cause_messages(body) -> str:
    return " ".join(c["message"] for c in body["details"]["causes"])


def test_explicit_ip_out_of_range_or_taken(server):
    api = server.http()
    status, body = api.call("POST", SVCS, svc("a", clusterIP="192.168.1.1"))
    assert status == 422 and "provided IP is not in the valid range" in cause_messages(body)
    api.ok("POST", SVCS, svc("b", clusterIP="10.96.0.5"))
    status, body = api.call("POST", SVCS, svc("c", clusterIP="10.96.0.5"))
    assert status == 422 and "provided IP is already allocated" in cause_messages(body)
    api.ok("DELETE", f"{SVCS}/b")  # released
    assert api.ok("POST", SVCS, svc("c", clusterIP="10.96.0.5"))["spec"]["clusterIP"] == "10.96.0.5"


def test_node_ports_taken_full_released_and_type_change(server):
    api = server.http()
    status, body = api.call("POST", SVCS, svc("np0", type="NodePort", ports=[{"port": 80, "nodePort": 31000}]))
    assert status == 422 and "not in the valid range" in cause_messages(body)
    a = api.ok("POST", SVCS, svc("np1", type="NodePort", ports=[{"port": 80, "nodePort": 30001}]))
    status, body = api.call("POST", SVCS, svc("np2", type="NodePort", ports=[{"port": 80, "nodePort": 30001}]))
    assert status == 422 and "provided port is already allocated" in cause_messages(body)
    api.ok("POST", SVCS, svc("np3", type="NodePort", ports=[{"port": 80, "name": "a"}, {"port": 81, "name": "b"}]))
    api.ok("POST", SVCS, svc("np4", type="NodePort"))
    status, body = api.call("POST", SVCS, svc("np5", type="NodePort"))  # 4 ports, all used
    assert status == 422 and "full" in cause_messages(body)
    # changing np1 to ClusterIP releases its nodePort
    a["spec"]["type"] = "ClusterIP"
    changed = api.ok("PUT", f"{SVCS}/np1", a)
    assert "nodePort" not in changed["spec"]["ports"][0]
    made = api.ok("POST", SVCS, svc("np5", type="NodePort"))
    assert made["spec"]["ports"][0]["nodePort"] == 30001


def test_update_with_empty_cluster_ip_keeps_it_and_change_is_refused(server):
    api = server.http()
    created = api.ok("POST", SVCS, svc("keep"))
    ip = created["spec"]["clusterIP"]
    created["spec"].pop("clusterIP")
    created["spec"].pop("clusterIPs")
    assert api.ok("PUT", f"{SVCS}/keep", created)["spec"]["clusterIP"] == ip
    other = "10.96.0.9" if ip != "10.96.0.9" else "10.96.0.8"  # the /28 may have handed out .9 itself
    status, body = api.call("PATCH", f"{SVCS}/keep", {"spec": {"clusterIP": other, "clusterIPs": [other]}},
                            "application/merge-patch+json")
    assert status == 422, body


def test_allocations_survive_restart(server):
    api = server.http()
    held = api.ok("POST", SVCS, svc("x", type="NodePort"))
    ip, port = held["spec"]["clusterIP"], held["spec"]["ports"][0]["nodePort"]
    server.restart(kill=True)
    api = server.http()
    status, body = api.call("POST", SVCS, svc("y", clusterIP=ip))
    assert status == 422 and "already allocated" in cause_messages(body)
    status, body = api.call("POST", SVCS, svc("z", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert status == 422 and "already allocated" in cause_messages(body)
    # fill the rest of the /28: every new IP differs from every held one
    ips = {ip, "10.96.0.1"}
    for i in range(20):
        status, body = api.call("POST", SVCS, svc(f"f{i}"))
        if status != 201:
            assert status == 422 and "full" in cause_messages(body)
            break
        assert body["spec"]["clusterIP"] not in ips
        ips.add(body["spec"]["clusterIP"])
    assert len(ips) == 14  # 16 addresses minus network and broadcast
