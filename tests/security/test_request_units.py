"""Pure pieces of issue 15's request hardening: query booleans as upstream converts them, the
Host check of the plain listener, impersonation headers, bounded decoded bodies."""
from __future__ import annotations

import pytest
from multidict import CIMultiDict

from kproxy.api import status as st
from kproxy.apiserver.auth import impersonation
from kproxy.apiserver.auth.middleware import loopback_host
from kproxy.apiserver.query import query_bool, resource_version
from kproxy.apiserver.rest import refuse_unrepresentable


def test_query_bool_as_upstream():
    assert [query_bool(v) for v in (None, "0", "false", "FALSE")] == [False] * 4
    assert [query_bool(v) for v in ("1", "true", "yes", "", "anything")] == [True] * 5


def test_resource_version_bounds():
    assert resource_version({}) is None and resource_version({"resourceVersion": ""}) is None
    assert resource_version({"resourceVersion": "0"}) == 0
    assert resource_version({"resourceVersion": str(2 ** 63 - 1)}) == 2 ** 63 - 1
    for bad in ("abc", "-1", "+1", " 1", str(2 ** 63), "١"):  # the last is an Arabic-Indic digit
        with pytest.raises(st.ApiError) as info:
            resource_version({"resourceVersion": bad})
        assert info.value.code == 400


def test_loopback_host():
    for good in ("localhost", "LOCALHOST:8080", "127.0.0.1", "127.1.2.3:80", "[::1]", "[::1]:6443", "::1"):
        assert loopback_host(good), good
    for bad in (None, "", "evil.example", "localhost.evil", "10.0.0.1", "0.0.0.0", "[::]:80", "127.0.0.1.nip.io"):
        assert not loopback_host(bad), bad


def test_impersonation_headers():
    assert impersonation.requested(CIMultiDict()) is None
    wanted = impersonation.requested(CIMultiDict([("Impersonate-User", "system:serviceaccount:ns:robot"),
                                                  ("Impersonate-Group", "a"), ("Impersonate-Group", "b")]))
    assert wanted == impersonation.Impersonation("system:serviceaccount:ns:robot", ("a", "b"))
    assert [(a.resource, a.namespace, a.name) for a in impersonation.checks(wanted)] == [
        ("serviceaccounts", "ns", "robot"), ("groups", "", "a"), ("groups", "", "b")]
    user = impersonation.impersonated_user(wanted)
    assert user.groups == ("a", "b", "system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated")
    for headers in ([("Impersonate-Group", "x")], [("Impersonate-User", "a"), ("Impersonate-User", "b")],
                    [("Impersonate-User", "a"), ("Impersonate-Uid", "1")], [("Impersonate-User", " ")]):
        with pytest.raises(st.ApiError) as info:
            impersonation.requested(CIMultiDict(headers))
        assert info.value.code == 400


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2 ** 63, -(2 ** 63) - 1, 1e29, {1: "x"}, nested(120)])
def test_refuse_unrepresentable(value):
    with pytest.raises(st.ApiError) as info:
        refuse_unrepresentable({"a": value})
    assert info.value.code == 400


def test_representable_values_pass():
    refuse_unrepresentable({"a": [1, -(2 ** 63), 2 ** 63 - 1, 1.5, True, None, "s", {"b": {}}]})
