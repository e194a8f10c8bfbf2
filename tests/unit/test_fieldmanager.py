"""kproxy.apiserver.fieldmanager: FieldsV1, field sets of objects, compare, merge, and the
Apply/Update ownership rules, with property tests for the guarantees server-side apply gives."""
from __future__ import annotations

import copy

import hypothesis.strategies as hs
import pytest
from hypothesis import example, given, settings

from kproxy.api import resources as R
from kproxy.apiserver import fieldmanager as fm

T = fm.kind_type(R.SERVICES)
POD = fm.kind_type(R.PODS)
PORT80 = 'k:{"port":80,"protocol":"TCP"}'


def apply(live, config, name="m", force=False, now="t1"):
    return fm.apply(live, config, T, fm.Manager(name, fm.APPLY), "v1", now, force)


def update(old, new, name="u", now="t1", sub=""):
    return fm.update(old, new, T, fm.Manager(name, fm.UPDATE, sub), "v1", now, has_status=True)


def svc(spec=None, **metadata):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", **metadata}, "spec": spec or {}}


def owned(obj, manager, operation=fm.APPLY):
    entry = next(e for e in obj["metadata"]["managedFields"] if (e["manager"], e["operation"]) == (manager, operation))
    return fm.decode_fields(entry["fieldsV1"])


def without_managed(obj):
    out = copy.deepcopy(obj)
    out["metadata"].pop("managedFields", None)
    return out


# --- FieldsV1 ---------------------------------------------------------------------------------

def test_fields_v1_marks_members_with_children_by_a_dot():
    fields = {("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:a"), ("f:spec", "f:ports", PORT80),
              ("f:spec", "f:ports", PORT80, "f:port"), ("f:spec", "f:type")}
    encoded = fm.encode_fields(fields)
    assert encoded == {"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
                       "f:spec": {"f:ports": {PORT80: {".": {}, "f:port": {}}}, "f:type": {}}}
    assert list(encoded["f:metadata"]["f:labels"]) == [".", "f:a"]  # "." first, as upstream writes it
    assert fm.decode_fields(encoded) == fields


@pytest.mark.parametrize("bad", [[], {"x:y": {}}, {"f:a": 1}, {"f:a": {".": {"f:b": {}}}}])
def test_decode_refuses_what_is_not_fields_v1(bad):
    with pytest.raises(ValueError):
        fm.decode_fields(bad)


def test_managed_fields_a_client_sends_are_used_only_when_valid():
    live = update(None, svc({"type": "ClusterIP"}), name="creator")
    for sent in ([{"manager": 5, "operation": "Update"}], [{"operation": "Nope"}], "x",
                 [{"manager": "m", "operation": "Update", "time": 7, "fieldsV1": {"f:spec": {"f:selector": {}}}}]):
        changed = copy.deepcopy(live)
        changed["metadata"]["managedFields"] = sent
        changed["spec"]["type"] = "NodePort"
        out = update(live, changed, name="editor", now="t2")  # never raises
        assert ("f:spec", "f:type") in owned(out, "editor", fm.UPDATE)
    reset = copy.deepcopy(live)
    reset["metadata"]["managedFields"] = []
    assert "managedFields" not in update(live, reset, name="editor")["metadata"]


def test_applied_fields_follow_list_types_and_map_keys():
    config = svc({"selector": {"app": "a"}, "externalIPs": ["1.2.3.4"], "sessionAffinityConfig": {},
                  "ports": [{"port": 80, "targetPort": 8080}]}, labels={"x": "1"})
    assert fm.encode_fields(fm.applied_fields(config, T)) == {
        "f:metadata": {"f:labels": {"f:x": {}}},  # a struct field with children is not a member
        "f:spec": {"f:externalIPs": {},  # atomic list: one leaf
                   "f:ports": {PORT80: {".": {}, "f:port": {}, "f:targetPort": {}}},  # protocol's default keys it
                   "f:selector": {}, "f:sessionAffinityConfig": {}}}  # an atomic map: one leaf


def test_two_items_with_one_key_are_refused():
    config = svc({"ports": [{"port": 80}, {"port": 80, "protocol": "TCP", "name": "x"}]})
    with pytest.raises(fm.BadConfig, match=r'^\.spec\.ports: duplicate entries for key \[port=80,protocol="TCP"\]$'):
        fm.applied_fields(config, T)


def test_set_lists_are_keyed_by_value():
    pod = {"metadata": {"name": "p", "finalizers": ["a/b"]}}
    assert fm.applied_fields(pod, POD) == {("f:metadata", "f:finalizers", 'v:"a/b"')}


def test_compare_reports_new_containers_and_changed_leaves():
    old = svc({"ports": [{"port": 80, "targetPort": 1}]})
    new = svc({"ports": [{"port": 80, "targetPort": 2}, {"port": 81}]}, labels={"a": "b"})
    cmp = fm.compare(old, new, T)
    assert cmp.modified == {("f:spec", "f:ports", PORT80, "f:targetPort")}
    p81 = ("f:spec", "f:ports", 'k:{"port":81,"protocol":"TCP"}')
    assert cmp.added == {("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:a"), p81, p81 + ("f:port",)}
    assert fm.compare(new, old, T).removed == cmp.added


# --- managers and their names ------------------------------------------------------------------

@pytest.mark.parametrize("agent, manager", [
    ("kubectl-client-side-apply/v1.32.4 (linux/amd64) kubernetes/59526cd", "kubectl-client-side-apply"),
    ("OpenAPI-Generator/37.0.0/python", "OpenAPI-Generator"),
    ("a\tb/1", "ab"), ("x" * 200, "x" * 128), ("", ""),
])
def test_manager_from_user_agent(agent, manager):
    assert fm.manager_from_user_agent(agent) == manager


def test_manager_problems():
    assert fm.manager_problems("kubectl") == []
    assert [r for r, _ in fm.manager_problems("m" * 129)] == ["FieldValueTooLong"]
    assert fm.manager_problems("a\x07")[0][1].endswith("invalid character U+0007 (at position 1)")


# --- Apply and Update --------------------------------------------------------------------------

def test_update_gains_what_it_changes_and_others_lose_it():
    applied = apply(None, svc({"selector": {"app": "a"}, "type": "ClusterIP"}))
    edited = copy.deepcopy(applied)
    edited["spec"]["selector"]["app"] = "b"
    out = update(applied, edited, name="editor", now="t2")
    assert ("f:spec", "f:selector") in owned(out, "editor", fm.UPDATE)
    assert owned(out, "m") == {("f:spec", "f:type")}
    # an unchanged update touches nothing, not even a time
    assert update(out, copy.deepcopy(out), name="editor", now="t3") == out


def test_update_entries_are_capped_into_ancient_changes():
    obj = update(None, svc({"type": "ClusterIP"}), name="creator", now="2026-01-01T00:00:00Z")
    for n in range(12):
        changed = copy.deepcopy(obj)
        changed["metadata"].setdefault("labels", {})[f"l{n}"] = "x"
        obj = update(obj, changed, name=f"writer{n}", now=f"2026-01-01T00:00:{n + 1:02d}Z")
    names = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(names) == fm.MAX_UPDATE_MANAGERS and fm.ANCIENT_CHANGES in names
    assert "creator" not in names and "writer11" in names
    everything = set().union(*(fm.decode_fields(e["fieldsV1"]) for e in obj["metadata"]["managedFields"]))
    assert ("f:spec", "f:type") in everything and ("f:metadata", "f:labels", "f:l0") in everything


def test_status_writes_are_their_own_entry_and_own_only_the_status():
    old = svc({"type": "ClusterIP"})
    new = {**svc({"type": "NodePort"}), "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}}
    out = update(old, new, name="lb", sub="status")
    entry = out["metadata"]["managedFields"][0]
    assert entry["subresource"] == "status" and list(entry["fieldsV1"]) == ["f:status"]


def test_an_apply_changes_only_what_its_subresource_writes():
    live = update(None, {**svc({"type": "ClusterIP"}), "status": {"loadBalancer": {}}}, name="creator")
    config = {**svc({"type": "NodePort"}), "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}}
    main = fm.apply(live, config, T, fm.Manager("m", fm.APPLY), "v1", "t", force=True, has_status=True)
    assert main["status"] == {"loadBalancer": {}} and "f:status" not in main["metadata"]["managedFields"][0]["fieldsV1"]
    status = fm.apply(live, config, T, fm.Manager("lb", fm.APPLY, "status"), "v1", "t", has_status=True)
    assert status["spec"] == {"type": "ClusterIP"} and status["status"]["loadBalancer"]["ingress"]
    entry = next(e for e in status["metadata"]["managedFields"] if e["manager"] == "lb")
    assert list(entry["fieldsV1"]) == ["f:status"] and entry["subresource"] == "status"


def test_conflicts_are_reported_with_upstream_wording():
    live = update(None, svc({"selector": {"app": "a"}, "type": "ClusterIP"}), name="kubectl-edit")
    with pytest.raises(fm.ApplyConflict) as raised:
        apply(live, svc({"selector": {"app": "b"}, "type": "NodePort"}))
    message, causes = fm.conflict_message(raised.value.conflicts)
    assert message == ('Apply failed with 2 conflicts: conflicts with "kubectl-edit" using v1:\n'
                       '- .spec.selector\n- .spec.type')
    assert causes[0] == {"reason": "FieldManagerConflict", "message": 'conflict with "kubectl-edit" using v1',
                         "field": ".spec.selector"}


def test_fields_of_an_object_without_managed_fields_belong_to_before_first_apply():
    legacy = svc({"type": "ClusterIP", "selector": {"app": "a"}})
    with pytest.raises(fm.ApplyConflict) as raised:
        apply(legacy, svc({"type": "NodePort"}))
    assert fm.conflict_message(raised.value.conflicts)[0].endswith(
        'conflict with "before-first-apply" using v1: .spec.type')
    out = apply(legacy, svc({"type": "ClusterIP"}))  # the same value: shared, no conflict
    assert ("f:spec", "f:selector") in owned(out, fm.BEFORE_FIRST_APPLY, fm.UPDATE)


def test_kubectl_takes_over_what_client_side_apply_set():
    last = '{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"ClusterIP"}}'
    live = update(None, svc({"type": "ClusterIP"}, annotations={fm.LAST_APPLIED: last}),
                  name="kubectl-client-side-apply")
    with pytest.raises(fm.ApplyConflict):
        apply(live, svc({"type": "NodePort"}), name="someone-else")
    out = apply(live, svc({"type": "NodePort"}), name="kubectl")
    assert out["spec"]["type"] == "NodePort"
    assert ("f:spec", "f:type") in owned(out, "kubectl")
    # and keeps the annotation true for a later client-side apply
    assert '"NodePort"' in out["metadata"]["annotations"][fm.LAST_APPLIED]


# --- properties --------------------------------------------------------------------------------

_names = hs.sampled_from(["a", "b", "c", "d", "e"])
_values = hs.sampled_from(["1", "2", "x"])
_labels = hs.dictionaries(_names, _values, max_size=4)
_ports = hs.lists(hs.fixed_dictionaries({"port": hs.integers(1, 6)},
                                        optional={"targetPort": hs.integers(1, 3), "name": _names,
                                                  "protocol": hs.sampled_from(["TCP", "UDP"])}),
                  max_size=3, unique_by=lambda p: (p["port"], p.get("protocol", "TCP")))
_specs = hs.fixed_dictionaries({}, optional={
    "selector": _labels, "ports": _ports, "type": hs.sampled_from(["ClusterIP", "NodePort"]),
    "externalIPs": hs.lists(hs.sampled_from(["1.1.1.1", "2.2.2.2"]), max_size=2),
    "sessionAffinityConfig": hs.fixed_dictionaries({}, optional={
        "clientIP": hs.fixed_dictionaries({}, optional={"timeoutSeconds": hs.integers(1, 3)})})})
_configs = hs.builds(lambda spec, labels: svc(spec, **({"labels": labels} if labels else {})), _specs, _labels)


@settings(max_examples=200, deadline=None)
@given(config=_configs)
def test_fields_v1_round_trips(config):
    fields = fm.applied_fields(config, T)
    assert fm.decode_fields(fm.encode_fields(fields)) == fields


@settings(max_examples=200, deadline=None)
@given(live=_configs, config=_configs)
@example(live=svc(), config=svc({"ports": []}))  # an apply that owned nothing left no entry
def test_applying_the_same_config_twice_is_a_no_op(live, config):
    start = update(None, live, name="creator")
    once = apply(start, config, force=True, now="t1")
    assert apply(once, config, now="t2") == once


@settings(max_examples=200, deadline=None)
@given(live=_configs, config=_configs)
def test_applied_values_are_in_the_result(live, config):
    out = apply(update(None, live, name="creator"), config, force=True)
    assert fm.applied_fields(config, T) <= fm.applied_fields(without_managed(out), T) | fm.applied_fields(config, T)
    for key, value in config["spec"].items():
        if key in ("ports", "sessionAffinityConfig"):  # granular: merged, not replaced
            continue
        assert out["spec"][key] == value
    for key, value in (config["metadata"].get("labels") or {}).items():
        assert out["metadata"]["labels"][key] == value


@settings(max_examples=200, deadline=None)
@given(live=_configs, extra_labels=_labels, extra_ports=_ports)
def test_an_apply_then_an_empty_apply_restores_the_rest(live, extra_labels, extra_ports):
    """What one manager adds and then stops applying goes; what others set stays as it was."""
    start = update(None, live, name="creator")
    labels = {k: v for k, v in extra_labels.items() if k not in (live["metadata"].get("labels") or {})}
    have = {(p["port"], p.get("protocol", "TCP")) for p in live["spec"].get("ports") or []}
    ports = [p for p in extra_ports if (p["port"], p.get("protocol", "TCP")) not in have]
    config = svc({"ports": ports}, **({"labels": labels} if labels else {}))
    if not ports:
        del config["spec"]  # an empty spec would be owned, and go with the next apply
    added = apply(start, config)
    removed = apply(added, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}})
    assert without_managed(removed) == without_managed(start)
    assert "m" not in [e["manager"] for e in removed["metadata"].get("managedFields", [])]


@settings(max_examples=200, deadline=None)
@given(old=_configs, new=_configs)
def test_compare_is_consistent(old, new):
    cmp = fm.compare(old, new, T)
    assert not (cmp.added & cmp.removed) and not (cmp.added & cmp.modified)
    assert fm.compare(new, new, T) == fm.Comparison(frozenset(), frozenset(), frozenset())
    back = fm.compare(new, old, T)
    assert back.added == cmp.removed and back.removed == cmp.added and back.modified == cmp.modified
