"""The nfnetlink socket: sends one batch and collects its errors, and dumps objects.

A NetlinkSocket must be created and used on the thread that lives in the target network
namespace (kproxy.netns.NetNS.run): a netlink socket talks to the namespace it was opened in.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass
from typing import Iterator

from . import wire as w

SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
RECV_TIMEOUT_SECONDS = 120.0
MIN_BUFFER = 4 << 20


@dataclass(frozen=True)
class NetlinkError:
    seq: int
    errno: int

    @property
    def message(self) -> str:
        return os.strerror(self.errno)


class NetlinkSocket:
    subsys = w.NFNL_SUBSYS_NFTABLES  # the nfnetlink subsystem requests go to (ipset: 6)

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, w.NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.settimeout(RECV_TIMEOUT_SECONDS)
        self._sndbuf = 0
        self._set_buffers(MIN_BUFFER)
        self.seq = 1

    def _set_buffers(self, size: int) -> None:
        if size <= self._sndbuf:
            return
        for force, plain in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, force, size)
            except OSError:  # not root: the capped, unforced size
                self.sock.setsockopt(socket.SOL_SOCKET, plain, size)
        self._sndbuf = size

    def next_seq(self, count: int) -> int:
        """Reserves `count` sequence numbers and returns the first."""
        first = self.seq
        self.seq += count
        return first

    def send_batch(self, data: bytes, first_seq: int, last_seq: int) -> list[NetlinkError]:
        """Sends a batch (BATCH_BEGIN at first_seq ... last message asking for an ACK at
        last_seq) and returns the errors the kernel reported ([] = committed)."""
        self._set_buffers(len(data) + (1 << 20))
        self.sock.send(data)
        errors: list[NetlinkError] = []
        for kind, seq, payload in self._messages():
            if kind != w.NLMSG_ERROR:
                continue
            code = -struct.unpack_from("=i", payload)[0]
            orig_seq = struct.unpack_from("=I", payload, 12)[0] if len(payload) >= 16 else seq
            if code:
                errors.append(NetlinkError(orig_seq, code))
            if orig_seq == last_seq or (code and orig_seq == first_seq):
                return errors
        raise AssertionError("unreachable")

    def _messages(self) -> Iterator[tuple[int, int, bytes]]:
        """(type, seq, payload) of every message the kernel sends us, as they arrive."""
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise OSError(errno.ETIMEDOUT, "no answer from nf_tables") from None
            for kind, _flags, seq, payload in w.iter_messages(chunk):
                yield kind, seq, payload

    def _answers(self, msg_type: int, flags: int, attrs: tuple) -> Iterator[tuple[int, bytes]]:
        """Sends one request and yields (type, payload) of the answers to it; an error answer
        other than 0 / ENOENT raises OSError, ENOENT and NLMSG_DONE end the answers."""
        seq = self.next_seq(1)
        self.sock.sendall(w.encode_message(msg_type, flags, seq, w.NFPROTO_IPV4, attrs, subsys=self.subsys))
        for kind, mseq, payload in self._messages():
            if mseq != seq:
                continue
            if kind == w.NLMSG_DONE:
                return
            if kind == w.NLMSG_ERROR:
                code = -struct.unpack_from("=i", payload)[0]
                if code in (0, errno.ENOENT):
                    return
                raise OSError(code, os.strerror(code))
            yield kind, payload

    def generation(self) -> int:
        """The namespace's nf_tables ruleset generation (NFT_MSG_GETGEN): every commit to any
        table adds one."""
        for kind, payload in self._answers(w.MSG_GETGEN, 0, ()):
            if kind & 0xFF == w.MSG_NEWGEN:
                return int.from_bytes(w.parse_attrs(payload, 4)[w.GEN_ID], "big")
        raise OSError(errno.EPROTO, "nf_tables sent no generation")

    def dump(self, msg_type: int, attrs: tuple = ()) -> list[dict[int, bytes]]:
        """A GET request with NLM_F_DUMP for family ip: each answer's top-level attributes."""
        return [w.parse_attrs(payload, 4) for _, payload in self._answers(msg_type, w.NLM_F_DUMP, attrs)]

    def close(self) -> None:
        self.sock.close()
