"""The order in which IpvsBackend writes the kernel within one apply: masquerade set members
before the virtual servers that need them, narrowing members (reject, drop) after; the reverse
for removals (nfrules.split_around_ipvs). A SYN forwarded by IPVS before its masquerade member
exists leaves a conntrack entry without NAT that loses every retry from that client port.

The kernel is replaced by recorders here (this is the logic of the order); tests/vm/guest and
the IPVS scenario suite program the real kernel.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from kproxy.agent.state import Endpoint
from kproxy.ipvs import nfrules
from kproxy.ipvs.backend import IpvsBackend
from kproxy.ipvs.ipset import Member, SetOp
from kproxy.ipvs.netlink import CMD_DEL_DEST, CMD_DEL_SERVICE, CMD_NEW_DEST, CMD_NEW_SERVICE, DestStatus
from kproxy.netns import NetNS
from tests.kernel.topology import service, state

VIP = "10.96.0.10"
REMOTE = Endpoint("10.244.2.5", 8080, is_local=False, node_name="n2")


class Recorder:
    """Stands in for the IPVS and ipset sockets, logging every write in order; it remembers
    the real servers written so that later applies see them (without connections)."""

    def __init__(self, log: list):
        self.log = log
        self.sets: dict[str, list[Member]] = {}
        self.reals: dict = {}  # VSKey -> {(address, port): RealServer}

    # IpvsSocket
    def services(self):
        return []

    def dests(self, vs):
        return [DestStatus(r, 0, 0, 0) for r in self.reals.get(vs.key, {}).values()]

    # IpsetSocket
    def names(self):
        return list(self.sets)

    def members(self, name):
        return self.sets.get(name, [])

    def execute(self, items) -> int:
        for item in items:
            if isinstance(item, SetOp):
                self.log.append(("ipset", item.cmd, item.set))
            else:
                self.log.append(("ipvs", item.cmd))
                reals = self.reals.setdefault(item.service.key, {})
                if item.cmd == CMD_NEW_DEST:
                    reals[(item.dest.address, item.dest.port)] = item.dest
                elif item.cmd == CMD_DEL_DEST:
                    reals.pop((item.dest.address, item.dest.port), None)
        return 1


@pytest.fixture
def backend(monkeypatch):
    log: list = []
    b = IpvsBackend(NetNS(None), SimpleNamespace(ipvs=SimpleNamespace(scheduler=""),
                                                 iptables=SimpleNamespace(backend="auto")))
    rec = Recorder(log)
    monkeypatch.setattr(b, "_setup", lambda: None)
    monkeypatch.setattr(b, "_dummy_addresses", lambda: set())
    monkeypatch.setattr(b, "_sync_addresses", lambda want, have: log.extend(
        [("addresses", False, sorted(want - have)), ("addresses", True, sorted(have - want))]))
    monkeypatch.setattr(b, "_dest_table", lambda: None)  # the recorder answers per virtual server
    monkeypatch.setattr(b, "_socket", lambda: rec)
    monkeypatch.setattr(b, "_ipsets", lambda: rec)
    monkeypatch.setattr(b, "_our_iptables_lines", lambda: ())
    monkeypatch.setattr(b, "_write_iptables", lambda text: log.append(("iptables",)))
    b.log = log
    yield b
    b.log.clear()


def first(log: list, entry: tuple) -> int:
    return log.index(entry)


def last(log: list, entry: tuple) -> int:
    return len(log) - 1 - log[::-1].index(entry)


def apply(backend, st, previous=None):
    backend.log.clear()
    ruleset = backend.render(st)
    backend.apply(ruleset, previous)
    return ruleset


@pytest.mark.parametrize("full", [True, False])
def test_a_new_service_is_in_the_masquerade_set_before_ipvs_forwards_for_it(backend, full):
    previous = None if full else apply(backend, state())  # full: the agent's first sync
    apply(backend, state(service("web", VIP, [REMOTE])), previous)
    log = backend.log
    add_member = ("ipset", "add", nfrules.SET_CLUSTER_IP)
    assert add_member in log
    assert first(log, add_member) < first(log, ("ipvs", CMD_NEW_SERVICE))
    assert first(log, add_member) < first(log, ("ipvs", CMD_NEW_DEST))
    # the ClusterIP becomes local only once its virtual server exists (else the local stack resets SYNs)
    bind = next(i for i, e in enumerate(log) if e[:2] == ("addresses", False) and VIP in e[2])
    assert last(log, ("ipvs", CMD_NEW_DEST)) < bind
    if full:  # the first full sync writes the rules too, before IPVS forwards anything
        assert first(log, ("iptables",)) < first(log, ("ipvs", CMD_NEW_SERVICE))


@pytest.mark.parametrize("full", [True, False])
def test_a_removed_service_leaves_the_masquerade_set_after_ipvs_stops_forwarding(backend, full, monkeypatch):
    previous = apply(backend, state(service("web", VIP, [REMOTE])))
    if full:  # the kernel holds what `previous` programmed: a full sync finds the service stale
        servers = [e.server for e in previous.services.values()]
        rec = backend._socket()
        monkeypatch.setattr(rec, "services", lambda: servers)
        rec.sets = nfrules.set_members(previous.netfilter)
    apply(backend, state(), None if full else previous)
    log = backend.log
    del_member = ("ipset", "del", nfrules.SET_CLUSTER_IP)
    assert del_member in log
    assert last(log, ("ipvs", CMD_DEL_SERVICE)) < first(log, del_member)


def test_losing_the_last_endpoint_rejects_only_after_the_real_server_is_gone(backend):
    previous = apply(backend, state(service("web", VIP, [REMOTE])))
    apply(backend, state(service("web", VIP, [])), previous)
    log = backend.log
    add_reject = ("ipset", "add", nfrules.SET_NO_ENDPOINTS)
    assert add_reject in log
    assert last(log, ("ipvs", CMD_DEL_DEST)) < first(log, add_reject)


def test_gaining_an_endpoint_stops_rejecting_before_the_real_server_is_added(backend):
    previous = apply(backend, state(service("web", VIP, [])))
    apply(backend, state(service("web", VIP, [REMOTE])), previous)
    log = backend.log
    del_reject = ("ipset", "del", nfrules.SET_NO_ENDPOINTS)
    assert del_reject in log
    assert last(log, del_reject) < first(log, ("ipvs", CMD_NEW_DEST))


def test_split_keeps_every_op_once_and_in_order_within_each_batch():
    owner_old = Member("10.96.0.10", "tcp", 80, comment="cluster default/a:http")
    owner_new = Member("10.96.0.10", "tcp", 80, comment="cluster default/b:http")
    member = Member("10.96.0.10", "tcp", 80)
    ops = [SetOp("create", nfrules.SET_NO_LOCAL, nfrules.set_types()[nfrules.SET_NO_LOCAL]),
           SetOp("del", nfrules.SET_CLUSTER_IP, member),
           SetOp("add", nfrules.SET_CLUSTER_IP, Member("10.96.0.11", "tcp", 80)),
           SetOp("del", nfrules.SET_NO_ENDPOINTS, Member("10.96.0.11", "tcp", 80)),
           SetOp("add", nfrules.SET_NO_ENDPOINTS, member),
           SetOp("del", nfrules.SET_OWNERS, owner_old.key()),
           SetOp("add", nfrules.SET_OWNERS, owner_new),
           SetOp("add", nfrules.node_port_set("TCP", True), Member(port=30080)),
           SetOp("del", nfrules.node_port_set("TCP", True), Member(port=30081))]
    before, after = nfrules.split_around_ipvs(ops)
    assert sorted(map(repr, before + after)) == sorted(map(repr, ops))
    assert before == [ops[0], ops[2], ops[3], ops[5], ops[6], ops[8]]
    assert after == [ops[1], ops[4], ops[7]]
