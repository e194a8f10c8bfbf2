"""Kubernetes protobuf (application/vnd.kubernetes.protobuf) for every kind in pbschema: the
`k8s\\0` envelope around runtime.Unknown, objects converted to and from their JSON form, the
length-delimited WatchEvent frames of a protobuf watch, and the choice of encoding for an
Accept header.

The protobuf library does the wire format, with message classes built at import from
pbschema's table. This module only maps JSON to messages and back, as upstream's JSON mapping
does: zeros and empty values are omitted except Go pointers' (omitempty), Time and MicroTime
are RFC 3339 strings, IntOrString an int or a string, Quantity a string, RawExtension and
FieldsV1 embedded JSON, Secret bytes base64, int64 plain numbers.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import json
import struct
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory, unknown_fields

from kproxy.apiserver import pbschema

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
WATCH_MEDIA_TYPE = MEDIA_TYPE + ";stream=watch"


class ProtobufError(ValueError):
    """The body is not a well-formed protobuf object (400)."""


class ProtobufUnsupported(ProtobufError):
    """Well-formed, but of a kind or encoding this server does not decode, or an object that has
    no protobuf form (415 for a body; a JSON answer instead for a response)."""


# ---------------------------------------------------------------------- the schema
_SCALARS = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
}
# packages in dependency order: each file may use the messages of those before it
_PACKAGES = ("intstr", "resource", "runtime", "meta", "core", "discovery", "coordination", "rbac", "apps",
             "batch", "authorization", "authentication", "policy")
_EXTRA_VALUES = ("authorization.ExtraValue", "authentication.ExtraValue")
_ZEROS = ("", 0, False)


@dataclass(frozen=True)
class Field:
    name: str  # the JSON name (and the protobuf field name)
    number: int
    kind: str  # a scalar name or a message name ("core.Pod")
    repeated: bool = False
    is_map: bool = False  # map<string, kind>
    inline: bool = False  # an embedded Go struct: its fields are the parent's in JSON
    pointer: bool = False  # a Go pointer: a zero or empty value that is present is kept
    always: bool = False  # a Go scalar without omitempty: in JSON even when zero (or absent)

    @property
    def is_message(self) -> bool:
        return self.kind not in _SCALARS


def parse_fields(spec: str) -> tuple[Field, ...]:
    """The fields of one pbschema entry."""
    fields = []
    for item in spec.split():
        name, rest = item.split("=", 1)
        number, kind = rest.split(":", 1)
        inline = kind.startswith("+")
        kind = kind.lstrip("+")
        repeated = kind.startswith("[]")
        is_map = kind.startswith("{}")
        kind = kind[2:] if repeated or is_map else kind
        pointer, always = kind.endswith("?"), kind.endswith("!")
        fields.append(Field(name, int(number), kind.rstrip("?!"), repeated, is_map, inline, pointer, always))
    return tuple(fields)


SCHEMA: dict[str, tuple[Field, ...]] = {
    name: parse_fields(spec) for name, spec in {**pbschema.LEAVES, **pbschema.MESSAGES}.items()}
_BY_NUMBER = {name: {f.number: f for f in fields} for name, fields in SCHEMA.items()}
_ALWAYS = {name: tuple(f for f in fields if f.always) for name, fields in SCHEMA.items() if any(f.always for f in fields)}
_SCALAR_ZERO = {"string": "", "int32": 0, "int64": 0, "bool": False}


def _entry_name(field: Field) -> str:
    return field.name[0].upper() + field.name[1:] + "Entry"


def _type_name(kind: str) -> str:
    return "." + kind


def _add_field(msg: descriptor_pb2.DescriptorProto, owner: str, field: Field) -> None:
    """Adds `field` to `msg` (message `owner`); a map gets its entry type nested in `msg`."""
    fd = msg.field.add(name=field.name, number=field.number)
    fd.label = fd.LABEL_REPEATED if field.repeated or field.is_map else fd.LABEL_OPTIONAL
    if field.is_map:
        entry = msg.nested_type.add(name=_entry_name(field))
        entry.options.map_entry = True
        _add_field(entry, owner, Field("key", 1, "string"))
        _add_field(entry, owner, Field("value", 2, field.kind))
        fd.type = fd.TYPE_MESSAGE
        fd.type_name = f"{_type_name(owner)}.{entry.name}"
    elif field.is_message:
        fd.type = fd.TYPE_MESSAGE
        fd.type_name = _type_name(field.kind)
    else:
        fd.type = _SCALARS[field.kind]


def build_classes(schema: dict[str, tuple[Field, ...]], packages: tuple[str, ...]) -> dict[str, type[message.Message]]:
    """Message classes for `schema` ("package.Name" -> fields), one proto2 file per package;
    `packages` in dependency order (each file may use the messages of those before it)."""
    pool = descriptor_pool.DescriptorPool()
    files = {}
    for package in packages:
        f = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package,
                                               syntax="proto2", dependency=[d.name for d in files.values()])
        files[package] = f
    for name, fields in schema.items():
        package, short = name.split(".")
        msg = files[package].message_type.add(name=short)
        for field in fields:
            _add_field(msg, name, field)
    for f in files.values():
        pool.Add(f)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name)) for name in schema}


CLASSES = build_classes(SCHEMA, _PACKAGES)


# ---------------------------------------------------------------------- JSON -> message
def _parse_time(value: Any) -> tuple[int, int]:
    if not isinstance(value, str):
        raise ProtobufUnsupported(f"a time must be a string, not {type(value).__name__}")
    t = datetime.datetime.fromisoformat(value)
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp() // 1), t.microsecond * 1000


def _leaf_in(kind: str, value: Any) -> dict[str, Any]:
    if kind in ("meta.Time", "meta.MicroTime"):
        seconds, nanos = _parse_time(value)
        return {"seconds": seconds, "nanos": nanos}
    if kind == "intstr.IntOrString":
        return {"type": 1, "strVal": value} if isinstance(value, str) else {"type": 0, "intVal": _int(value)}
    if kind == "resource.Quantity":
        return {"string": value if isinstance(value, str) else json.dumps(value)}
    if kind in _EXTRA_VALUES:
        if not isinstance(value, list):
            raise ProtobufUnsupported("an extra value must be a list of strings")
        return {"items": value}
    raw = json.dumps(value, separators=(",", ":")).encode()
    return {"raw": raw} if kind == "runtime.RawExtension" else {"Raw": raw}  # meta.FieldsV1


def _int(value: Any) -> int:
    if type(value) is not int:
        raise ProtobufUnsupported(f"expected an integer, not {type(value).__name__}")
    return value


def _scalar_in(kind: str, value: Any) -> Any:
    if kind == "bytes":
        return base64.b64decode(value, validate=True)
    if kind in ("int32", "int64"):
        return _int(value)
    return value  # str and bool: the library checks the type


def _json_fields(kind: str) -> dict[str, tuple[tuple[str, ...], Field]]:
    """JSON name -> (the embedded-struct attributes leading to its message, the field)."""
    out: dict[str, tuple[tuple[str, ...], Field]] = {}
    for f in SCHEMA[kind]:
        if f.inline:
            for name, (path, inner) in _json_fields(f.kind).items():
                out.setdefault(name, ((f.name, *path), inner))
        else:
            out[f.name] = ((), f)
    return out


_BY_JSON = {name: _json_fields(name) for name in pbschema.MESSAGES}


def message_fields(kind: str, obj: Any) -> dict[str, Any]:
    """The constructor arguments of message `kind` for its JSON form (nested dicts and lists,
    which the library turns into submessages in one call), ignoring keys the message does not
    have; ProtobufUnsupported when the JSON does not fit the message (the library raises
    TypeError/ValueError for a scalar of the wrong type)."""
    if kind in pbschema.LEAVES:
        return _leaf_in(kind, obj)
    if not isinstance(obj, dict):
        raise ProtobufUnsupported(f"{kind} must be an object, not {type(obj).__name__}")
    out: dict[str, Any] = {}
    by_json = _BY_JSON[kind]
    for key, value in obj.items():
        entry = by_json.get(key)
        if entry is None or value is None:
            continue
        path, f = entry
        target = out
        for attr in path:
            target = target.setdefault(attr, {})
        target[f.name] = _field_in(f, value)
    return out


def _field_in(f: Field, value: Any) -> Any:
    if f.is_map:
        if not isinstance(value, dict):
            raise ProtobufUnsupported(f"{f.name} must be an object")
        if f.is_message:
            return {k: message_fields(f.kind, v) for k, v in value.items()}
        return {k: _scalar_in(f.kind, v) for k, v in value.items()} if f.kind == "bytes" else value
    if f.repeated:
        if not isinstance(value, list):
            raise ProtobufUnsupported(f"{f.name} must be a list")
        if f.is_message:
            return [message_fields(f.kind, v) for v in value]
        return [_scalar_in(f.kind, v) for v in value] if f.kind == "bytes" else value
    if f.is_message:
        return message_fields(f.kind, value)
    return _scalar_in(f.kind, value)


# ---------------------------------------------------------------------- message -> JSON
def _time_out(msg: message.Message, micro: bool) -> str | None:
    if not msg.seconds and not msg.nanos:
        return None  # upstream's zero time
    t = datetime.datetime.fromtimestamp(msg.seconds, datetime.timezone.utc)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{msg.nanos // 1000:06d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _embedded_json(raw: bytes) -> Any:
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return decode(raw)
    try:
        return json.loads(raw)
    except ValueError:
        raise ProtobufError("an embedded object is neither JSON nor protobuf") from None


def _leaf_out(msg: message.Message, kind: str) -> Any:
    if kind in ("meta.Time", "meta.MicroTime"):
        return _time_out(msg, kind == "meta.MicroTime")
    if kind == "intstr.IntOrString":
        return msg.strVal if msg.type == 1 else msg.intVal
    if kind == "resource.Quantity":
        return msg.string
    if kind in _EXTRA_VALUES:
        return list(msg.items)
    if kind == "runtime.RawExtension":
        return _embedded_json(msg.raw)
    return _embedded_json(msg.Raw)  # meta.FieldsV1


_CONVERTED = set(SCHEMA) | {"bytes"}  # kinds whose values need converting to JSON


def _value_out(f: Field, value: Any) -> Any:
    if not f.is_message:
        return base64.b64encode(value).decode() if f.kind == "bytes" else value
    return _leaf_out(value, f.kind) if f.kind in pbschema.LEAVES else read(value, f.kind)


def read(msg: message.Message, kind: str) -> dict[str, Any]:
    """The JSON form of `msg` (of message `kind`), omitting what omitempty would omit."""
    out: dict[str, Any] = {}
    by_number = _BY_NUMBER[kind]
    for fd, value in msg.ListFields():
        f = by_number[fd.number]
        if f.is_map:
            out[f.name] = {k: _value_out(f, v) for k, v in value.items()} if f.kind in _CONVERTED else dict(value)
        elif f.repeated:
            out[f.name] = [_value_out(f, v) for v in value] if f.kind in _CONVERTED else list(value)
        elif f.inline:
            out.update(read(value, f.kind))
        else:
            v = _value_out(f, value)
            if v is None or (not (f.pointer or f.always) and (v == {} or (type(v) is not dict and v in _ZEROS))):
                continue
            out[f.name] = v
    for f in _ALWAYS.get(kind, ()):
        out.setdefault(f.name, _SCALAR_ZERO[f.kind])
    return out


def parse(kind: str, raw: bytes) -> message.Message:
    """Message `kind` from its wire form. A known field sent with the wrong wire type (which
    the library keeps as an unknown field) is a ProtobufError, as in upstream's decoder; the
    walk that looks for one runs only when there are unknown fields (or a non-canonical
    encoding), i.e. when the message without them is smaller than `raw`."""
    msg = CLASSES[kind].FromString(raw)
    msg.DiscardUnknownFields()
    if msg.ByteSize() != len(raw):
        _walk_unknown(CLASSES[kind].FromString(raw), kind)
    return msg


def _walk_unknown(msg: message.Message, kind: str) -> None:
    by_number = _BY_NUMBER[kind]
    for unknown in unknown_fields.UnknownFieldSet(msg):
        if unknown.field_number in by_number:
            raise ProtobufError(f"field {by_number[unknown.field_number].name} of {kind} has the wrong wire type")
    for fd, value in msg.ListFields():
        f = by_number[fd.number]
        if f.is_message:
            for v in value.values() if f.is_map else value if f.repeated else (value,):
                _walk_unknown(v, f.kind)


# ---------------------------------------------------------------------- envelope
def message_name(api_version: str, kind: str) -> str | None:
    """The protobuf message of a kind, None when it has no protobuf form here."""
    return pbschema.KINDS.get((api_version, kind))


def encode(obj: dict[str, Any]) -> bytes:
    """The protobuf form (envelope included) of a JSON object; ProtobufUnsupported when its
    kind has no protobuf form or its fields do not fit the message (the caller answers JSON)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = message_name(api_version, kind)
    if name is None:
        raise ProtobufUnsupported(f"{kind or 'an object without kind'} ({api_version}) has no protobuf form")
    try:
        msg = CLASSES[name](**message_fields(name, obj))
    except (TypeError, ValueError, binascii.Error, OverflowError) as exc:
        raise ProtobufUnsupported(f"the {kind} does not fit its protobuf message: {exc}") from None
    unknown = CLASSES["runtime.Unknown"](raw=msg.SerializeToString())
    unknown.typeMeta.apiVersion, unknown.typeMeta.kind = api_version, kind
    return MAGIC + unknown.SerializeToString()


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object; raises ProtobufError for bad data (whatever
    a crafted body holds: bad wire data, a time out of range, nesting past the recursion limit)
    and ProtobufUnsupported for a kind or an encoding this server does not decode."""
    try:
        return _decode(body)
    except ProtobufError:
        raise
    except message.DecodeError as exc:
        raise ProtobufError(f"malformed protobuf data ({exc})") from None
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, OSError, RecursionError) as exc:
        raise ProtobufError(f"malformed field ({type(exc).__name__})") from None


def _decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope prefix")
    unknown = CLASSES["runtime.Unknown"].FromString(body[len(MAGIC):])
    api_version, kind = unknown.typeMeta.apiVersion, unknown.typeMeta.kind
    if unknown.contentEncoding:
        raise ProtobufUnsupported(f"unsupported content encoding {unknown.contentEncoding!r}")
    name = message_name(api_version, kind)
    if name is None:
        raise ProtobufUnsupported(f"protobuf bodies of {kind or 'unknown kind'} ({api_version}) are not supported; send JSON")
    obj = read(parse(name, unknown.raw), name)
    return {"apiVersion": api_version, "kind": kind, **obj}


def watch_frame(event_type: str, encoded_object: bytes) -> bytes:
    """One event of a protobuf watch stream: a 4-byte big-endian length, then a WatchEvent whose
    object is the encoded object (envelope included)."""
    event = CLASSES["meta.WatchEvent"](type=event_type)
    event.object.raw = encoded_object
    data = event.SerializeToString()
    return struct.pack(">I", len(data)) + data
