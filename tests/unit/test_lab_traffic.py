"""Traffic helpers classify failures: a closed port on loopback is Refused for TCP and UDP
(RST / ICMP port unreachable), and a malformed answer is a TrafficError."""
from __future__ import annotations

import socket

import pytest

from kproxy.lab.traffic import Refused, Reply, TrafficError, tcp_request, udp_request


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tcp_closed_port_is_refused():
    with pytest.raises(Refused):
        tcp_request(None, "127.0.0.1", _closed_port(), timeout=2)


def test_udp_closed_port_is_refused():
    with pytest.raises(Refused):
        udp_request(None, "127.0.0.1", _closed_port(), timeout=2)


@pytest.mark.parametrize("text", ["", "onlyone", "pod 1.2.3.4", "pod 1.2.3.4:x"])
def test_malformed_answer(text):
    with pytest.raises(TrafficError):
        Reply.parse(text)
