"""Dual-stack Services against live apiservers: a single-stack IPv4 cluster, a dual-stack one
(IPv4 primary) and an IPv6-first dual-stack one. Every defaulting rule of kube-apiserver's
initIPFamilyFields, every refusal with its 422 cause, the upgrade/downgrade rules on update,
allocation and release per family; then kubectl and the official client creating
dual-stack Services."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest

from kproxy.apiserver.allocators import AllocationError, ClusterIPAllocator
from kproxy.apiserver.service_families import ServiceIPAllocators, parse_service_cidrs
from tests.apiserver.fixtures import start_apiserver

SVCS = "/api/v1/namespaces/default/services"
V4, V6 = "10.96.0.0/16", "fd00:10:96::/112"
CLUSTERS = {"v4": V4, "dual": f"{V4},{V6}", "dual6": f"{V6},{V4}"}
INV, NSUP, DUP = "FieldValueInvalid", "FieldValueNotSupported", "FieldValueDuplicate"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    started = {}
    try:
        for name, cidrs in CLUSTERS.items():
            started[name] = start_apiserver(tmp_path_factory.mktemp(name),
                                            ["--no-controllers", "--service-cluster-ip-range", cidrs])
        yield started
    finally:
        for s in started.values():
            s.stop()


@pytest.fixture(scope="module")
def apis(servers):
    return {name: s.http() for name, s in servers.items()}


_names = iter(range(10**6))


def svc(**spec) -> dict:
    spec.setdefault("ports", [{"port": 80}])
    if "selector" not in spec:
        spec["selector"] = {"app": "web"}
    elif spec["selector"] is None:
        del spec["selector"]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"ds-{next(_names)}"}, "spec": spec}


def family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


# --- the flag and the per-family allocators, pure -------------------------------------------

@pytest.mark.parametrize("text,ok", [
    ("10.96.0.0/12", True), ("fd00:10:96::/112", True), (f"{V4},{V6}", True), (f"{V6},{V4}", True),
    ("10.96.0.0/12,10.97.0.0/16", False), (f"{V4},{V6},{V4}", False), ("10.96.0.1/12", False),
    ("10.96.0.0/31", False), (f"{V4},", False), ("bogus", False),
])
def test_service_cluster_ip_range_flag(text, ok):
    if ok:
        assert parse_service_cidrs(text) == text.split(",")
    else:
        with pytest.raises(ValueError):
            parse_service_cidrs(text)


def test_apiserver_refuses_a_bad_range_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kproxy", "apiserver", "--data-dir", str(tmp_path),
                           "--service-cluster-ip-range", "10.96.0.0/16,10.97.0.0/16"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "different IP families" in proc.stderr and "Traceback" not in proc.stderr


def test_allocators_route_each_address_to_its_family():
    ips = ServiceIPAllocators([ClusterIPAllocator("fd00::/120"), ClusterIPAllocator("10.0.0.0/24")])
    assert ips.families == ("IPv6", "IPv4") and ips.reserved == "fd00::1"
    assert ips.allocate("10.0.0.9") == "10.0.0.9" and ips.in_use("10.0.0.9")
    assert ":" in ips.allocate_next() and "." in ips.allocate_next("IPv4")
    ips.release("10.0.0.9")
    assert not ips.in_use("10.0.0.9")
    assert sorted(ips.rebuild(["10.0.0.5", "fd00::5", "192.168.0.1", "fd01::1"])) == ["192.168.0.1", "fd01::1"]
    assert ips.in_use("10.0.0.5") and ips.in_use("fd00::5")
    single = ServiceIPAllocators([ClusterIPAllocator("10.0.0.0/24")])
    with pytest.raises(AllocationError) as exc:
        single.allocate("fd00::5")
    assert "IPv6 is not configured" in str(exc.value)


# --- defaulting: (cluster, spec) -> (ipFamilyPolicy, ipFamilies) ------------------------------

DEFAULTS = [
    ("v4", {}, "SingleStack", ["IPv4"]),
    ("v4", {"ipFamilyPolicy": "PreferDualStack"}, "PreferDualStack", ["IPv4"]),
    ("v4", {"clusterIP": "None"}, "SingleStack", ["IPv4"]),
    # headless without a selector: RequireDualStack and both families, even single-stack
    ("v4", {"clusterIP": "None", "selector": None}, "RequireDualStack", ["IPv4", "IPv6"]),
    ("v4", {"clusterIP": "None", "selector": None, "ipFamilyPolicy": "SingleStack"}, "SingleStack", ["IPv4"]),
    ("dual", {"clusterIPs": ["None"], "selector": None}, "RequireDualStack", ["IPv4", "IPv6"]),
    ("dual", {}, "SingleStack", ["IPv4"]),
    ("dual", {"ipFamilyPolicy": "PreferDualStack"}, "PreferDualStack", ["IPv4", "IPv6"]),
    ("dual", {"ipFamilyPolicy": "RequireDualStack"}, "RequireDualStack", ["IPv4", "IPv6"]),
    ("dual", {"ipFamilies": ["IPv6"]}, "SingleStack", ["IPv6"]),
    ("dual", {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "PreferDualStack"}, "PreferDualStack", ["IPv6", "IPv4"]),
    ("dual", {"ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"}, "RequireDualStack",
     ["IPv6", "IPv4"]),
    ("dual", {"clusterIP": "fd00:10:96::99"}, "SingleStack", ["IPv6"]),  # families follow the IP
    ("dual", {"clusterIPs": ["10.96.5.5", "fd00:10:96::55"], "ipFamilyPolicy": "PreferDualStack"},
     "PreferDualStack", ["IPv4", "IPv6"]),
    ("dual", {"clusterIP": "None", "ipFamilyPolicy": "PreferDualStack"}, "PreferDualStack", ["IPv4", "IPv6"]),
    ("dual", {"clusterIPs": ["fd00:10:96::66", "10.96.6.6"], "ipFamilyPolicy": "RequireDualStack"},
     "RequireDualStack", ["IPv6", "IPv4"]),  # families follow the addresses, in their order
    ("dual", {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "RequireDualStack"}, "RequireDualStack", ["IPv6", "IPv4"]),
    ("dual", {"type": "NodePort", "ipFamilyPolicy": "PreferDualStack"}, "PreferDualStack", ["IPv4", "IPv6"]),
    ("dual6", {}, "SingleStack", ["IPv6"]),
    ("dual6", {"ipFamilyPolicy": "PreferDualStack"}, "PreferDualStack", ["IPv6", "IPv4"]),
]


@pytest.mark.parametrize("cluster,spec,policy,families", DEFAULTS,
                         ids=[f"{c}-{json.dumps(s, sort_keys=True)}" for c, s, _, _ in DEFAULTS])
def test_create_defaults_the_families(apis, cluster, spec, policy, families):
    created = apis[cluster].ok("POST", SVCS, svc(**copy.deepcopy(spec)))["spec"]
    assert (created["ipFamilyPolicy"], created["ipFamilies"]) == (policy, families)
    if created["clusterIP"] == "None":
        assert created["clusterIPs"] == ["None"]
        return
    assert created["clusterIP"] == created["clusterIPs"][0]
    assert [family(ip) for ip in created["clusterIPs"]] == families  # one address per family, in order


# --- refusals on create: (cluster, spec) -> (field, reason, message part) ---------------------

REFUSED = [
    ("v4", {"ipFamilyPolicy": "RequireDualStack"}, "spec.ipFamilyPolicy", INV,
     "this cluster is not configured for dual-stack services"),
    ("v4", {"ipFamilies": ["IPv6"]}, "spec.ipFamilies[0]", INV, "not configured on this cluster"),
    ("v4", {"clusterIP": "fd00:10:96::5"}, "spec.clusterIPs[0]", INV, "IPv6 is not configured on this cluster"),
    ("v4", {"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"}, "spec.ipFamilies[1]", INV,
     "not configured on this cluster"),
    ("dual", {"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]}, "spec.ipFamilyPolicy", INV,
     "when multiple IP families are specified"),
    ("dual", {"ipFamilyPolicy": "SingleStack", "clusterIPs": ["10.96.7.7", "fd00:10:96::77"]},
     "spec.ipFamilyPolicy", INV, "when multiple cluster IPs are specified"),
    ("dual", {"clusterIPs": ["10.96.7.8", "fd00:10:96::78"]}, "spec.ipFamilyPolicy", INV,
     "when multiple cluster IPs are specified"),  # no policy: SingleStack
    ("dual", {"ipFamilies": ["IPv4", "IPv4"], "ipFamilyPolicy": "PreferDualStack"}, "spec.ipFamilies[1]", DUP, ""),
    ("dual", {"ipFamilies": ["IPv5"]}, "spec.ipFamilies[0]", NSUP, ""),
    ("dual", {"ipFamilyPolicy": "DualStack"}, "spec.ipFamilyPolicy", NSUP, ""),
    ("dual", {"clusterIPs": ["10.96.7.9", "10.96.7.10"], "ipFamilyPolicy": "PreferDualStack"}, "spec.clusterIPs",
     INV, "may specify no more than one IP for each IP family"),
    ("dual", {"clusterIPs": ["10.96.7.9", "fd00:10:96::79", "10.96.7.10"], "ipFamilyPolicy": "PreferDualStack"},
     "spec.clusterIPs", INV, "may only hold up to 2 values"),
    ("dual", {"clusterIP": "10.96.7.11", "clusterIPs": ["10.96.7.12"]}, "spec.clusterIPs", INV,
     "first value must match `clusterIP`"),
    ("dual", {"clusterIPs": ["10.96.7.13", "fd00:10:96::7b"], "ipFamilies": ["IPv6", "IPv4"],
              "ipFamilyPolicy": "RequireDualStack"}, "spec.clusterIPs[0]", INV,
     "expected an IPv6 value as indicated by `ipFamilies[0]`"),
    ("dual", {"clusterIP": "fd00:10:96::7c", "ipFamilies": ["IPv4"]}, "spec.clusterIPs[0]", INV,
     "expected an IPv4 value"),
    ("dual", {"clusterIPs": ["None", "fd00:10:96::7d"], "ipFamilyPolicy": "PreferDualStack"}, "spec.clusterIPs",
     INV, ""),
    ("dual", {"clusterIPs": ["10.96.7.14", "fd00:99::1"], "ipFamilyPolicy": "PreferDualStack"}, "spec.clusterIPs",
     INV, "not in the valid range"),
    ("dual", {"type": "ExternalName", "externalName": "db.example.com", "ipFamilies": ["IPv4"]},
     "spec.ipFamilies", "FieldValueForbidden", ""),
    ("dual", {"type": "ExternalName", "externalName": "db.example.com", "ipFamilyPolicy": "SingleStack"},
     "spec.ipFamilyPolicy", "FieldValueForbidden", ""),
]


def revision(api) -> int:
    return int(api.ok("GET", SVCS)["metadata"]["resourceVersion"])


@pytest.mark.parametrize("cluster,spec,field,reason,message", REFUSED,
                         ids=[f"{c}-{json.dumps(s, sort_keys=True)}" for c, s, *_ in REFUSED])
def test_create_refused_with_the_cause(apis, cluster, spec, field, reason, message):
    api = apis[cluster]
    before = revision(api)
    status, body = api.call("POST", SVCS, svc(**copy.deepcopy(spec)))
    assert (status, body.get("reason")) == (422, "Invalid"), body
    assert any(c["field"] == field and c["reason"] == reason and message in c["message"]
               for c in body["details"]["causes"]), body["details"]["causes"]
    assert revision(api) == before


def test_a_refused_dual_stack_create_leaves_no_address_taken(apis):
    """The IPv4 address of a Service whose IPv6 request fails is free again at once."""
    api = apis["dual"]
    status, _ = api.call("POST", SVCS, svc(clusterIPs=["10.96.8.1", "fd00:99::1"], ipFamilyPolicy="PreferDualStack"))
    assert status == 422
    got = api.ok("POST", SVCS, svc(clusterIP="10.96.8.1"))["spec"]
    assert got["clusterIPs"] == ["10.96.8.1"]


# --- updates: upgrade, downgrade, immutability -----------------------------------------------

def put(api, obj, **changes):
    obj = copy.deepcopy(obj)
    obj["spec"].update(changes)
    return api.call("PUT", f"{SVCS}/{obj['metadata']['name']}", obj)


def causes(body) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in body["details"]["causes"]]


def test_upgrade_to_dual_stack_and_downgrade_releases_the_secondary(apis):
    api = apis["dual"]
    one = api.ok("POST", SVCS, svc())
    assert one["spec"]["ipFamilies"] == ["IPv4"]
    status, two = put(api, one, ipFamilyPolicy="PreferDualStack")
    assert status == 200, two
    assert two["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    v4, v6 = two["spec"]["clusterIPs"]
    assert v4 == one["spec"]["clusterIP"] and family(v6) == "IPv6"
    # downgrading needs SingleStack
    status, body = put(api, two, ipFamilies=["IPv4"], clusterIPs=[v4])
    assert status == 422 and ("spec.ipFamilyPolicy",) == tuple({f for f, _ in causes(body)}), body
    assert any("must be 'SingleStack' to release the secondary" in m for _, m in causes(body))
    status, down = put(api, two, ipFamilyPolicy="SingleStack")  # same fields + SingleStack: drop the secondary
    assert status == 200, down
    assert (down["spec"]["ipFamilies"], down["spec"]["clusterIPs"]) == (["IPv4"], [v4])
    # the released IPv6 address can be had again at once
    again = api.ok("POST", SVCS, svc(clusterIPs=["10.96.8.2", v6], ipFamilyPolicy="RequireDualStack"))
    assert again["spec"]["clusterIPs"] == ["10.96.8.2", v6]


def test_upgrade_with_a_chosen_secondary_address(apis):
    api = apis["dual"]
    one = api.ok("POST", SVCS, svc())
    status, two = put(api, one, ipFamilyPolicy="RequireDualStack",
                      clusterIPs=[one["spec"]["clusterIP"], "fd00:10:96::abc"])
    assert status == 200, two
    assert two["spec"]["clusterIPs"] == [one["spec"]["clusterIP"], "fd00:10:96::abc"]


def test_primary_address_and_family_never_change(apis):
    api = apis["dual"]
    two = api.ok("POST", SVCS, svc(ipFamilyPolicy="RequireDualStack"))
    v4, v6 = two["spec"]["clusterIPs"]
    status, body = put(api, two, clusterIP=v6, clusterIPs=[v6, v4], ipFamilies=["IPv6", "IPv4"])
    assert status == 422, body
    fields = {f for f, _ in causes(body)}
    assert "spec.clusterIPs[0]" in fields and "spec.ipFamilies[0]" in fields, body
    status, body = put(api, two, clusterIPs=[v4, "fd00:10:96::bcd"])
    assert status == 422 and ("spec.clusterIPs[1]", ) in {(f,) for f, _ in causes(body)}, body


@pytest.mark.parametrize("start,changes,field,message", [
    ({}, {"ipFamilies": ["IPv4", "IPv6"]}, "spec.ipFamilyPolicy",
     "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"),
    ({"clusterIP": "None"}, {"clusterIP": "10.96.9.9", "clusterIPs": ["10.96.9.9"]}, "spec.clusterIPs[0]",
     "may not change once set"),
    ({"ipFamilyPolicy": "RequireDualStack"}, {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4"]},
     "spec.ipFamilyPolicy", "must be 'SingleStack' to release the secondary IP family"),
], ids=["single-stack-two-families", "headless-gets-an-address", "downgrade-without-single-stack"])
def test_update_refused_with_the_cause(apis, start, changes, field, message):
    api = apis["dual"]
    old = api.ok("POST", SVCS, svc(**start))
    status, body = put(api, old, **changes)
    assert status == 422, body
    assert any(f == field and message in m for f, m in causes(body)), body
    assert api.ok("GET", f"{SVCS}/{old['metadata']['name']}")["spec"] == old["spec"]


def test_update_without_policy_keeps_the_old_policy(apis):
    """A PUT that leaves out ipFamilyPolicy, ipFamilies and clusterIPs (kubectl replace of the
    original manifest) keeps the dual-stack Service as it is."""
    api = apis["dual"]
    two = api.ok("POST", SVCS, svc(ipFamilyPolicy="PreferDualStack"))
    bare = copy.deepcopy(two)
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        bare["spec"].pop(key)
    bare["spec"]["ports"] = [{"port": 81}]
    status, got = api.call("PUT", f"{SVCS}/{two['metadata']['name']}", bare)
    assert status == 200, got
    for key in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        assert got["spec"][key] == two["spec"][key]


def test_prefer_dual_stack_is_not_upgraded_by_an_unrelated_update(apis):
    """PreferDualStack created on a single-stack cluster stays single-stack on updates that
    do not touch its addresses (upstream: no automatic upgrade)."""
    api = apis["v4"]
    one = api.ok("POST", SVCS, svc(ipFamilyPolicy="PreferDualStack"))
    status, got = put(api, one, ports=[{"port": 82}])
    assert status == 200 and got["spec"]["ipFamilies"] == ["IPv4"] and len(got["spec"]["clusterIPs"]) == 1


def test_delete_releases_both_addresses(apis):
    api = apis["dual"]
    two = api.ok("POST", SVCS, svc(ipFamilyPolicy="RequireDualStack"))
    api.ok("DELETE", f"{SVCS}/{two['metadata']['name']}")
    again = api.ok("POST", SVCS, svc(clusterIPs=two["spec"]["clusterIPs"], ipFamilyPolicy="RequireDualStack"))
    assert again["spec"]["clusterIPs"] == two["spec"]["clusterIPs"]


def test_change_to_external_name_releases_both(apis):
    api = apis["dual"]
    two = api.ok("POST", SVCS, svc(ipFamilyPolicy="RequireDualStack"))
    ext = copy.deepcopy(two)
    ext["spec"] = {"type": "ExternalName", "externalName": "db.example.com"}
    status, got = api.call("PUT", f"{SVCS}/{two['metadata']['name']}", ext)
    assert status == 200, got
    assert "clusterIPs" not in got["spec"] and "ipFamilies" not in got["spec"]
    again = api.ok("POST", SVCS, svc(clusterIPs=two["spec"]["clusterIPs"], ipFamilyPolicy="RequireDualStack"))
    assert again["spec"]["clusterIPs"] == two["spec"]["clusterIPs"]


def test_restart_keeps_both_families_allocated(servers, apis):
    api = apis["dual6"]
    two = api.ok("POST", SVCS, svc(ipFamilyPolicy="RequireDualStack"))
    servers["dual6"].restart()
    api = servers["dual6"].http()
    apis["dual6"] = api
    for ip in two["spec"]["clusterIPs"]:
        status, body = api.call("POST", SVCS, svc(clusterIP=ip))
        assert status == 422 and "already allocated" in json.dumps(body), body


def test_prefer_dual_stack_upgrades_only_when_asked_after_the_cluster_became_dual(tmp_path):
    """A PreferDualStack Service made on a single-stack cluster stays single-stack when the
    cluster turns dual-stack; RequireDualStack on update then adds the IPv6 address."""
    server = start_apiserver(tmp_path, ["--no-controllers"])
    try:
        one = server.http().ok("POST", SVCS, svc(ipFamilyPolicy="PreferDualStack"))
        server.stop()
        server.extra_args = ["--no-controllers", "--service-cluster-ip-range", f"10.96.0.0/12,{V6}"]
        server.start()
        api = server.http()
        one = api.ok("GET", f"{SVCS}/{one['metadata']['name']}")
        status, same = put(api, one, ports=[{"port": 90}])
        assert status == 200 and same["spec"]["clusterIPs"] == one["spec"]["clusterIPs"], same
        status, two = put(api, same, ipFamilyPolicy="RequireDualStack")
        assert status == 200, two
        assert two["spec"]["ipFamilies"] == ["IPv4", "IPv6"] and two["spec"]["clusterIPs"][0] == one["spec"]["clusterIP"]
    finally:
        server.stop()


# --- real clients ------------------------------------------------------------------------------

KUBECTL = shutil.which("kubectl")


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_creates_and_shows_a_dual_stack_service(servers):
    env = {**os.environ, "KUBECONFIG": servers["dual"].kubeconfig,
           "HOME": os.path.dirname(servers["dual"].kubeconfig)}

    def kubectl(*args: str, stdin: str | None = None) -> str:
        proc = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    manifest = json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubectl-ds"},
                           "spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"],
                                    "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    kubectl("apply", "-f", "-", stdin=manifest)
    got = json.loads(kubectl("get", "service", "kubectl-ds", "-o", "json"))["spec"]
    assert got["ipFamilies"] == ["IPv6", "IPv4"] and [family(ip) for ip in got["clusterIPs"]] == ["IPv6", "IPv4"]
    kubectl("apply", "-f", "-", stdin=manifest)  # re-applying changes nothing
    assert json.loads(kubectl("get", "service", "kubectl-ds", "-o", "json"))["spec"]["clusterIPs"] == got["clusterIPs"]
    assert got["clusterIP"] in kubectl("get", "service", "kubectl-ds")


def test_official_client_creates_a_dual_stack_service(servers):
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=servers["dual"].kubeconfig)
    try:
        core = client.CoreV1Api(api_client)
        body = client.V1Service(
            metadata=client.V1ObjectMeta(name="client-ds"),
            spec=client.V1ServiceSpec(selector={"app": "web"}, ip_family_policy="PreferDualStack",
                                      ports=[client.V1ServicePort(port=80)]))
        created = core.create_namespaced_service("default", body)
        assert created.spec.ip_families == ["IPv4", "IPv6"]
        assert [family(ip) for ip in created.spec.cluster_ips] == ["IPv4", "IPv6"]
        with pytest.raises(kubernetes.client.rest.ApiException) as exc:
            core.create_namespaced_service("default", client.V1Service(
                metadata=client.V1ObjectMeta(name="client-bad"),
                spec=client.V1ServiceSpec(ip_family_policy="SingleStack", ip_families=["IPv4", "IPv6"],
                                          selector={"app": "web"}, ports=[client.V1ServicePort(port=80)])))
        assert exc.value.status == 422
        assert json.loads(exc.value.body)["details"]["causes"][0]["field"] == "spec.ipFamilyPolicy"
    finally:
        api_client.close()
