"""/openapi/v2 as gnostic's openapi_v2.Document: what kubectl's validation reads from it."""
from __future__ import annotations

import yaml

from kproxy.apiserver import openapi_pb
from kproxy.apiserver.openapi import OpenAPI


def _extensions(msg):
    return {e.name: yaml.safe_load(e.value.yaml) for e in msg.vendor_extension}


def test_definitions_paths_and_extensions_survive_the_encoding():
    doc = OpenAPI().v2()
    pb = openapi_pb.CLASSES["gnostic.Document"].FromString(openapi_pb.encode(doc))
    assert pb.swagger == "2.0" and pb.info.title == doc["info"]["title"]
    definitions = {d.name: d.value for d in pb.definitions.additional_properties}
    assert set(definitions) == set(doc["definitions"])
    for name, schema in doc["definitions"].items():
        got = definitions[name]
        assert {p.name for p in got.properties.additional_properties} == set(schema.get("properties", {}))
        assert _extensions(got) == {k: v for k, v in schema.items() if k.startswith("x-")}
    service = {p.name: p.value for p in definitions["io.k8s.api.core.v1.Service"].properties.additional_properties}
    assert service["spec"]._ref == "#/definitions/io.k8s.api.core.v1.ServiceSpec"
    paths = {p.name: p.value for p in pb.paths.path}
    assert set(paths) == set(doc["paths"])
    create = paths["/api/v1/namespaces/{namespace}/services"].post
    assert create.operation_id == doc["paths"]["/api/v1/namespaces/{namespace}/services"]["post"]["operationId"]
    body = [p.parameter.body_parameter for p in create.parameters if p.parameter.HasField("body_parameter")]
    assert body[0].schema._ref == "#/definitions/io.k8s.api.core.v1.Service"
    queries = [p.parameter.non_body_parameter.query_parameter_sub_schema.name for p in create.parameters
               if p.parameter.HasField("non_body_parameter")]
    assert "fieldValidation" in queries
    assert _extensions(create)["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Service"}


def test_the_server_answers_protobuf_and_json(bare_apiserver):
    http = bare_apiserver.http()
    status, headers, raw = http.raw("GET", "/openapi/v2", None,
                                    {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert status == 200 and headers["content-type"] == openapi_pb.MEDIA_TYPE
    assert openapi_pb.CLASSES["gnostic.Document"].FromString(raw).swagger == "2.0"
    assert http.call("GET", "/openapi/v2")[1]["swagger"] == "2.0"
    status, _, _ = http.raw("GET", "/openapi/v2", None, {"Accept": "application/xml"})
    assert status == 406
