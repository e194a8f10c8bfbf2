"""The netlink socket every kproxy netlink client uses (nf_tables, ipset, IPVS): sequence
numbers, buffer sizing, reading answers, the ack/error loop, and NetlinkError.

A NetlinkSocket talks to the network namespace it was opened in: create and use it on the
thread that lives there (kproxy.netns.NetNS.run).
"""
from __future__ import annotations

import errno
import os
import socket
from typing import Iterable, Iterator

from .message import NLMSG_DONE, NLMSG_ERROR, ErrorAnswer, Message, iter_messages, parse_error

SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
RECV_BYTES = 1 << 20
RECV_TIMEOUT_SECONDS = 120.0


class NetlinkError(OSError):
    """The kernel refused a request: `errno`, and `request` (what was asked, for the message)
    and `seq` of the refused message when known."""

    errno: int  # always set (OSError's may be None)

    def __init__(self, code: int, request: str = "", seq: int = 0, reason: str | None = None) -> None:
        super().__init__(code, reason if reason is not None else os.strerror(code))
        self.request = request
        self.seq = seq

    def __str__(self) -> str:
        return f"{self.request}: {self.strerror}" if self.request else str(self.strerror)


class NetlinkSocket:
    """One netlink socket of `protocol` (NETLINK_NETFILTER, NETLINK_GENERIC...), bound to the
    kernel, with buffers of at least `buffer` bytes (forced past net.core.[rw]mem_max as root)."""

    def __init__(self, protocol: int, buffer: int = 4 << 20, timeout: float = RECV_TIMEOUT_SECONDS,
                 cap_ack: bool = False) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        try:
            self.sock.bind((0, 0))
            self.sock.settimeout(timeout)
            if cap_ack:  # errors echo only the refused message's header, not its (large) body
                self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            self._buffer = 0
            self.reserve(buffer)
        except BaseException:
            self.sock.close()
            raise
        self.seq = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "NetlinkSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_seq(self, count: int = 1) -> int:
        """Reserves `count` sequence numbers and returns the first."""
        first = self.seq
        self.seq = (self.seq + count) & 0xFFFFFFFF
        return first

    def reserve(self, size: int) -> None:
        """Grows both socket buffers to `size` bytes (never shrinks them)."""
        if size <= self._buffer:
            return
        for force, plain in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, force, size)
            except OSError:  # not root: the capped, unforced size
                self.sock.setsockopt(socket.SOL_SOCKET, plain, size)
        self._buffer = size

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def messages(self) -> Iterator[Message]:
        """Every message the kernel sends us, as they arrive (never ends by itself; a silent
        kernel raises ETIMEDOUT)."""
        while True:
            try:
                chunk = self.sock.recv(RECV_BYTES)
            except socket.timeout:
                raise NetlinkError(errno.ETIMEDOUT, reason="no answer from the kernel") from None
            yield from iter_messages(chunk)

    def errors(self, last_seq: int, seqs: Iterable[int] | None = None,
               fatal_seq: int | None = None) -> list[ErrorAnswer]:
        """Reads answers until the ack of `last_seq` and returns the refusals (errno != 0) of
        `seqs` (all when None), in the order they came. A refusal of `fatal_seq` (e.g. a
        batch's BATCH_BEGIN) ends the reading: nothing after it is answered."""
        wanted = None if seqs is None else set(seqs)
        refused: list[ErrorAnswer] = []
        for message in self.messages():
            if message.kind != NLMSG_ERROR:
                continue
            answer = parse_error(message.payload, message.seq)
            if answer.errno and (wanted is None or answer.seq in wanted):
                refused.append(answer)
            if answer.seq == last_seq or (answer.errno and answer.seq == fatal_seq):
                return refused
        raise AssertionError("unreachable")  # messages() never ends

    def request(self, message: bytes, seq: int, describe: str = "",
                missing_ok: bool = False) -> Iterator[Message]:
        """Sends one request numbered `seq` and yields its answers until NLMSG_DONE or its
        ack. A refusal raises NetlinkError naming `describe`; ENOENT only ends the answers
        when `missing_ok`."""
        self.send(message)
        for answer in self.messages():
            if answer.seq != seq:
                continue
            if answer.kind == NLMSG_DONE:
                return
            if answer.kind == NLMSG_ERROR:
                code = parse_error(answer.payload, seq).errno
                if code == 0 or (missing_ok and code == errno.ENOENT):
                    return
                raise NetlinkError(code, describe, seq)
            yield answer
