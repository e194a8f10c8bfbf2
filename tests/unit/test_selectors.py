"""Label and field selectors: grammar, validation, matching semantics, canonical printing."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from kproxy.api import resources as R
from kproxy.api.selectors import (
    LabelSelector, SelectorError, parse_field_selector, parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "example.com/team": "net", "n": "5"}


@pytest.mark.parametrize("text,expected", [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("app!=web", False),
    ("missing!=x", True),          # != matches when the label is absent
    ("app in (web,db)", True),
    ("app in (db)", False),
    ("app notin (db)", True),
    ("app notin (web)", False),
    ("missing notin (x)", True),   # notin matches when the label is absent
    ("missing in (x)", False),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app=web,tier=front", True),
    ("app=web,tier=back", False),
    ("example.com/team=net", True),
    ("  app = web ,  tier in ( front , back )  ", True),
    ("n>4", True),
    ("n<4", False),
    ("missing>1", False),
    ("odd>1", False),                # "5_0" is not an integer label value
    ("app=", False),
    ("empty=", True),
    ("app in (web,)", True),
    ("empty in ()", True),            # "()" is the set {""}, as labels.Parse reads it
    ("app in ()", False),
    ("app notin ()", True),
])
def test_label_selector_matching(text, expected):
    labels = dict(LABELS, empty="", odd="5_0")
    assert parse_label_selector(text).matches(labels) is expected


def test_empty_selector_matches_none_labels():
    assert parse_label_selector("").matches(None)
    assert parse_label_selector("x!=y").matches(None)
    assert not parse_label_selector("x").matches(None)


@pytest.mark.parametrize("text,fragment", [
    ("app in (a", "expected: ',' or ')'"),
    ("app in a", "expected: '('"),
    ("!app=x", "expected: ',' or 'end of string'"),
    ("app=x,", "after ','"),
    (",", "expected: identifier"),
    ("app web", "expected: in, notin"),
    ("app=b=c", "expected: ',' or 'end of string'"),
    ("Bad_Prefix.com/a=b", "prefix part"),
    ("a/b/c=d", "a qualified name"),
    ("app=-x", "a valid label must be"),
    ("app=" + "x" * 64, "no more than 63 characters"),
    ("k" * 64 + "=v", "name part must be no more than 63 characters"),
    ("n>x", "must be an integer"),
    ("n>5_0", "must be an integer"),
    ("n<99999999999999999999", "must be an integer"),
    ("in", "expected: identifier"),
])
def test_label_selector_errors(text, fragment):
    with pytest.raises(SelectorError) as e:
        parse_label_selector(text)
    assert fragment in str(e.value)


def test_canonical_string_sorted():
    sel = parse_label_selector("z=1,a in (c,b,b),!m")
    assert str(sel) == "a in (b,c),!m,z=1"


def test_from_dict_object_form():
    sel = LabelSelector.from_dict({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "mid"]},
            {"key": "gone", "operator": "DoesNotExist"},
        ],
    })
    assert sel.matches({"app": "web", "tier": "mid"})
    assert not sel.matches({"app": "web", "tier": "mid", "gone": "1"})
    assert not sel.matches({"app": "web"})
    assert LabelSelector.from_dict({}).matches({"x": "y"})
    assert not LabelSelector.from_dict(None).matches({"x": "y"})


@pytest.mark.parametrize("d,fragment", [
    ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, "Unsupported value"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "can't be empty"),  # object form: no ()
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "must be empty"),
    ({"matchLabels": {"a": 1}}, "must be a string"),
    ({"matchLabels": {"-a": "b"}}, "name part"),
    ({"selector": {}}, "unknown field"),
])
def test_from_dict_errors(d, fragment):
    with pytest.raises(SelectorError) as e:
        LabelSelector.from_dict(d)
    assert fragment in str(e.value)


def test_from_labels_service_selector():
    sel = LabelSelector.from_labels({"app": "web", "tier": "front"})
    assert sel.matches(LABELS)
    assert not sel.matches({"app": "web"})
    assert LabelSelector.from_labels({}).empty()


# --- property tests ---------------------------------------------------------------------------

_name = st.from_regex(r"[a-z0-9]([-a-z0-9_.]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda s: s not in ("in", "notin"))
_key = st.one_of(_name, st.builds(lambda p, n: f"{p}.io/{n}", st.from_regex(r"[a-z]{1,8}", fullmatch=True), _name))
_value = st.one_of(st.just(""), _name)
_req = st.one_of(
    st.builds(lambda k: k, _key),
    st.builds(lambda k: "!" + k, _key),
    st.builds(lambda k, op, v: f"{k}{op}{v}", _key, st.sampled_from(["=", "==", "!="]), _value),
    st.builds(lambda k, op, vs: f"{k} {op} ({','.join(vs)})", _key, st.sampled_from(["in", "notin"]),
              st.lists(_name, min_size=1, max_size=4)),
)


@given(st.lists(_req, max_size=5))
def test_print_parse_roundtrip(reqs):
    sel = parse_label_selector(",".join(reqs))
    again = parse_label_selector(str(sel))
    assert again == sel
    assert str(again) == str(sel)


@given(st.lists(_req, min_size=1, max_size=4), st.dictionaries(_key, _value, max_size=5))
def test_conjunction_is_all_of_parts(reqs, labels):
    whole = parse_label_selector(",".join(reqs)).matches(labels)
    parts = all(parse_label_selector(r).matches(labels) for r in reqs)
    assert whole == parts


@given(_key, _value, st.dictionaries(_key, _value, max_size=5))
def test_equals_and_not_equals_are_complements(key, value, labels):
    assert parse_label_selector(f"{key}={value}").matches(labels) != \
        parse_label_selector(f"{key}!={value}").matches(labels)


@given(st.text(max_size=30))
def test_parser_never_crashes(text):
    try:
        sel = parse_label_selector(text)
    except SelectorError as e:
        assert str(e)
    else:
        assert parse_label_selector(str(sel)) == sel


# --- field selectors --------------------------------------------------------------------------

SVC = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.10", "type": "ClusterIP"}}
HEADLESS = {"metadata": {"name": "db", "namespace": "default"}, "spec": {"clusterIP": "None"}}
POD = {"metadata": {"name": "p1", "namespace": "ns1"}, "spec": {"nodeName": "node-1", "restartPolicy": "Always"},
       "status": {"phase": "Running"}}


def test_kube_proxy_service_field_selector():
    sel = parse_field_selector("spec.clusterIP!=None", R.SERVICES)
    assert sel.matches(SVC)
    assert not sel.matches(HEADLESS)


@pytest.mark.parametrize("text,obj,resource,expected", [
    ("metadata.name=web", SVC, R.SERVICES, True),
    ("metadata.name==db", SVC, R.SERVICES, False),
    ("metadata.namespace=default,metadata.name=web", SVC, R.SERVICES, True),
    ("spec.type=ClusterIP", SVC, R.SERVICES, True),
    ("spec.nodeName=node-1", POD, R.PODS, True),
    ("spec.nodeName=", POD, R.PODS, False),
    ("spec.nodeName=", {"metadata": {"name": "x"}, "spec": {}}, R.PODS, True),
    ("status.phase!=Running", POD, R.PODS, False),
    ("spec.restartPolicy=Always", POD, R.PODS, True),
    ("", POD, R.PODS, True),
    ("metadata.name=a\\,b", {"metadata": {"name": "a,b"}}, R.PODS, True),
])
def test_field_selector_matching(text, obj, resource, expected):
    assert parse_field_selector(text, resource).matches(obj) is expected


@pytest.mark.parametrize("text,resource,message", [
    ("spec.nodeName=x", R.SERVICES, "field label not supported: spec.nodeName"),
    ("spec.clusterIP=x", R.PODS, "field label not supported: spec.clusterIP"),
    ("spec.ports=x", R.SERVICES, "field label not supported: spec.ports"),
    ("metadata.name", R.PODS, "can't understand"),
    ("metadata.name=a=b", R.PODS, "unescaped"),
])
def test_field_selector_errors(text, resource, message):
    with pytest.raises(SelectorError) as e:
        parse_field_selector(text, resource)
    assert message in str(e.value)


def test_field_selector_exact_and_str():
    sel = parse_field_selector("metadata.name==a\\,b,spec.nodeName!=n", R.PODS)
    assert sel.exact("metadata.name") == "a,b"
    assert sel.exact("spec.nodeName") is None
    assert parse_field_selector(str(sel), R.PODS) == sel


def test_kube_proxy_service_label_selector():
    """The label selector kube-proxy's Service informer sends."""
    sel = parse_label_selector("!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name")
    assert sel.matches({"app": "web"})
    assert not sel.matches({"service.kubernetes.io/headless": ""})
    assert not sel.matches({"service.kubernetes.io/service-proxy-name": "other-proxy"})
    assert str(sel) == "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"


def test_endpoint_slice_service_name_selector():
    """The selector a proxy uses to list a Service's slices."""
    sel = parse_label_selector("kubernetes.io/service-name=web,endpointslice.kubernetes.io/managed-by")
    assert sel.matches({"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "c"})
    assert not sel.matches({"kubernetes.io/service-name": "web"})


@given(st.text(alphabet="metadata.nspc=!,\\ab", max_size=30))
def test_field_selector_parser_never_crashes(text):
    try:
        sel = parse_field_selector(text, R.PODS)
    except SelectorError:
        return
    assert isinstance(sel.matches(POD), bool)
