"""/proc/net/ip_vs parsing (ipvs/procfs.py) on text in the kernel's format; the guest kernel
test compares what it reads with the netlink dumps of a programmed table."""
from __future__ import annotations

import pytest

from kproxy.ipvs import procfs
from kproxy.ipvs.model import RealServer
from kproxy.ipvs.netlink import DestStatus

TABLE = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A600001:0050 rr 
  -> 0AF40102:1F90      Masq    1      3          7         
  -> 0AF40203:1F90      Masq    0      0          12        
UDP  0A60000A:0035 rr persistent 10800 FFFFFFFF
  -> 0AF40104:0035      Masq    1      0          0         
TCP  0AC8000B:7596 sh 
FWM  00000001 rr 
  -> 0AF40105:0050      Route   1      0          0         
SCTP  [fd00:0000:0000:0000:0000:0000:0000:0001]:0050 mh 
  -> [fd00:0244:0000:0000:0000:0000:0000:0002]:1F90      Tunnel  2      1          0         
"""


def test_parses_every_virtual_server_with_its_real_servers():
    assert procfs.parse(TABLE) == {
        ("10.96.0.1", 80, "TCP"): [DestStatus(RealServer("10.244.1.2", 8080, 1), 0, 3, 7),
                                   DestStatus(RealServer("10.244.2.3", 8080, 0), 0, 0, 12)],
        ("10.96.0.10", 53, "UDP"): [DestStatus(RealServer("10.244.1.4", 53, 1), 0, 0, 0)],
        ("10.200.0.11", 30102, "TCP"): [],
        ("fd00::1", 80, "SCTP"): [DestStatus(RealServer("fd00:244::2", 8080, 2), 2, 1, 0)],
    }


def test_fwmark_services_and_their_real_servers_are_left_out():
    assert all(key[0] != "0.0.0.1" for key in procfs.parse(TABLE))
    reals = [d.server.address for dests in procfs.parse(TABLE).values() for d in dests]
    assert "10.244.1.5" not in reals


def test_an_empty_table_has_only_headers():
    assert procfs.parse("\n".join(TABLE.splitlines()[:3]) + "\n") == {}


@pytest.mark.parametrize("bad", ["TCP  0A600001 rr", "  -> 0AF40102:1F90      Masq    x      0   0",
                                 "TCP  GG600001:0050 rr", "  -> 0AF40102:1F90      Masq    1"])
def test_an_unreadable_line_is_named(bad):
    text = "\n".join(TABLE.splitlines()[:4] + [bad]) + "\n"
    with pytest.raises(procfs.ProcFormatError, match="line 5"):
        procfs.parse(text)


def test_a_record_read_twice_is_not_doubled():
    lines = TABLE.splitlines()
    text = "\n".join(lines[:6] + lines[3:6]) + "\n"  # the first service and its real servers again
    assert procfs.parse(text)[("10.96.0.1", 80, "TCP")] == procfs.parse(TABLE)[("10.96.0.1", 80, "TCP")]
