"""Every field of every served kind has a description in the OpenAPI documents (pure)."""
from __future__ import annotations

from kproxy.apiserver import schema as S
from kproxy.apiserver.openapi import OpenAPI, load_descriptions


def _undescribed(doc: dict, where: str, out: list[str]) -> None:
    for name, prop in (doc.get("properties") or {}).items():
        if not prop.get("description"):
            out.append(f"{where}.{name}")
        inner = prop.get("items") or prop.get("additionalProperties") or prop
        if isinstance(inner, dict):
            _undescribed(inner, f"{where}.{name}", out)


def test_every_field_and_type_is_described():
    api = OpenAPI()
    for doc in (api.v2()["definitions"], api.v3("api/v1")["components"]["schemas"]):
        missing: list[str] = []
        for name, definition in doc.items():
            if name.endswith("List"):
                continue
            if not definition.get("description"):
                missing.append(name)
            _undescribed(definition, name, missing)
        assert missing == []


def test_v3_wraps_described_references_in_all_of():
    spec = OpenAPI().v3("api/v1")["components"]["schemas"]["io.k8s.api.core.v1.Service"]["properties"]["spec"]
    assert spec["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.ServiceSpec"}]
    assert spec["description"]


def test_descriptions_name_only_known_definitions_and_fields():
    """A typo in descriptions.json must not silently describe nothing."""
    def paths(t: S.Type, prefix: tuple[str, ...] = ()) -> set[str]:
        if isinstance(t, (S.ListOf,)):
            return paths(t.item, prefix)
        if isinstance(t, S.MapOf):
            return paths(t.value, prefix)
        if not isinstance(t, S.Struct):
            return set()
        out = set()
        for k, v in t.fields.items():
            out |= {".".join(prefix + (k,))} | paths(v, prefix + (k,))
        return out

    for name, fields in load_descriptions()["definitions"].items():
        assert name in S.DEFINITIONS, name
        unknown = set(fields) - {""} - paths(S.DEFINITIONS[name])
        assert not unknown, (name, unknown)
