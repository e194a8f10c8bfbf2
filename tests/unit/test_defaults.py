"""Defaulting: Kubernetes' SetDefaults_* results for the kinds kproxy serves."""
from __future__ import annotations

import copy

import pytest
from hypothesis import given, strategies as st

from kproxy.api import resources as R
from kproxy.api.defaults import apply_defaults, drop_type_dependent_fields, preserve_service_allocations
from kproxy.api.validation import validate


def _svc(**spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ports": [{"port": 80}], **spec}}


def test_service_minimal():
    obj = _svc(selector={"app": "web"})
    out = apply_defaults(R.SERVICES, obj)
    assert out["spec"] == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
    }
    assert obj["spec"] == {"selector": {"app": "web"}, "ports": [{"port": 80}]}  # input untouched


@pytest.mark.parametrize("target_port,expected", [(None, 80), (0, 80), ("", 80), (8080, 8080), ("http", "http")])
def test_service_target_port(target_port, expected):
    port = {"port": 80} if target_port is None else {"port": 80, "targetPort": target_port}
    out = apply_defaults(R.SERVICES, _svc(ports=[port]))
    assert out["spec"]["ports"][0]["targetPort"] == expected


def test_service_keeps_given_protocol():
    out = apply_defaults(R.SERVICES, _svc(ports=[{"port": 53, "protocol": "UDP"}]))
    assert out["spec"]["ports"][0]["protocol"] == "UDP"


@pytest.mark.parametrize("svc_type", ["NodePort", "LoadBalancer"])
def test_external_traffic_policy_for_external_types(svc_type):
    out = apply_defaults(R.SERVICES, _svc(type=svc_type))
    assert out["spec"]["externalTrafficPolicy"] == "Cluster"
    assert out["spec"]["internalTrafficPolicy"] == "Cluster"
    assert ("allocateLoadBalancerNodePorts" in out["spec"]) == (svc_type == "LoadBalancer")


def test_cluster_ip_has_no_external_traffic_policy():
    assert "externalTrafficPolicy" not in apply_defaults(R.SERVICES, _svc())["spec"]


def test_client_ip_affinity_timeout():
    out = apply_defaults(R.SERVICES, _svc(sessionAffinity="ClientIP"))
    assert out["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    out = apply_defaults(R.SERVICES, _svc(sessionAffinity="ClientIP",
                                          sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    assert out["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 60


def test_external_name_gets_no_ip_fields():
    obj = {"metadata": {"name": "e", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "x.example"}}
    spec = apply_defaults(R.SERVICES, obj)["spec"]
    assert "ipFamilies" not in spec and "ipFamilyPolicy" not in spec and "internalTrafficPolicy" not in spec
    assert spec["sessionAffinity"] == "None"


def test_cluster_ips_mirror_cluster_ip_and_families_are_left_to_the_apiserver():
    spec = apply_defaults(R.SERVICES, _svc(clusterIP="fd00::10"))["spec"]
    assert spec["clusterIPs"] == ["fd00::10"]
    spec = apply_defaults(R.SERVICES, _svc(clusterIPs=["10.96.0.7", "fd00::7"]))["spec"]
    assert spec["clusterIP"] == "10.96.0.7"
    spec = apply_defaults(R.SERVICES, _svc(clusterIP="None"))["spec"]
    assert spec["clusterIPs"] == ["None"]
    # the families depend on the cluster's ranges: kproxy.apiserver.service_families
    assert "ipFamilies" not in spec and "ipFamilyPolicy" not in spec


def test_defaults_do_not_allocate():
    spec = apply_defaults(R.SERVICES, _svc(type="NodePort"))["spec"]
    assert "clusterIP" not in spec and "nodePort" not in spec["ports"][0]


def test_preserve_service_allocations():
    old = apply_defaults(R.SERVICES, _svc(type="LoadBalancer", externalTrafficPolicy="Local",
                                          ports=[{"port": 80}, {"port": 443, "name": "https"}]))
    old["spec"].update(clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"], healthCheckNodePort=31000)
    old["spec"]["ports"][0]["nodePort"] = 30080
    old["spec"]["ports"][1]["nodePort"] = 30443
    new = _svc(type="LoadBalancer", externalTrafficPolicy="Local", ports=[{"port": 443, "name": "https"}])
    out = preserve_service_allocations(old, new)
    assert out["spec"]["clusterIP"] == "10.96.0.5"
    assert out["spec"]["ports"] == [{"port": 443, "name": "https", "nodePort": 30443}]
    assert out["spec"]["healthCheckNodePort"] == 31000
    assert "clusterIP" not in new["spec"]
    # to ClusterIP: node ports are not carried over
    out = preserve_service_allocations(old, _svc(ports=[{"port": 443}]))
    assert "nodePort" not in out["spec"]["ports"][0]
    # a client that sets its own clusterIP keeps it (validation then refuses the change)
    out = preserve_service_allocations(old, _svc(clusterIP="10.96.0.9"))
    assert out["spec"]["clusterIP"] == "10.96.0.9"


def test_pod_defaults():
    pod = {"metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
                                    "resources": {"limits": {"cpu": "1"}},
                                    "readinessProbe": {"httpGet": {"port": 80}}},
                                   {"name": "b", "image": "nginx:1.25"},
                                   {"name": "c", "image": "reg.example:5000/x@sha256:" + "0" * 64}],
                    "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]}}
    spec = apply_defaults(R.PODS, pod)["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["enableServiceLinks"] is True
    a, b, c = spec["containers"]
    assert a["ports"][0]["protocol"] == "TCP"
    assert [a["imagePullPolicy"], b["imagePullPolicy"], c["imagePullPolicy"]] == ["Always", "IfNotPresent", "IfNotPresent"]
    assert a["terminationMessagePath"] == "/dev/termination-log"
    assert a["terminationMessagePolicy"] == "File"
    assert a["resources"]["requests"] == {"cpu": "1"}
    assert a["readinessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert spec["volumes"] == [{"name": "v", "emptyDir": {}},
                               {"name": "s", "secret": {"secretName": "x", "defaultMode": 420}}]


def test_host_network_pod_host_port():
    pod = {"metadata": {"name": "p", "namespace": "default"},
           "spec": {"hostNetwork": True, "containers": [{"name": "a", "image": "x:1", "ports": [{"containerPort": 9100}]}]}}
    assert apply_defaults(R.PODS, pod)["spec"]["containers"][0]["ports"][0]["hostPort"] == 9100


def test_pod_keeps_explicit_values():
    pod = {"metadata": {"name": "p", "namespace": "default"},
           "spec": {"restartPolicy": "Never", "dnsPolicy": "Default", "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Never"}]}}
    spec = apply_defaults(R.PODS, pod)["spec"]
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["terminationGracePeriodSeconds"]) == ("Never", "Default", 0)
    assert spec["containers"][0]["imagePullPolicy"] == "Never"


def test_namespace_defaults():
    out = apply_defaults(R.NAMESPACES, {"metadata": {"name": "team-a"}})
    assert out["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert out["spec"] == {"finalizers": ["kubernetes"]}
    assert out["status"] == {"phase": "Active"}


def test_endpoint_slice_and_endpoints_port_protocol():
    es = apply_defaults(R.ENDPOINT_SLICES, {"addressType": "IPv4", "ports": [{"port": 80}]})
    assert es["ports"] == [{"port": 80, "protocol": "TCP", "name": ""}]
    ep = apply_defaults(R.ENDPOINTS, {"subsets": [{"ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"][0]["protocol"] == "TCP"


def test_node_allocatable_and_secret_type():
    node = apply_defaults(R.NODES, {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "2"}}})
    assert node["status"]["allocatable"] == {"cpu": "2"}
    assert apply_defaults(R.SECRETS, {"metadata": {"name": "s"}})["type"] == "Opaque"


_ports = st.lists(st.fixed_dictionaries({"port": st.integers(1, 65535)},
                                        optional={"protocol": st.sampled_from(["TCP", "UDP", "SCTP"]),
                                                  "targetPort": st.integers(1, 65535)}),
                  min_size=1, max_size=1)


@given(_ports, st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]),
       st.sampled_from(["None", "ClientIP"]))
def test_defaulted_services_validate_and_defaults_are_idempotent(ports, svc_type, affinity):
    obj = _svc(ports=ports, type=svc_type, sessionAffinity=affinity, selector={"app": "x"})
    once = apply_defaults(R.SERVICES, obj)
    assert apply_defaults(R.SERVICES, once) == once
    assert validate(R.SERVICES, once) == []


@given(st.sampled_from(R.ALL), st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers()),
                                          st.dictionaries(st.sampled_from(["spec", "metadata", "status", "ports"]),
                                                          st.one_of(st.none(), st.integers(), st.text(max_size=3),
                                                                    st.lists(st.integers())))))
def test_defaults_never_raise_on_junk(resource, obj):
    before = copy.deepcopy(obj)
    apply_defaults(resource, obj)
    assert obj == before


# --- type changes on update (dropTypeDependentFields) -----------------------------------------

def _live_service(**spec):
    """A stored Service: defaulted, with what the allocators gave it."""
    svc = apply_defaults(R.SERVICES, _svc(**spec))
    s = svc["spec"]
    if s["type"] != "ExternalName":
        s.update(clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"])
    if s["type"] in ("NodePort", "LoadBalancer"):
        s["ports"][0]["nodePort"] = 30080
    if s["type"] == "LoadBalancer" and s.get("externalTrafficPolicy") == "Local":
        s["healthCheckNodePort"] = 31000
    return svc


def _apply_type(old, **spec_changes):
    """What a strategic-merge `kubectl apply` leaves: the live object with only `type` etc. changed."""
    new = copy.deepcopy(old)
    new["spec"].update(spec_changes)
    new = apply_defaults(R.SERVICES, new)
    return drop_type_dependent_fields(old, new)


@pytest.mark.parametrize("old_spec,change,leftovers", [
    ({"type": "NodePort"}, {"type": "ClusterIP"}, True),
    ({"type": "LoadBalancer", "externalTrafficPolicy": "Local"}, {"type": "ClusterIP"}, True),
    ({"type": "LoadBalancer", "externalTrafficPolicy": "Local"}, {"type": "NodePort"}, True),
    ({"type": "LoadBalancer"}, {"type": "NodePort"}, True),
    ({"type": "ClusterIP"}, {"type": "ExternalName", "externalName": "db.example.com"}, True),
    ({"type": "NodePort"}, {"type": "ExternalName", "externalName": "db.example.com"}, True),
    ({"type": "ClusterIP"}, {"type": "NodePort"}, False),
])
def test_type_change_by_apply_validates(old_spec, change, leftovers):
    old = _live_service(**old_spec)
    assert validate(R.SERVICES, old) == []
    # without dropping, the old type's leftovers are refused
    kept = apply_defaults(R.SERVICES, dict(old, spec={**old["spec"], **change}))
    assert (validate(R.SERVICES, kept, old) != []) is leftovers
    new = _apply_type(old, **change)
    assert validate(R.SERVICES, new, old) == []


def test_type_change_keeps_fields_the_client_changed():
    old = _live_service(type="NodePort")
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    new["spec"]["ports"][0]["nodePort"] = 30099        # the client asked for a node port
    out = drop_type_dependent_fields(old, new)
    assert out["spec"]["ports"][0]["nodePort"] == 30099
    assert _has_forbidden_node_port(validate(R.SERVICES, out, old))
    assert new["spec"]["ports"][0]["nodePort"] == 30099  # input untouched


def _has_forbidden_node_port(causes):
    return any(c["field"] == "spec.ports[0].nodePort" and c["reason"] == "FieldValueForbidden" for c in causes)
