"""Content negotiation (pure): the Accept header -> encoding and form, or 406."""
from __future__ import annotations

import pytest

from kproxy.api.status import ApiError
from kproxy.apiserver import negotiate as n

TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.mark.parametrize("accept, target, expected", [
    ("", n.OBJECT, n.Negotiated()),
    ("*/*", n.LIST, n.Negotiated()),
    ("application/json, */*", n.WATCH, n.Negotiated()),
    (f"{TABLE_V1},application/json", n.LIST, n.Negotiated(n.JSON, n.TABLE, "v1")),
    (f"application/json, {TABLE_V1}", n.LIST, n.Negotiated()),  # the first preference wins
    (f"application/json;q=0.5, {TABLE_V1}", n.LIST, n.Negotiated(n.JSON, n.TABLE, "v1")),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", n.OBJECT, n.Negotiated(n.JSON, n.TABLE, "v1beta1")),
    ("application/json;as=Table;v=v2;g=meta.k8s.io, application/yaml", n.OBJECT, n.Negotiated(n.YAML)),
    ("application/json;as=Table;g=meta.k8s.io, application/json", n.OBJECT, n.Negotiated()),  # no version
    ("application/yaml", n.LIST, n.Negotiated(n.YAML)),
    ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", n.LIST,
     n.Negotiated(n.JSON, n.PARTIAL_LIST, "v1")),
    ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", n.WATCH, n.Negotiated(n.JSON, n.PARTIAL, "v1")),
    ("application/vnd.kubernetes.protobuf, application/json", n.OBJECT, n.Negotiated(n.PROTOBUF)),
    ("application/json, application/vnd.kubernetes.protobuf", n.OBJECT, n.Negotiated()),
    ("application/vnd.kubernetes.protobuf;stream=watch", n.WATCH, n.Negotiated(n.PROTOBUF)),
    # a transformation is never answered in protobuf here: the next clause decides
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json", n.OBJECT, n.Negotiated()),
    ("text/html, application/*", n.OBJECT, n.Negotiated()),
    ("application/json;stream=watch", n.WATCH, n.Negotiated()),
])
def test_negotiate(accept, target, expected):
    assert n.negotiate(accept, target) == expected


@pytest.mark.parametrize("accept, target, message", [
    ("application/cbor", n.OBJECT,
     "only the following media types are accepted: application/json, application/yaml, "
     "application/vnd.kubernetes.protobuf"),
    ("text/html", n.LIST, "application/json, application/yaml"),
    ("application/yaml", n.WATCH, "only the following media types are accepted: application/json"),
    ("application/json;q=0", n.OBJECT, "only the following"),
    ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", n.OBJECT, "is not a list"),
    ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", n.LIST, "is a list"),
    ("application/json;as=Secret;g=meta.k8s.io;v=v1", n.OBJECT, "only the following"),
])
def test_not_acceptable(accept, target, message):
    with pytest.raises(ApiError) as exc:
        n.negotiate(accept, target)
    assert exc.value.code == 406 and exc.value.reason == "NotAcceptable" and message in str(exc.value)


def test_shapes():
    obj = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "data": {"a": "Yg=="}}
    listed = {"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": "5", "continue": "c"},
              "items": [obj]}
    table = lambda o: {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": []}  # noqa: E731
    assert n.shape(n.Negotiated(), obj, table) is obj
    assert n.shape(n.Negotiated(form=n.PARTIAL, version="v1beta1"), obj, table) == {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1beta1", "metadata": {"name": "s"}}
    assert n.shape(n.Negotiated(form=n.PARTIAL_LIST), listed, table) == {
        "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "5", "continue": "c"},
        "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "s"}}]}
    assert n.shape(n.Negotiated(form=n.TABLE, version="v1beta1"), obj, table)["apiVersion"] == "meta.k8s.io/v1beta1"
    status = {"kind": "Status", "status": "Success"}
    assert n.shape(n.Negotiated(form=n.PARTIAL), status, table) is status
