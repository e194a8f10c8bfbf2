"""SPDY/3.1 framing, sans-IO: what `kubectl port-forward` speaks (client-go's spdystream).

Only the server side of what port-forward uses: the peer opens streams (SYN_STREAM, odd ids),
this side answers (SYN_REPLY), both send DATA with FIN for half-close, RST_STREAM, PING (echoed),
GOAWAY; SETTINGS and WINDOW_UPDATE are read and ignored (spdystream keeps no flow-control
windows either). Header blocks are zlib-compressed with one stream per direction for the
whole connection, primed with the SPDY/3 dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1).

Guarantees: `FrameReader.feed` takes bytes in any slicing (WebSocket messages, TCP reads) and
returns only whole frames; a malformed frame raises ProtocolError, never something else.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED_STREAM, RST_CANCEL = 1, 2, 3, 5
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR = 0, 1
MAX_FRAME = 1 << 24  # the 24-bit length field
STREAM_ID_MASK = 0x7FFFFFFF

# The SPDY/3 header dictionary: these words, each after its 32-bit big-endian length, then
# a tail of status lines, dates and media types (1423 bytes in all).
_DICTIONARY_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location",
    "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
    "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
    "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
    "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
    "public", "set-cookie", "keep-alive", "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _DICTIONARY_WORDS) + _DICTIONARY_TAIL.encode()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3."""


@dataclass(frozen=True)
class Control:
    """A control frame: its type, flags and payload (a header block still compressed)."""

    type: int
    flags: int
    payload: bytes


@dataclass(frozen=True)
class Data:
    stream_id: int
    flags: int
    data: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class FrameReader:
    """Splits a byte stream into frames."""

    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> list[Control | Data]:
        self.buffer += chunk
        frames: list[Control | Data] = []
        while len(self.buffer) >= 8:
            first, flags_len = struct.unpack_from(">II", self.buffer)
            length = flags_len & 0xFFFFFF
            if len(self.buffer) < 8 + length:
                break
            payload = bytes(self.buffer[8:8 + length])
            del self.buffer[:8 + length]
            flags = flags_len >> 24
            if first & 0x80000000:
                version, type_ = (first >> 16) & 0x7FFF, first & 0xFFFF
                if version != VERSION:
                    raise ProtocolError(f"unsupported SPDY version {version}")
                frames.append(Control(type_, flags, payload))
            else:
                frames.append(Data(first & STREAM_ID_MASK, flags, payload))
        return frames


class HeaderCodec:
    """The two compression contexts of one connection (ours and the peer's)."""

    def __init__(self) -> None:
        self._out = zlib.compressobj(zdict=DICTIONARY)
        self._in = zlib.decompressobj(zdict=DICTIONARY)

    def encode(self, headers: dict[str, str]) -> bytes:
        block = struct.pack(">I", len(headers))
        for name, value in headers.items():
            n, v = name.lower().encode(), value.encode()
            block += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
        return self._out.compress(block) + self._out.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, compressed: bytes) -> dict[str, str]:
        """The header block as a dict (several values of a name: the first)."""
        try:
            block = self._in.decompress(compressed)
        except zlib.error as exc:
            raise ProtocolError(f"bad header block: {exc}") from None
        headers: dict[str, str] = {}
        try:
            (count,), at = struct.unpack_from(">I", block), 4
            for _ in range(count):
                (n,) = struct.unpack_from(">I", block, at)
                name = block[at + 4:at + 4 + n].decode()
                at += 4 + n
                (v,) = struct.unpack_from(">I", block, at)
                value = block[at + 4:at + 4 + v].decode()
                at += 4 + v
                headers.setdefault(name.lower(), value.split("\0")[0])
        except (struct.error, UnicodeDecodeError) as exc:
            raise ProtocolError(f"bad header block: {exc}") from None
        return headers


def _control(type_: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, type_, (flags << 24) | len(payload)) + payload


def syn_stream_id(frame: Control) -> tuple[int, bytes]:
    """(stream id, compressed header block) of a SYN_STREAM."""
    if len(frame.payload) < 10:
        raise ProtocolError("short SYN_STREAM")
    return struct.unpack_from(">I", frame.payload)[0] & STREAM_ID_MASK, frame.payload[10:]


def stream_id_of(frame: Control) -> int:
    """The stream id that RST_STREAM, SYN_REPLY, HEADERS and WINDOW_UPDATE start with."""
    if len(frame.payload) < 4:
        raise ProtocolError("short control frame")
    return struct.unpack_from(">I", frame.payload)[0] & STREAM_ID_MASK


def syn_reply(stream_id: int, header_block: bytes, fin: bool = False) -> bytes:
    return _control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + header_block)


def syn_stream(stream_id: int, header_block: bytes, fin: bool = False) -> bytes:
    """A SYN_STREAM (for tests and clients): no associated stream, priority 0."""
    return _control(SYN_STREAM, FLAG_FIN if fin else 0, struct.pack(">IIH", stream_id, 0, 0) + header_block)


def rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def ping(ping_id: bytes) -> bytes:
    return _control(PING, 0, ping_id[:4])


def goaway(last_stream_id: int, status: int = GOAWAY_OK) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))


def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
    if len(payload) >= MAX_FRAME:
        raise ValueError("a DATA frame holds less than 16 MiB")
    return struct.pack(">II", stream_id & STREAM_ID_MASK, ((FLAG_FIN if fin else 0) << 24) | len(payload)) + payload
