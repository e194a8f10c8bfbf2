"""The nf_tables client on the shared netlink socket (kproxy.netlink): sends one batch and
collects its errors, reads the ruleset generation, and dumps objects.

An NftSocket must be created and used on the thread that lives in the target network
namespace (kproxy.netns.NetNS.run): a netlink socket talks to the namespace it was opened in.
"""
from __future__ import annotations

import errno

from kproxy.netlink.socket import NetlinkError, NetlinkSocket

from . import wire as w

MIN_BUFFER = 4 << 20


class NftSocket(NetlinkSocket):
    def __init__(self) -> None:
        super().__init__(w.NETLINK_NETFILTER, MIN_BUFFER)

    def send_batch(self, data: bytes, first_seq: int, last_seq: int) -> list[NetlinkError]:
        """Sends a batch (BATCH_BEGIN at first_seq ... last message asking for an ACK at
        last_seq) and returns the errors the kernel reported ([] = committed)."""
        self.reserve(len(data) + (1 << 20))
        self.send(data)
        return [NetlinkError(e.errno, seq=e.seq) for e in self.errors(last_seq, fatal_seq=first_seq)]

    def _answers(self, msg_type: int, flags: int, attrs: tuple, family: int = w.NFPROTO_IPV4):
        """(type, payload) of the answers to one request; ENOENT means none."""
        seq = self.next_seq(1)
        message = w.encode_message(msg_type, flags, seq, family, attrs)
        what = w.MSG_NAMES.get(msg_type, f"nf_tables message {msg_type}")
        for answer in self.request(message, seq, what, missing_ok=True):
            yield answer.kind, answer.payload

    def generation(self) -> int:
        """The namespace's nf_tables ruleset generation (NFT_MSG_GETGEN): every commit to any
        table adds one."""
        for kind, payload in self._answers(w.MSG_GETGEN, 0, ()):
            if kind & 0xFF == w.MSG_NEWGEN:
                return int.from_bytes(w.parse_attrs(payload, 4)[w.GEN_ID], "big")
        raise NetlinkError(errno.EPROTO, "get generation", reason="nf_tables sent no generation")

    def dump(self, msg_type: int, attrs: tuple = (), family: int = w.NFPROTO_IPV4) -> list[dict[int, bytes]]:
        """A GET request with NLM_F_DUMP for `family` (ip by default): each answer's top-level
        attributes."""
        return [w.parse_attrs(payload, 4) for _, payload in self._answers(msg_type, w.NLM_F_DUMP, attrs, family)]

