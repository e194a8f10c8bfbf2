"""kproxy.rules.detect: which mode `kproxy rules` reads when --mode is not given (the pure
decision; kernel and agent I/O are in tests/kernel/test_rules_detect.py)."""
from __future__ import annotations

import pytest

from kproxy.rules.detect import KERNEL_ORDER, MODES, AgentAnswer, Detection, agent_address, decide

AGENT = "127.0.0.1:10249"


@pytest.mark.parametrize("mode", MODES)
def test_the_agent_answer_wins_over_the_kernel(mode):
    found = {m: f"{m} things" for m in MODES}
    d = decide(AgentAnswer(AGENT, body=f"{mode}\n"), found)
    assert d == Detection(mode, "agent", f"the agent's /proxyMode at {AGENT} answered {mode!r}")


def test_without_an_agent_the_most_specific_kernel_state_is_read():
    # ipvs and userspace mode also hold KUBE-SERVICES chains: they come before iptables
    assert KERNEL_ORDER.index("iptables") == len(KERNEL_ORDER) - 1
    refused = AgentAnswer(AGENT, error="Connection refused")
    d = decide(refused, {"iptables": "the KUBE-SERVICES chain", "ipvs": "the kube-ipvs0 interface"})
    assert (d.mode, d.source) == ("ipvs", "kernel")
    assert d.reason == (f"no agent answered at {AGENT} (Connection refused); the namespace holds the kube-ipvs0 "
                        "interface (also iptables: the KUBE-SERVICES chain)")
    assert decide(None, {"userspace": "the userspace proxy process", "iptables": "x"}).mode == "userspace"
    assert decide(None, {"nftables": "the nf_tables table 'kproxy'", "ipvs": "y"}).mode == "nftables"
    assert decide(None, {"iptables": "the KUBE-SERVICES chain"}).mode == "iptables"


def test_an_answer_that_is_not_a_mode_is_not_trusted():
    d = decide(AgentAnswer(AGENT, body="<html>not found</html>"), {"nftables": "the table"})
    assert (d.mode, d.source) == ("nftables", "kernel")
    assert d.reason.startswith(f"the agent at {AGENT} answered '<html>not found</html>', not a mode; ")


def test_nothing_found_shows_the_iptables_view_and_says_so():
    d = decide(AgentAnswer(AGENT, error="Connection refused"), {"ipvs": ""})
    assert (d.mode, d.source) == ("iptables", "default")
    assert "no kproxy rules found in the namespace, showing the iptables view" in d.reason
    assert d.to_dict() == {"mode": "iptables", "source": "default", "reason": d.reason}
    assert d.line().startswith("reading iptables mode: no agent answered")


def test_agent_address_reaches_wildcard_binds_on_loopback():
    assert agent_address("127.0.0.1:10249") == ("127.0.0.1", 10249)
    assert agent_address("0.0.0.0:10249") == ("127.0.0.1", 10249)
    assert agent_address("[::]:10249") == ("::1", 10249)
    assert agent_address("10.200.0.11:9999") == ("10.200.0.11", 9999)
    assert agent_address("") is None


class _BrokenNetNS:
    """A namespace handle whose every operation fails in its own way."""

    def run(self, fn, *args):
        raise KeyError("netlink attribute")

    def command(self, argv, **kw):
        raise OSError(2, "No such file or directory")


def test_a_failing_check_is_a_note_not_a_crash():
    from kproxy.rules.detect import kernel_findings

    found, notes = kernel_findings(_BrokenNetNS())
    assert found == {}
    assert notes[0] == "nftables: KeyError: 'netlink attribute'"
    assert any(n.startswith("ipvs: ") for n in notes)
