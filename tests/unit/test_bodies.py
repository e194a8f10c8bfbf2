"""Request-body decoding (kproxy/apiserver/bodies.py): alias expansion is counted without
expanding, excessive or recursive aliasing is refused, and no input makes decode() fail with
anything but a Status."""
from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as hs

from kproxy.api import status as st
from kproxy.apiserver import bodies, protobuf


def laughs(levels: int, width: int = 9) -> str:
    lines = ["l0: &l0 [" + ",".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def node_of(text: str) -> yaml.Node:
    return yaml.compose(text, Loader=yaml.SafeLoader)


def test_expansion_counts_every_alias_as_if_expanded():
    # {a: [x, y], b: *a}: the mapping, 2 keys, the list and its 2 items, then the alias again
    decodes, in_aliases = bodies.alias_expansion(node_of("a: &a [x, y]\nb: *a\n"))
    assert (decodes, in_aliases) == (1 + 2 + 3 + 3, 3)
    decodes, in_aliases = bodies.alias_expansion(node_of(laughs(4)))
    expanded = len(json.dumps(yaml.safe_load(laughs(4))).split('"lol"')) - 1
    assert expanded == 9 + 81 + 729 + 6561  # every level's list, expanded
    assert decodes > expanded and in_aliases > expanded // 2


def test_plain_documents_have_no_alias_steps():
    assert bodies.alias_expansion(node_of("a: [1, 2, {b: c}]\n"))[1] == 0


def test_excessive_aliasing_is_refused_and_moderate_aliasing_is_not():
    assert bodies.load_yaml(laughs(3))["l2"][0][0] == ["lol"] * 9
    with pytest.raises(ValueError, match="excessive aliasing"):
        bodies.load_yaml(laughs(7))


def test_decode_answers_400_for_a_bomb_and_for_a_recursive_alias():
    for text in (laughs(7), "a: &a [*a]\n"):
        with pytest.raises(st.ApiError) as err:
            bodies.decode(text.encode(), "application/yaml")
        assert err.value.code == 400


def test_decode_refuses_an_object_over_the_limit_with_413():
    body = json.dumps({"kind": "Event", "message": "x" * 5000}).encode()
    with pytest.raises(st.ApiError) as err:
        bodies.decode(body, "application/json", max_json_bytes=1000)
    assert err.value.code == 413
    assert bodies.decode(body, "application/json", max_json_bytes=10_000)["kind"] == "Event"


@settings(max_examples=300, deadline=None)
@given(raw=hs.one_of(hs.binary(max_size=300), hs.text(max_size=300).map(str.encode),
                     hs.recursive(hs.none() | hs.booleans() | hs.integers() | hs.text(max_size=8),
                                  lambda c: hs.lists(c, max_size=4) | hs.dictionaries(hs.text(max_size=4), c, max_size=4),
                                  max_leaves=30).map(lambda v: json.dumps(v).encode())),
       media=hs.sampled_from(["application/json", "application/yaml", protobuf.MEDIA_TYPE]))
def test_decode_never_fails_with_anything_but_a_status(raw, media):
    try:
        bodies.decode(raw, media, max_json_bytes=1024)
    except st.ApiError as exc:
        assert exc.code in (400, 413, 415)


def test_a_yaml_body_written_as_json_reads_the_same_as_yaml():
    from kproxy.apiserver.bodies import decode
    for raw in (b'{"a": [1, {"b": null}], "c": "d"}', b'{a: 1, b: [x]}', b'  {"x": 1.5, "y": true}'):
        assert decode(raw, "application/apply-patch+yaml") == yaml.safe_load(raw)
