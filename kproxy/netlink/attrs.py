"""Declarative attribute tables: each attribute of a netlink family has a name, a number and a
type in one place (in the manner of pyroute2's nla_map), so encoding takes names and values and
decoding gives names and values without per-call-site struct formats.

    SERVICE = AttrTable("ipvs service", [
        Attr("af", 1, U16), Attr("protocol", 2, U16), Attr("addr", 3, BINARY), Attr("port", 4, BE16)])
    tree = SERVICE.encode({"af": 2, "port": 80})        # ((1, b"\\x02\\x00"), (4, b"\\x00P"))
    SERVICE.decode(encode_attrs(tree))                  # {"af": 2, "port": 80}

Attributes are encoded in the order the values are given (some kernels' parsers and our
golden bytes depend on it); a value that is already bytes is taken as encoded. A nested
attribute's type is another AttrTable.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from .message import NLA_F_NET_BYTEORDER, Attrs, decode_string, parse_attrs, string


@dataclass(frozen=True)
class Scalar:
    """A fixed-layout value (struct format); a format of several fields takes a tuple."""

    name: str
    fmt: str

    def encode(self, value: Any) -> bytes:
        return struct.pack(self.fmt, *value) if isinstance(value, tuple) else struct.pack(self.fmt, value)

    def decode(self, raw: bytes) -> Any:
        fields = struct.unpack_from(self.fmt, raw)
        return fields[0] if len(fields) == 1 else fields


@dataclass(frozen=True)
class _String:
    name: str = "string"

    def encode(self, value: str) -> bytes:
        return string(value)

    def decode(self, raw: bytes) -> str:
        return decode_string(raw)


@dataclass(frozen=True)
class _Binary:
    name: str = "binary"

    def encode(self, value: bytes) -> bytes:
        return bytes(value)

    def decode(self, raw: bytes) -> bytes:
        return bytes(raw)


@dataclass(frozen=True)
class _IPv4:
    name: str = "ipv4"

    def encode(self, value: str) -> bytes:
        return socket.inet_aton(value)

    def decode(self, raw: bytes) -> str:
        return socket.inet_ntoa(raw[:4])


@dataclass(frozen=True)
class _IPv6:
    name: str = "ipv6"

    def encode(self, value: str) -> bytes:
        return socket.inet_pton(socket.AF_INET6, value)

    def decode(self, raw: bytes) -> str:
        return socket.inet_ntop(socket.AF_INET6, raw[:16])


U8 = Scalar("u8", "=B")
U16 = Scalar("u16", "=H")
U32 = Scalar("u32", "=I")
BE16 = Scalar("be16", ">H")
BE32 = Scalar("be32", ">I")
BE64 = Scalar("be64", ">Q")
STRING = _String()
BINARY = _Binary()
IPV4 = _IPv4()
IPV6 = _IPv6()

Codec = Union[Scalar, _String, _Binary, _IPv4, _IPv6]


@dataclass(frozen=True)
class Attr:
    """One attribute: `name`, kernel `number`, `type` (a codec or, nested, an AttrTable);
    `net_byteorder` sets NLA_F_NET_BYTEORDER on the wire (ipset wants it on its be values)."""

    name: str
    number: int
    type: Union[Codec, "AttrTable"]
    net_byteorder: bool = False

    @property
    def wire_type(self) -> int:
        return self.number | (NLA_F_NET_BYTEORDER if self.net_byteorder else 0)


@dataclass(frozen=True)
class AttrTable:
    """The attributes of one message or nest, by name and by number."""

    name: str
    attrs: tuple[Attr, ...]
    by_name: dict[str, Attr] = field(init=False, repr=False, compare=False)
    by_number: dict[int, Attr] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attrs", tuple(self.attrs))
        object.__setattr__(self, "by_name", {a.name: a for a in self.attrs})
        object.__setattr__(self, "by_number", {a.number: a for a in self.attrs})
        if len(self.by_name) != len(self.attrs) or len(self.by_number) != len(self.attrs):
            raise ValueError(f"attribute table {self.name}: a name or number is used twice")

    def number(self, name: str) -> int:
        return self.by_name[name].number

    def encode(self, values: Mapping[str, Any]) -> Attrs:
        """The attribute tree of `values` (name -> value; None is left out), in their order."""
        out: list[tuple[int, Any]] = []  # (wire type, bytes or a nested tree)
        for name, value in values.items():
            try:
                attr = self.by_name[name]
            except KeyError:
                raise KeyError(f"{self.name} has no attribute {name!r}") from None
            if value is None:
                continue
            if isinstance(attr.type, AttrTable):
                out.append((attr.wire_type, value if isinstance(value, tuple) else attr.type.encode(value)))
            else:
                out.append((attr.wire_type, value if isinstance(value, bytes) else attr.type.encode(value)))
        return tuple(out)

    def decode(self, data: bytes, offset: int = 0) -> dict[str, Any]:
        """name -> value of the attributes in `data` this table knows (others are skipped:
        newer kernels add attributes)."""
        return self.values(parse_attrs(data, offset))

    def values(self, raw: Mapping[int, bytes]) -> dict[str, Any]:
        """decode() of attributes already split by number (message.parse_attrs)."""
        out: dict[str, Any] = {}
        for number, raw_value in raw.items():
            attr = self.by_number.get(number)
            if attr is not None:
                out[attr.name] = attr.type.decode(raw_value)
        return out
