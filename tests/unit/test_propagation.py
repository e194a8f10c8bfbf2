"""DeleteOptions' propagation choices (pure): validation and the collector's finalizers."""
from __future__ import annotations

import pytest

from kproxy.api.status import ApiError
from kproxy.apiserver.propagation import deletion_finalizers, parse


@pytest.mark.parametrize("finalizers, policy, orphan, expected", [
    ([], None, None, []),
    ([], "Background", None, []),
    ([], "Foreground", None, ["foregroundDeletion"]),
    ([], "Orphan", None, ["orphan"]),
    (["a", "orphan", "b"], "Foreground", None, ["a", "b", "foregroundDeletion"]),
    (["orphan"], None, None, ["orphan"]),  # an earlier choice stands
    (["foregroundDeletion"], None, None, ["foregroundDeletion"]),
    (["foregroundDeletion"], None, True, ["orphan"]),
    (["foregroundDeletion", "x"], None, False, ["x"]),
    (["x", "orphan"], "Orphan", None, ["x", "orphan"]),  # unchanged: the order as stored
])
def test_deletion_finalizers(finalizers, policy, orphan, expected):
    assert deletion_finalizers(finalizers, policy, orphan) == expected


@pytest.mark.parametrize("query, body, code", [
    ({"propagationPolicy": "bogus"}, {}, 422),
    ({}, {"propagationPolicy": "Orphan", "orphanDependents": False}, 422),
    ({"orphanDependents": "true"}, {"propagationPolicy": "Orphan"}, 422),
    ({}, {"propagationPolicy": 3}, 400),
    ({}, {"orphanDependents": "yes"}, 400),
])
def test_parse_refuses(query, body, code):
    with pytest.raises(ApiError) as exc:
        parse(query, body)
    assert exc.value.code == code


def test_parse_reads_query_before_body():
    assert parse({"propagationPolicy": "Foreground"}, {"propagationPolicy": "Orphan"}) == ("Foreground", None)
    assert parse({"orphanDependents": "false"}, {}) == (None, False)
    assert parse({}, {"orphanDependents": True}) == (None, True)
