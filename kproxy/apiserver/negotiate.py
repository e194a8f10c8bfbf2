"""Content negotiation of API responses, as kube-apiserver's: which encoding the Accept header
asks for (JSON, YAML, protobuf; `encode` is the one place that turns a response object into
bytes of the negotiated media type) and
which form of the object (as is, a Table, or PartialObjectMetadata[List]: the `as`, `g` and
`v` parameters). Clauses are tried by preference (q, then order); a clause this server cannot
serve is skipped, and when none is left the answer is 406 with a Status. Pure."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import yaml

from kproxy.api import status as st
from kproxy.apiserver import protobuf

JSON, YAML, PROTOBUF = "application/json", "application/yaml", protobuf.MEDIA_TYPE
TABLE, PARTIAL, PARTIAL_LIST = "Table", "PartialObjectMetadata", "PartialObjectMetadataList"
META_GROUP, META_VERSIONS = "meta.k8s.io", ("v1", "v1beta1")
# what a request answers with: one object, a list, or a watch stream of objects
OBJECT, LIST, WATCH = "object", "list", "watch"
_FORMS = {OBJECT: (TABLE, PARTIAL), LIST: (TABLE, PARTIAL_LIST), WATCH: (TABLE, PARTIAL)}
_WRONG_FORM = {OBJECT: PARTIAL_LIST, LIST: PARTIAL}
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _yaml(obj: Any) -> str:
    # sigs.k8s.io/yaml's form: block style, keys sorted, text as written
    return yaml.dump(obj, Dumper=_Dumper, default_flow_style=False, sort_keys=True, allow_unicode=True)


# media type -> encoder of a response object; a watch can be framed in the STREAMING ones only.
# protobuf.encode raises ProtobufUnsupported for kinds without a protobuf form (see encode).
ENCODERS: dict[str, Callable[[Any], str | bytes]] = {JSON: _json, YAML: _yaml, PROTOBUF: protobuf.encode}
STREAMING = (JSON, PROTOBUF)


def encode(negotiated: "Negotiated", obj: Any, accept: str) -> tuple[bytes, str]:
    """(body, media type) of a response object. Protobuf is only what a client gets for kinds
    that have a protobuf form; for others the request's next acceptable encoding is used, as
    kube-apiserver answers JSON to `application/vnd.kubernetes.protobuf, application/json`, and
    406 when the Accept header allows nothing else."""
    media_type = negotiated.media_type
    if media_type == PROTOBUF:
        try:
            return protobuf.encode(obj), PROTOBUF
        except protobuf.ProtobufUnsupported:
            media_type = _fallback(accept)
    body = ENCODERS[media_type](obj)
    return (body.encode() if isinstance(body, str) else body), media_type


def _fallback(accept: str) -> str:
    for media, params in _clauses(accept):
        if params.get("as"):
            continue
        if media in ("*/*", "application/*", JSON):
            return JSON
        if media == YAML:
            return YAML
    raise _not_acceptable(f"only the following media types are accepted: {JSON}, {YAML}")


@dataclass(frozen=True)
class Negotiated:
    media_type: str = JSON
    form: str = ""  # "" (the object as is), TABLE, PARTIAL or PARTIAL_LIST
    version: str = "v1"  # of meta.k8s.io, for the Table and PartialObjectMetadata forms


def _clauses(accept: str) -> list[tuple[str, dict[str, str]]]:
    """(media range, parameters) of each Accept clause, most preferred first (by q, stable)."""
    parsed = []
    for part in accept.split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        if not media:
            continue
        values = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(values.pop("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            parsed.append((q, media, values))
    parsed.sort(key=lambda c: -c[0])
    return [(media, values) for _, media, values in parsed]


def _media_type(media: str, target: str) -> str | None:
    served = STREAMING if target == WATCH else tuple(ENCODERS)
    if media in ("*/*", "application/*"):
        return served[0]
    return media if media in served else None


def negotiate(accept: str, target: str) -> Negotiated:
    """What to answer a request whose response is `target` (OBJECT, LIST, WATCH) with."""
    if not accept.strip():
        return Negotiated()
    for media, params in _clauses(accept):
        media_type = _media_type(media, target)
        if media_type is None or params.get("stream", "watch") != "watch":
            continue
        form = params.get("as", "")
        if not form:
            return Negotiated(media_type)
        version = params.get("v", "")
        if params.get("g") != META_GROUP or version not in META_VERSIONS:
            continue
        if form == _WRONG_FORM.get(target):
            wanted = "a list" if target == LIST else "not a list"
            raise _not_acceptable(f"you requested {form}, but the requested object is {wanted}")
        if form not in _FORMS[target] or media_type == PROTOBUF:
            continue
        return Negotiated(media_type, form, version)
    served = STREAMING if target == WATCH else tuple(ENCODERS)
    raise _not_acceptable(f"only the following media types are accepted: {', '.join(served)}")


def _not_acceptable(message: str) -> st.ApiError:
    return st.ApiError(st.status(406, "NotAcceptable", message))


def partial_metadata(obj: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    return {"kind": PARTIAL, "apiVersion": f"{META_GROUP}/{version}", "metadata": obj.get("metadata") or {}}


def partial_metadata_list(listed: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    return {"kind": PARTIAL_LIST, "apiVersion": f"{META_GROUP}/{version}",
            "metadata": listed.get("metadata") or {},
            "items": [partial_metadata(item, version) for item in listed.get("items") or []]}


def shape(negotiated: Negotiated, obj: dict[str, Any], table: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """The response object in the negotiated form; `table` renders a Table. Status objects
    (a delete's answer, errors) are sent as they are."""
    if not negotiated.form or obj.get("kind") == "Status":
        return obj
    if negotiated.form == TABLE:
        return {**table(obj), "apiVersion": f"{META_GROUP}/{negotiated.version}"}
    if negotiated.form == PARTIAL_LIST:
        return partial_metadata_list(obj, negotiated.version)
    return partial_metadata(obj, negotiated.version)
