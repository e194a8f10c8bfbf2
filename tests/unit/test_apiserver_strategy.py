"""Resource strategies: each hook kind on its own, and the registry calling a strategy's hooks
for a kind it has never heard of (it names no kind itself)."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver.allocators import ClusterIPAllocator, NodePortAllocator
from kproxy.apiserver.deps import Deps
from kproxy.apiserver.registry import DeleteOptions, Registry
from kproxy.apiserver.service_alloc import ServiceAllocations
from kproxy.apiserver.strategy import Strategy, build_strategies
from kproxy.store import open_store

T0 = 1_700_000_000.0


def allocations() -> ServiceAllocations:
    return ServiceAllocations(ClusterIPAllocator("10.96.0.0/24"), NodePortAllocator("30000-30099"))


def strategies() -> Any:
    return build_strategies(allocations())


def service(name: str = "web", svc_type: str = "ClusterIP", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": svc_type, "ports": [{"port": 80, "protocol": "TCP"}], **spec}}


# ---------------------------------------------------------------- prepare_for_create
def test_prepare_for_create_resets_status_and_adds_the_namespace_finalizer():
    s = strategies()
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running", "podIP": "10.0.0.1"}}
    s[R.PODS].prepare_for_create(pod)
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    ns = {"metadata": {"name": "team"}, "spec": {"finalizers": ["example.com/x"]}, "status": {"phase": "Terminating"}}
    s[R.NAMESPACES].prepare_for_create(ns)
    assert ns["spec"]["finalizers"] == ["example.com/x", "kubernetes"]
    assert ns["status"] == {"phase": "Active"}
    plain = {"metadata": {"name": "cm"}, "status": {"x": 1}}
    Strategy(R.SECRETS).prepare_for_create(plain)
    assert plain["status"] == {"x": 1}  # no status subresource: the default leaves it alone


# ---------------------------------------------------------------- prepare_for_update
def test_prepare_for_update_keeps_status_and_namespace_finalizers():
    s = strategies()
    old = {"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
    new = {"metadata": {"name": "team"}, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}
    s[R.NAMESPACES].prepare_for_update(old, new)
    assert new["spec"]["finalizers"] == ["kubernetes"] and new["status"] == {"phase": "Active"}
    no_status = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}
    s[R.PODS].prepare_for_update({"metadata": {"name": "p"}}, no_status)
    assert "status" not in no_status
    endpoints = {"metadata": {"name": "e"}, "status": "kept"}
    s[R.ENDPOINTS].prepare_for_update({"metadata": {"name": "e"}}, endpoints)
    assert endpoints["status"] == "kept"  # Endpoints have no status subresource


# ---------------------------------------------------------------- canonicalize_update
def test_canonicalize_update_drops_fields_the_new_service_type_does_not_allow():
    s = strategies()
    old = service(svc_type="NodePort", clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"])
    old["spec"]["ports"][0]["nodePort"] = 30001
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ExternalName"
    new["spec"]["externalName"] = "example.com"
    out = s[R.SERVICES].canonicalize_update(old, new)
    assert "clusterIP" not in out["spec"] and "nodePort" not in out["spec"]["ports"][0]
    assert Strategy(R.PODS).canonicalize_update(old, new) is new


# ---------------------------------------------------------------- before_create / before_update / after_delete
def test_service_allocator_hooks_reserve_commit_and_release():
    alloc = allocations()
    svc_strategy = build_strategies(alloc)[R.SERVICES]
    obj, reservation = svc_strategy.before_create(service(svc_type="NodePort"))
    ip, port = obj["spec"]["clusterIP"], obj["spec"]["ports"][0]["nodePort"]
    assert alloc.ips.in_use(ip) and alloc.ports.in_use(port)
    reservation.rollback()
    assert not alloc.ips.in_use(ip) and not alloc.ports.in_use(port)

    obj, reservation = svc_strategy.before_create(service(svc_type="NodePort"))
    reservation.commit()
    as_cluster_ip = copy.deepcopy(obj)
    as_cluster_ip["spec"]["type"] = "ClusterIP"
    del as_cluster_ip["spec"]["ports"][0]["nodePort"]
    updated, reservation = svc_strategy.before_update(obj, as_cluster_ip)
    reservation.commit()
    assert not alloc.ports.in_use(obj["spec"]["ports"][0]["nodePort"])
    svc_strategy.after_delete(updated)
    assert not alloc.ips.in_use(obj["spec"]["clusterIP"])
    assert Strategy(R.PODS).before_create({"a": 1}) == ({"a": 1}, None)


# ---------------------------------------------------------------- before_delete / holds_deletion / mark_deleting
def test_namespace_delete_hooks():
    ns_strategy = strategies()[R.NAMESPACES]
    with pytest.raises(st.ApiError) as err:
        ns_strategy.before_delete({"metadata": {"name": "kube-system"}})
    assert err.value.status["code"] == 403
    terminating = {"metadata": {"name": "team", "deletionTimestamp": "2023-11-14T22:13:20Z"},
                   "spec": {"finalizers": ["kubernetes"]}}
    with pytest.raises(st.ApiError) as err:
        ns_strategy.before_delete(terminating)
    assert err.value.status["code"] == 409
    ns_strategy.before_delete({"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes"]}})
    assert ns_strategy.holds_deletion(terminating)
    assert not ns_strategy.holds_deletion({"metadata": {"name": "team"}, "spec": {"finalizers": []}})
    marked: dict[str, Any] = {"metadata": {"name": "team"}}
    ns_strategy.mark_deleting(marked)
    assert marked["status"]["phase"] == "Terminating"


# ---------------------------------------------------------------- finalize
def test_finalize_changes_only_the_namespace_spec_finalizers():
    ns_strategy = strategies()[R.NAMESPACES]
    old = {"metadata": {"name": "team", "labels": {"a": "b"}}, "spec": {"finalizers": ["kubernetes"]},
           "status": {"phase": "Terminating"}}
    body = {"metadata": {"name": "team", "labels": {}}, "spec": {"finalizers": []}, "status": {"phase": "Active"}}
    new = ns_strategy.finalize(old, body)
    assert new == {**old, "spec": {"finalizers": []}}
    assert old["spec"]["finalizers"] == ["kubernetes"]  # a copy
    with pytest.raises(st.ApiError) as err:
        Strategy(R.PODS).finalize(old, body)
    assert err.value.status["code"] == 400


# ---------------------------------------------------------------- grace_period
def test_pod_grace_period_only_for_scheduled_running_pods():
    pods = strategies()[R.PODS]
    scheduled = {"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 12}, "status": {"phase": "Running"}}
    assert pods.grace_period(scheduled, None) == 12
    assert pods.grace_period(scheduled, 3) == 3
    assert pods.grace_period({"spec": {"nodeName": "n1"}}, None) == 30
    assert pods.grace_period({"spec": {}}, None) == 0
    assert pods.grace_period({"spec": {"nodeName": "n1"}, "status": {"phase": "Failed"}}, 5) == 0
    assert Strategy(R.SECRETS).grace_period(scheduled, 5) == 0


# ---------------------------------------------------------------- flags and the table
def test_strategy_flags_per_kind():
    s = strategies()
    assert {r for r, x in s.items() if x.allow_create_on_update} == {R.ENDPOINTS, R.EVENTS, R.LEASES}
    assert {r for r, x in s.items() if x.serialised} == {R.SERVICES, R.NAMESPACES, R.RESOURCE_QUOTAS}
    assert {r for r, x in s.items() if x.quota_on_update} == {R.SERVICES}
    assert {r for r, x in s.items() if x.graceful_deletion} == {R.PODS}
    assert all(x.resource is r for r, x in s.items())


# ---------------------------------------------------------------- the registry calls the hooks
WIDGETS = R.Resource("example.com", "v1", "Widget", "widgets", "widget", False, status_subresource=True)


class WidgetStrategy(Strategy):
    """A kind the registry has never heard of: every hook leaves a trace."""
    allow_create_on_update = True
    graceful_deletion = True

    def __init__(self) -> None:
        super().__init__(WIDGETS)
        self.calls: list[str] = []

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        self.calls.append("prepare_for_create")
        obj["status"] = {"state": "new"}

    def before_create(self, obj: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        self.calls.append("before_create")
        return obj, None

    def canonicalize_update(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("canonicalize_update")
        return new

    def before_delete(self, obj: dict[str, Any]) -> None:
        self.calls.append("before_delete")

    def grace_period(self, obj: dict[str, Any], requested: int | None) -> int:
        return 10 if (obj.get("spec") or {}).get("slow") else 0

    def after_delete(self, obj: dict[str, Any]) -> None:
        self.calls.append("after_delete:" + obj["metadata"]["name"])


class NoValidation(Deps):
    def validate(self, resource: Any, obj: dict, old: dict | None = None) -> list[dict]:
        return []


def test_registry_runs_a_new_kinds_hooks(tmp_path):
    now = [T0]
    with open_store(str(tmp_path)) as store:
        registry = Registry(store, NoValidation(), allocations(), clock=lambda: now[0])
        widgets = WidgetStrategy()
        registry.strategies = {WIDGETS: widgets}
        created, was_created = registry.update(WIDGETS, None, "a", {"metadata": {"name": "a"}, "status": {"state": "x"}})
        assert was_created and created["status"] == {"state": "new"}
        assert widgets.calls == ["prepare_for_create", "before_create"]

        registry.update(WIDGETS, None, "a", {"metadata": {"name": "a"}, "spec": {"slow": True}})
        assert widgets.calls[-1] == "canonicalize_update"

        result = registry.delete(WIDGETS, None, "a", DeleteOptions())
        assert not result.deleted and result.obj["metadata"]["deletionGracePeriodSeconds"] == 10
        assert widgets.calls[-1] == "before_delete"
        now[0] = T0 + 11
        assert registry.sweep_expired_deletions() == 1
        assert widgets.calls[-1] == "after_delete:a"

        registry.create(WIDGETS, None, {"metadata": {"name": "b"}})
        assert registry.delete(WIDGETS, None, "b", DeleteOptions()).deleted
        assert widgets.calls[-1] == "after_delete:b"
