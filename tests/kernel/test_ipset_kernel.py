"""ipvs/ipset.py against the real kernel, in a namespace of its own: what our netlink
operations leave is what the `ipset` program reads back, and what we read back ourselves."""
from __future__ import annotations

import subprocess

import pytest

from kproxy.agent.config import AgentConfig
from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.ipvs import nfrules
from kproxy.ipvs.ipset import IpsetError, IpsetSocket, Member, SetOp, SetType
from kproxy.ipvs.render import options_from_config, render
from kproxy.netns import NetNS
from tests import nsutil

pytestmark = pytest.mark.kernel


@pytest.fixture
def ns():
    with nsutil.netns("ipset") as name:
        netns = NetNS(name)
        try:
            yield name, netns
        finally:
            netns.close()


def ipset_tool(name: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", name, "ipset", *args], capture_output=True, text=True,
                          check=True).stdout


def saved_members(save: str) -> dict[str, set[str]]:
    """`ipset save` -> set -> member texts (as `ipset restore` would take them)."""
    out: dict[str, set[str]] = {}
    for line in save.splitlines():
        words = line.split(" ", 2)
        if words[0] == "create":
            out.setdefault(words[1], set())
        elif words[0] == "add":
            out.setdefault(words[1], set()).add(words[2])
    return out


def plan(services: int = 3):
    sps = {}
    for i in range(services):
        sp = ServicePort("default", f"web{i}", "http", "UDP" if i % 3 == 2 else "TCP", 80,
                         cluster_ips=(f"10.96.0.{10 + i}",), node_port=30080 + i,
                         endpoints=(Endpoint(f"10.244.1.{2 + i}", 8080),) if i % 4 != 3 else ())
        sps[sp.key] = sp
    state = ProxyState("n1", node_ips=("10.200.0.11",), cluster_cidr="10.244.0.0/16", services=sps)
    options = options_from_config(AgentConfig())
    return render(state, options).netfilter


def sync(netns: NetNS, p) -> int:
    """What the backend's full sync does with the sets: read them, send what differs; returns
    how many operations that was."""
    def go():
        with IpsetSocket() as sock:
            names = set(sock.names())
            current = {n: sock.members(n) for n in nfrules.set_types() if n in names}
            ops = nfrules.ipset_sync_ops(p, current)
            sock.execute(ops)
            return len(ops)
    return netns.run(go)


def test_full_sync_ops_leave_what_the_ipset_program_reads(ns):
    name, netns = ns
    p = plan(5)
    assert sync(netns, p) > 0
    saved = saved_members(ipset_tool(name, "save"))
    want = {set_name: {m.text() for m in members} for set_name, members in nfrules.set_members(p).items()}
    assert saved == want  # every set there, every member as rendered
    assert want[nfrules.SET_OWNERS] and want[nfrules.SET_LOOP_BACK] and want[nfrules.node_port_set("UDP", False)]
    assert "comment" in ipset_tool(name, "list", "-t", nfrules.SET_OWNERS)

    def read_back():
        with IpsetSocket() as sock:
            return sorted(sock.names()), {n: sock.members(n) for n in sock.names()}

    names, members = netns.run(read_back)
    assert names == sorted(want)
    assert members == nfrules.set_members(p)  # comments, ports, second addresses included


def test_full_sync_repairs_hand_edits_and_otherwise_writes_nothing(ns):
    name, netns = ns
    p = plan(5)
    sync(netns, p)
    assert sync(netns, p) == 0  # in sync: read only
    ipset_tool(name, "del", nfrules.SET_CLUSTER_IP, "10.96.0.10,tcp:80")
    ipset_tool(name, "add", nfrules.SET_CLUSTER_IP, "10.1.1.1,tcp:1")
    ipset_tool(name, "flush", nfrules.SET_LOOP_BACK)
    ipset_tool(name, "destroy", nfrules.node_port_set("UDP", False))
    ipset_tool(name, "add", nfrules.SET_OWNERS, "10.96.0.11,tcp:80", "comment", "clusterIP someone/else:x", "-exist")
    assert sync(netns, p) > 0
    want = {set_name: {m.text() for m in members} for set_name, members in nfrules.set_members(p).items()}
    assert saved_members(ipset_tool(name, "save")) == want
    assert sync(netns, p) == 0


def test_delta_ops_and_exist_semantics(ns):
    name, netns = ns
    before, after = plan(5), plan(2)
    sync(netns, before)
    again = [op for op in nfrules.ipset_sync_ops(before, {}) if op.cmd == "add"]
    netns.run(lambda: IpsetSocket().execute(again))  # adding what is there is no error
    netns.run(lambda: IpsetSocket().execute(nfrules.ipset_delta_ops(before, after)))
    want = {set_name: {m.text() for m in members} for set_name, members in nfrules.set_members(after).items()}
    assert saved_members(ipset_tool(name, "save")) == want
    # deleting what is gone is no error either
    netns.run(lambda: IpsetSocket().execute(nfrules.ipset_delta_ops(before, after)))


def test_many_members_take_several_messages_and_sends(ns):
    name, netns = ns
    members = [Member(f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}", "tcp", 80 + i % 7) for i in range(30000)]
    ops = [SetOp("create", "BIG", SetType("hash:ip,port", hashsize=32768))] + [SetOp("add", "BIG", m) for m in members]

    def go():
        with IpsetSocket() as sock:
            sends = sock.execute(ops)
            return sends, sock.members("BIG")

    sends, back = netns.run(go)
    assert sends >= 1
    assert back == sorted(members)
    header = ipset_tool(name, "list", "-t", "BIG")
    assert "Number of entries: 30000" in header, header


def test_a_refused_operation_is_named(ns):
    _name, netns = ns
    loop = SetType("hash:ip,port,ip")
    good = [Member(f"10.0.0.{i}", "tcp", 80, f"10.0.0.{i}") for i in range(1, 5)]
    bad = Member("10.0.0.9", "tcp", 80)  # no second address: the kernel refuses it
    ops = [SetOp("create", "LOOP", loop)] + [SetOp("add", "LOOP", m) for m in good[:2] + [bad] + good[2:]]

    def go():
        with IpsetSocket() as sock:
            with pytest.raises(IpsetError, match=r"add LOOP 10\.0\.0\.9,tcp:80 -exist"):
                sock.execute(ops)
            with pytest.raises(IpsetError, match="NOPE") as missing:
                sock.execute([SetOp("add", "NOPE", good[0])])
            assert sock.members("NOPE") == []
            # a set of the same name but another type is refused, not silently kept
            with pytest.raises(IpsetError, match="create LOOP"):
                sock.execute([SetOp("create", "LOOP", SetType("hash:ip,port"))])
            return missing.value.errno, sock.members("LOOP")

    code, kept = netns.run(go)
    assert code != 0
    assert good[:2] == kept[:2] and bad not in kept  # entries before the refused one were added
