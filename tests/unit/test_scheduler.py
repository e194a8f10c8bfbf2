"""The scheduler's filters, scores and decision, on plain API objects (issue 19)."""
from __future__ import annotations

import random

import pytest

from kproxy.scheduler.context import PodContext
from kproxy.scheduler.filters import (node_affinity, node_ports, node_unschedulable, reasons_against,
                                      resources_fit, taint_toleration)
from kproxy.scheduler.framework import Scheduled, Unschedulable, fit_error_message, schedule
from kproxy.scheduler.scores import (balanced_allocation, least_allocated, normalize_reverse,
                                     preferred_affinity, score_nodes, untolerated_prefer_no_schedule)
from kproxy.scheduler.snapshot import NodeInfo, Snapshot, nonzero_requests, pod_requests, quantity
from kproxy.scheduler.spread import skew_violations


def node(name, cpu="4", memory="8Gi", pods="110", labels=None, taints=None, unschedulable=False, ready="True"):
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}, "conditions": conditions}}


def pod(name="p", cpu=None, memory=None, node_name=None, labels=None, owner=None, **spec):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    meta = {"name": name, "namespace": "default", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": f"uid-{owner}", "controller": True}]
    body = {"containers": [{"name": "c", "image": "i", "resources": {"requests": requests}}], **spec}
    if node_name:
        body["nodeName"] = node_name
    return {"metadata": meta, "spec": body, "status": {}}


def ctx_for(p, *nodes, pods=()):
    snap = Snapshot.build(nodes, pods)
    return PodContext.of(p, snap), snap


# --- quantities and requests -------------------------------------------------------------

def test_quantities_in_millicores_and_units():
    assert quantity("cpu", "250m") == 250
    assert quantity("cpu", "1.5") == 1500
    assert quantity("cpu", 2) == 2000
    assert quantity("memory", "1Gi") == 1024 ** 3
    assert quantity("memory", "1k") == 1000
    assert quantity("memory", "garbage") == 0


def test_pod_request_is_the_larger_of_containers_and_each_init_container_plus_overhead():
    p = {"spec": {"containers": [{"resources": {"requests": {"cpu": "200m"}}},
                                 {"resources": {"limits": {"cpu": "300m", "memory": "1Mi"}}}],
                  "initContainers": [{"resources": {"requests": {"cpu": "1"}}}],
                  "overhead": {"cpu": "10m"}}}
    assert pod_requests(p) == {"cpu": 1010, "memory": 1024 ** 2}


def test_nonzero_requests_count_empty_containers_as_100m_and_200mi():
    assert nonzero_requests(pod()) == (100, 200 * 1024 ** 2)
    assert nonzero_requests(pod(cpu="1")) == (1000, 200 * 1024 ** 2)


# --- filters -----------------------------------------------------------------------------

def test_resources_fit_counts_what_the_node_already_runs():
    n = node("a", cpu="2", memory="1Gi", pods="2")
    running = [pod("r1", cpu="1500m", node_name="a")]
    ctx, snap = ctx_for(pod(cpu="600m"), n, pods=running)
    assert resources_fit(ctx, snap.nodes["a"]) == ("Insufficient cpu",)
    ctx, snap = ctx_for(pod(cpu="500m", memory="2Gi"), n, pods=running)
    assert resources_fit(ctx, snap.nodes["a"]) == ("Insufficient cpu", "Insufficient memory")[1:]
    ctx, snap = ctx_for(pod(cpu="500m"), n, pods=running)
    assert resources_fit(ctx, snap.nodes["a"]) == ()
    ctx, snap = ctx_for(pod(), n, pods=running + [pod("r2", node_name="a")])
    assert resources_fit(ctx, snap.nodes["a"]) == ("Too many pods",)


def test_terminal_pods_free_their_resources():
    done = pod("done", cpu="2", node_name="a")
    done["status"]["phase"] = "Succeeded"
    ctx, snap = ctx_for(pod(cpu="2"), node("a", cpu="2"), pods=[done])
    assert resources_fit(ctx, snap.nodes["a"]) == ()


def test_extended_resources_are_checked_by_name():
    p = pod()
    p["spec"]["containers"][0]["resources"]["requests"]["example.com/gpu"] = "1"
    ctx, snap = ctx_for(p, node("a"))
    assert resources_fit(ctx, snap.nodes["a"]) == ("Insufficient example.com/gpu",)


def test_taints_need_tolerations_with_upstream_matching():
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    ctx, snap = ctx_for(pod(), node("a", taints=[taint]))
    assert taint_toleration(ctx, snap.nodes["a"]) == ("node(s) had untolerated taint {dedicated: db}",)
    for toleration in ({"key": "dedicated", "operator": "Equal", "value": "db"},
                       {"key": "dedicated", "operator": "Exists"},
                       {"operator": "Exists"},
                       {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}):
        ctx, snap = ctx_for(pod(tolerations=[toleration]), node("a", taints=[taint]))
        assert taint_toleration(ctx, snap.nodes["a"]) == (), toleration
    for toleration in ({"key": "dedicated", "value": "web"},
                       {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},
                       {"key": "other", "operator": "Exists"}):
        ctx, snap = ctx_for(pod(tolerations=[toleration]), node("a", taints=[taint]))
        assert taint_toleration(ctx, snap.nodes["a"]) != (), toleration


def test_prefer_no_schedule_taints_do_not_filter():
    ctx, snap = ctx_for(pod(), node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}]))
    assert taint_toleration(ctx, snap.nodes["a"]) == ()


def test_a_node_that_is_not_ready_is_tainted_as_the_lifecycle_controller_would():
    ctx, snap = ctx_for(pod(), node("a", ready="False"), node("b", ready=None))
    assert taint_toleration(ctx, snap.nodes["a"]) == ("node(s) had untolerated taint {node.kubernetes.io/not-ready: }",)
    assert taint_toleration(ctx, snap.nodes["b"]) == ("node(s) had untolerated taint {node.kubernetes.io/unreachable: }",)
    tolerant = pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    ctx, snap = ctx_for(tolerant, node("a", ready="False"))
    assert taint_toleration(ctx, snap.nodes["a"]) == ()


def test_cordoned_nodes_are_unschedulable_unless_tolerated():
    ctx, snap = ctx_for(pod(), node("a", unschedulable=True))
    assert node_unschedulable(ctx, snap.nodes["a"]) == ("node(s) were unschedulable",)
    p = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}])
    ctx, snap = ctx_for(p, node("a", unschedulable=True))
    assert node_unschedulable(ctx, snap.nodes["a"]) == ()


def _required(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize("spec, fits", [
    ({"nodeSelector": {"disk": "ssd"}}, True),
    ({"nodeSelector": {"disk": "hdd"}}, False),
    ({"affinity": _required({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]})}, True),
    ({"affinity": _required({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]})}, False),
    ({"affinity": _required({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]})}, True),
    ({"affinity": _required({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]})}, False),
    ({"affinity": _required({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})}, True),
    ({"affinity": _required({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]})}, True),
    ({"affinity": _required({})}, False),  # an empty term matches nothing
    ({"affinity": _required({"matchExpressions": [{"key": "zone", "operator": "Bogus", "values": ["z1"]}]})}, False),
    ({"nodeSelector": {"disk": "ssd"},
      "affinity": _required({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z9"]}]})}, False),
])
def test_node_selector_and_required_affinity(spec, fits):
    n = node("a", labels={"disk": "ssd", "zone": "z1", "cores": "16"})
    ctx, snap = ctx_for(pod(**spec), n)
    assert (node_affinity(ctx, snap.nodes["a"]) == ()) is fits


def test_host_port_conflicts():
    def with_port(name, port, ip=None, proto="TCP", node_name=None):
        p = pod(name, node_name=node_name)
        p["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": port, "protocol": proto,
                                                **({"hostIP": ip} if ip else {})}]
        return p
    running = [with_port("r", 8080, ip="10.0.0.1", node_name="a")]
    for candidate, conflicts in ((with_port("p", 8080), True), (with_port("p", 8080, ip="10.0.0.1"), True),
                                 (with_port("p", 8080, ip="10.0.0.2"), False),
                                 (with_port("p", 8080, proto="UDP"), False), (with_port("p", 9090), False)):
        ctx, snap = ctx_for(candidate, node("a"), pods=running)
        assert (node_ports(ctx, snap.nodes["a"]) != ()) is conflicts


def test_the_first_failing_filter_decides():
    n = node("a", cpu="1", taints=[{"key": "k", "effect": "NoSchedule"}])
    ctx, snap = ctx_for(pod(cpu="2"), n)
    assert reasons_against(ctx, snap.nodes["a"]) == ("node(s) had untolerated taint {k: }",)


# --- topology spread ---------------------------------------------------------------------

def _spread(key, max_skew=1, when="DoNotSchedule", app="web"):
    return {"topologySpreadConstraints": [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
                                           "labelSelector": {"matchLabels": {"app": app}}}]}


def test_hard_spread_keeps_skew_within_max_skew():
    nodes = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z1"}), node("c", labels={"zone": "z2"})]
    running = [pod("w1", node_name="a", labels={"app": "web"}), pod("w2", node_name="b", labels={"app": "web"})]
    ctx, snap = ctx_for(pod(labels={"app": "web"}, **_spread("zone")), *nodes, pods=running)
    assert skew_violations(ctx, snap.nodes["a"]) == ("node(s) didn't match pod topology spread constraints",)
    assert skew_violations(ctx, snap.nodes["c"]) == ()
    unlabelled = node("d")
    ctx, snap = ctx_for(pod(labels={"app": "web"}, **_spread("zone")), *nodes, unlabelled, pods=running)
    assert skew_violations(ctx, snap.nodes["d"]) == (
        "node(s) didn't match pod topology spread constraints (missing required label)",)


def test_soft_spread_and_default_owner_spread_prefer_the_emptier_domain():
    nodes = [node("a"), node("b")]
    running = [pod("w1", node_name="a", owner="rs1"), pod("w2", node_name="a", owner="rs1")]
    ctx, snap = ctx_for(pod(owner="rs1"), *nodes, pods=running)
    scores = score_nodes(ctx, list(snap.nodes.values()))
    assert scores["b"]["PodTopologySpread"] > scores["a"]["PodTopologySpread"]
    # pods of another owner do not count
    ctx, snap = ctx_for(pod(owner="rs2"), *nodes, pods=running)
    scores = score_nodes(ctx, list(snap.nodes.values()))
    assert scores["b"]["PodTopologySpread"] == scores["a"]["PodTopologySpread"]


# --- scores ------------------------------------------------------------------------------

def test_least_allocated_and_balanced_allocation():
    n = NodeInfo.of(node("a", cpu="4", memory="4Gi"))
    ctx, _ = ctx_for(pod(cpu="1", memory="1Gi"), node("a"))
    assert least_allocated(ctx, n) == 75
    assert balanced_allocation(ctx, n) == 100
    ctx, _ = ctx_for(pod(cpu="2", memory="200Mi"), node("a"))
    # cpu half used, memory ~5%: unbalanced
    assert balanced_allocation(ctx, n) < 80
    assert least_allocated(ctx, n) == (50 + 95) // 2


def test_prefer_no_schedule_and_preferred_affinity_scores():
    nodes = [node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}], labels={"disk": "ssd"}), node("b")]
    p = pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}})
    ctx, snap = ctx_for(p, *nodes)
    infos = list(snap.nodes.values())
    assert [untolerated_prefer_no_schedule(ctx, n) for n in infos] == [1, 0]
    assert [preferred_affinity(ctx, n) for n in infos] == [50, 0]
    assert normalize_reverse([1, 0]) == [0, 100]
    scores = score_nodes(ctx, infos)
    assert scores["a"]["TaintToleration"] == 0 and scores["b"]["TaintToleration"] == 300
    assert scores["a"]["NodeAffinity"] == 200 and scores["b"]["NodeAffinity"] == 0


def test_the_emptier_node_wins():
    nodes = [node("a"), node("b")]
    result = schedule(pod(cpu="1"), Snapshot.build(nodes, [pod("x", cpu="2", node_name="a")]))
    assert isinstance(result, Scheduled) and result.node == "b"


# --- the decision and its message ---------------------------------------------------------

def test_fit_error_message_matches_kube_scheduler():
    assert fit_error_message(0, {}) == "no nodes available to schedule pods"
    reasons = {"a": ("Insufficient cpu",), "b": ("node(s) had untolerated taint {k: v}",),
               "c": ("node(s) had untolerated taint {k: v}",)}
    assert fit_error_message(3, reasons) == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {k: v}.")


def test_unschedulable_pod_explains_every_node():
    nodes = [node("a", cpu="1"), node("b", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}]),
             node("c", unschedulable=True)]
    result = schedule(pod(cpu="2"), Snapshot.build(nodes, []))
    assert isinstance(result, Unschedulable)
    assert result.message == ("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}, "
                              "1 node(s) were unschedulable.")


# --- 300 pods over 3 nodes of different sizes ----------------------------------------------

def _random_pod(rng: random.Random, i: int) -> dict:
    spec: dict = {}
    if rng.random() < 0.2:
        spec["nodeSelector"] = {"disk": rng.choice(["ssd", "hdd"])}
    if rng.random() < 0.3:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    if rng.random() < 0.2:
        spec.update(_spread("zone", max_skew=rng.choice([1, 2]), app="spread"))
    p = pod(f"p{i}", cpu=f"{rng.choice([50, 100, 250, 500, 1000])}m", memory=f"{rng.choice([64, 128, 512])}Mi",
            labels={"app": "spread"} if "topologySpreadConstraints" in spec else {"app": f"a{i % 7}"},
            owner=f"rs{i % 5}", **spec)
    if rng.random() < 0.1:
        p["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": rng.choice([80, 443])}]
    return p


def _violations(pods_on: dict[str, list[dict]], nodes: dict[str, dict]) -> list[str]:
    """An independent check of every constraint on a final placement."""
    out = []
    for name, placed in pods_on.items():
        n = nodes[name]
        alloc = n["status"]["allocatable"]
        for res in ("cpu", "memory"):
            used = sum(pod_requests(p).get(res, 0) for p in placed)
            if used > quantity(res, alloc[res]):
                out.append(f"{name}: {res} {used} over {alloc[res]}")
        if len(placed) > int(alloc["pods"]):
            out.append(f"{name}: {len(placed)} pods")
        labels = n["metadata"]["labels"]
        ports = [hp for p in placed for c in p["spec"]["containers"] for hp in
                 (pp.get("hostPort") for pp in c.get("ports", [])) if hp]
        if len(ports) != len(set(ports)):
            out.append(f"{name}: host ports {ports}")
        for p in placed:
            for k, v in p["spec"].get("nodeSelector", {}).items():
                if labels.get(k) != v:
                    out.append(f"{name}: {p['metadata']['name']} needs {k}={v}")
            if n["spec"]["taints"] and not p["spec"].get("tolerations"):
                out.append(f"{name}: {p['metadata']['name']} on a tainted node")
    return out


def test_300_pods_over_3_nodes_respect_every_constraint():
    rng = random.Random(19)
    nodes = {"small": node("small", cpu="4", memory="4Gi", pods="40", labels={"disk": "hdd", "zone": "z1"}),
             "medium": node("medium", cpu="16", memory="32Gi", pods="110", labels={"disk": "ssd", "zone": "z1"}),
             "large": node("large", cpu="32", memory="64Gi", pods="110", labels={"disk": "ssd", "zone": "z2"},
                           taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}])}
    snap = Snapshot.build(nodes.values(), [])
    pods_on: dict[str, list[dict]] = {n: [] for n in nodes}
    unschedulable = 0
    for i in range(300):
        p = _random_pod(rng, i)
        result = schedule(p, snap, rng)
        if isinstance(result, Scheduled):
            p["spec"]["nodeName"] = result.node
            pods_on[result.node].append(p)
            snap = snap.with_pod(result.node, p)
        else:
            unschedulable += 1
            assert result.message.startswith("0/3 nodes are available: ")
            assert set(result.reasons) == set(nodes)
            if "topologySpreadConstraints" not in p["spec"]:
                # refused only when the independent check agrees that no node could take it
                for name in nodes:
                    assert _violations({name: pods_on[name] + [p]}, nodes), (name, result.message)
    assert _violations(pods_on, nodes) == []
    spread = {n: sum(1 for p in placed if p["metadata"]["labels"].get("app") == "spread")
              for n, placed in pods_on.items()}
    zones = {"z1": spread["small"] + spread["medium"], "z2": spread["large"]}
    # large (z2) only takes spread pods that tolerate its taint, so skew is checked by the filter
    # per placement; at the end z1 can only lead z2 by the largest maxSkew in play
    assert zones["z1"] - zones["z2"] <= 2 or spread["large"] == 0
    assert sum(len(v) for v in pods_on.values()) + unschedulable == 300
    assert 0 < unschedulable < 300  # the cluster fills up: both outcomes are exercised


# --- the loop's incremental cache -----------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from kproxy.scheduler.cache import ClusterCache  # noqa: E402

_event = st.tuples(st.sampled_from(["node", "node-del", "pod", "pod-del", "assume", "finish"]),
                   st.integers(0, 3), st.integers(0, 5), st.sampled_from([None, "100m", "1", "250m"]))


@settings(max_examples=200)
@given(st.lists(_event, max_size=40))
def test_the_cache_snapshot_equals_one_built_from_scratch(events):
    """Whatever the order of informer events and assumptions, the incrementally kept snapshot
    is the one Snapshot.build makes from the same nodes and pods (assumed pods bound)."""
    cache = ClusterCache()
    nodes: dict[str, dict] = {}
    pods: dict[str, dict] = {}  # what the informer shows
    assumed: dict[str, str] = {}
    rv = 0
    for kind, n, p, cpu in events:
        rv += 1
        node_name, pod_name = f"n{n}", f"p{p}"
        key = f"default/{pod_name}"
        if kind == "node":
            nodes[node_name] = node(node_name, cpu=str(n + 1))
            cache.set_node(nodes[node_name])
        elif kind == "node-del":
            nodes.pop(node_name, None)
            cache.remove_node(node_name)
        elif kind == "pod":
            obj = pod(pod_name, cpu=cpu, node_name=node_name if cpu else None)
            obj["metadata"]["resourceVersion"] = str(rv)
            pods[key] = obj
            if obj["spec"].get("nodeName") or key not in assumed:
                assumed.pop(key, None)
            cache.set_pod(obj)
        elif kind == "pod-del" and key in pods:
            cache.remove_pod(pods.pop(key))
            assumed.pop(key, None)
        elif kind == "assume" and key in pods and not pods[key]["spec"].get("nodeName") \
                and not pods[key]["status"].get("phase"):
            assumed[key] = node_name
            cache.assume(pods[key], node_name)
        elif kind == "finish" and key in pods:
            obj = {**pods[key], "status": {"phase": "Succeeded"},
                   "metadata": {**pods[key]["metadata"], "resourceVersion": str(rv)}}
            pods[key] = obj
            assumed.pop(key, None)
            cache.set_pod(obj)
    effective = [{**obj, "spec": {**obj["spec"], "nodeName": assumed[k]}} if k in assumed else obj
                 for k, obj in pods.items()]
    expected = Snapshot.build(nodes.values(), effective)
    got = cache.snapshot()
    assert list(got.nodes) == list(expected.nodes)
    for name in expected.nodes:
        e, g = expected.nodes[name], got.nodes[name]
        assert (dict(g.requested), g.nonzero_requested, g.used_ports) == \
            (dict(e.requested), e.nonzero_requested, e.used_ports), name
        assert sorted(p["metadata"]["name"] for p in g.pods) == sorted(p["metadata"]["name"] for p in e.pods)
