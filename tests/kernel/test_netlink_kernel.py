"""kproxy/netlink's socket against the real kernel, in a namespace of its own: answers, the
ack/error loop of a multi-request datagram, and NetlinkError naming the refused request."""
from __future__ import annotations

import errno

import pytest

from kproxy.netlink import message as m
from kproxy.netlink.attrs import STRING, U16, Attr, AttrTable
from kproxy.netlink.socket import NetlinkError, NetlinkSocket
from kproxy.netns import NetNS
from tests import nsutil

pytestmark = pytest.mark.kernel

GENL_ID_CTRL, CTRL_CMD_GETFAMILY = 0x10, 3
CTRL = AttrTable("genl ctrl", (Attr("family_id", 1, U16), Attr("family_name", 2, STRING)))


@pytest.fixture
def netns():
    with nsutil.netns("netlink") as name:
        ns = NetNS(name)
        try:
            yield ns
        finally:
            ns.close()


def getfamily(seq: int, name: str, flags: int = m.NLM_F_REQUEST) -> bytes:
    return m.encode_genl(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, flags, seq, CTRL.encode({"family_name": name}))


def test_a_request_gets_its_answer_and_a_refusal_names_the_request(netns):
    def ask() -> tuple[int, NetlinkError]:
        with NetlinkSocket(m.NETLINK_GENERIC) as sock:
            seq = sock.next_seq()
            (answer,) = list(sock.request(getfamily(seq, "nlctrl", m.NLM_F_REQUEST | m.NLM_F_ACK), seq))
            family = CTRL.decode(answer.payload, 4)["family_id"]
            seq = sock.next_seq()
            with pytest.raises(NetlinkError) as refused:
                list(sock.request(getfamily(seq, "no-such-family"), seq, "resolve no-such-family"))
            return family, refused.value
    family, refused = netns.run(ask)
    assert family == GENL_ID_CTRL  # the controller resolves itself
    assert refused.errno == errno.ENOENT and refused.seq > 1
    assert str(refused) == "resolve no-such-family: No such file or directory"


def test_one_datagram_of_requests_reports_only_the_refused_ones(netns):
    def batch() -> tuple[int, list[tuple[int, int]]]:
        with NetlinkSocket(m.NETLINK_GENERIC) as sock:
            first = sock.next_seq(3)
            sock.send(getfamily(first, "nlctrl") + getfamily(first + 1, "no-such-family")
                      + getfamily(first + 2, "nlctrl", m.NLM_F_REQUEST | m.NLM_F_ACK))
            return first, [(e.seq, e.errno) for e in sock.errors(first + 2)]
    first, refused = netns.run(batch)
    assert refused == [(first + 1, errno.ENOENT)]
