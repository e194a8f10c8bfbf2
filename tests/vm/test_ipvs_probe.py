"""The ipvs probe plugin's readers (what the VM run compares after every scenario), on captured
ipvsadm and `kproxy rules -o json` text: a unit test of parsing, no kernel needed."""
from __future__ import annotations

import pytest

from kproxy.ipvs.model import IP_VS_SVC_F_PERSISTENT, RealServer, ServiceEntry, VirtualServer
from kproxy.ipvs.model import IpvsRuleset
from kproxy.ipvs.rules_adapter import IpvsAdapter
from tests.vm.ipvs_probe import IpvsProbe, parse_ipvsadm, rules_ipvs_objects

IPVSADM = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.10:80 rr persistent 600
  -> 10.244.1.2:8080              Masq    1      0          3
  -> 10.244.2.2:8080              Masq    0      1          0
UDP  10.96.0.10:80 rr
"""


def test_ipvsadm_listing_is_read_per_virtual_server_without_counters():
    assert parse_ipvsadm(IPVSADM) == {
        "TCP 10.96.0.10:80": ("TCP 10.96.0.10:80 rr persistent 600",
                              frozenset({"-> 10.244.1.2:8080 Masq 1", "-> 10.244.2.2:8080 Masq 0"})),
        "UDP 10.96.0.10:80": ("UDP 10.96.0.10:80 rr", frozenset()),
    }


def test_rules_json_of_the_same_table_reads_equal_and_a_difference_shows():
    tcp = VirtualServer("10.96.0.10", 80, "TCP", "rr", IP_VS_SVC_F_PERSISTENT, 600)
    udp = VirtualServer("10.96.0.10", 80, "UDP")
    ruleset = IpvsRuleset(services={
        tcp.key: ServiceEntry(tcp, (RealServer("10.244.1.2", 8080), RealServer("10.244.2.2", 8080, 0)), "default/web:tcp"),
        udp.key: ServiceEntry(udp, (), "default/web:udp"),
    })
    doc = IpvsAdapter().from_ruleset(ruleset, "node1").to_dict()
    assert rules_ipvs_objects(doc) == parse_ipvsadm(IPVSADM)
    assert rules_ipvs_objects(doc) != parse_ipvsadm(IPVSADM.replace("Masq    0", "Masq    1"))


def test_unowned_virtual_servers_are_a_disagreement():
    doc = {"services": [], "unowned": [{"kind": "virtual-server", "container": "ipvs", "text": "TCP 1.2.3.4:80 rr"}]}
    with pytest.raises(AssertionError, match="no Service port owns"):
        rules_ipvs_objects(doc)


def test_connection_counts_come_from_the_stats_listing(monkeypatch):
    stats = ("IP Virtual Server version 1.2.1 (size=4096)\n"
             "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
             "  -> RemoteAddress:Port\n"
             "TCP  10.96.0.1:443                       0        0        0        0        0\n"
             "TCP  10.102.108.99:80                   35      210      175    11970    12950\n"
             "  -> 10.244.2.2:8080                    35      210      175    11970    12950\n")
    monkeypatch.setattr("tests.vm.ipvs_probe._in", lambda netns, argv, check=False: type("R", (), {"stdout": stats})())
    assert IpvsProbe._connection_counts("ns") == {"TCP 10.96.0.1:443": 0, "TCP 10.102.108.99:80": 35}
