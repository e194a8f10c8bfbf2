"""A corpus of named invalid objects, each with the field and reason Kubernetes reports.

Every object is otherwise valid (apiVersion, kind, metadata.name, namespace "default") so the
expected cause is the reason it is refused. tests/unit/test_validation.py checks each case
against `validate(resource, apply_defaults(resource, obj))`; the apiserver tests send the
cases whose `over_http` is True to a live server and expect `expected_code` (422 Invalid with
that cause, or 400 for a JSON type error) and no change in the store. `over_http` is False for cases an HTTP create cannot express as
written (the URL supplies the namespace; create drops a Pod's or Service's status).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Callable

from kproxy.api import resources as R
from kproxy.api.resources import Resource

DELETE = object()  # in an edit: remove the key


@dataclass(frozen=True)
class InvalidCase:
    id: str
    resource: Resource
    obj: dict[str, Any]
    field: str
    reason: str
    over_http: bool = True

    @property
    def expected_code(self) -> int:
        """The HTTP code kube-apiserver answers a create with: a JSON type error fails typed
        decoding first (400 BadRequest, "cannot unmarshal ..."); everything else is 422 Invalid
        carrying (field, reason) among its causes."""
        return 400 if self.reason == "FieldValueTypeInvalid" else 422


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _edit(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with each "a.b[0].c" path set to its value (DELETE removes it)."""
    obj = copy.deepcopy(base)
    for path, value in changes.items():
        steps = [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _STEP.finditer(path)]
        cur: Any = obj
        for step, nxt in zip(steps, steps[1:]):
            if isinstance(step, str) and step not in cur:
                cur[step] = [] if isinstance(nxt, int) else {}
            cur = cur[step]
        last = steps[-1]
        if value is DELETE:
            del cur[last]
        elif isinstance(cur, list) and last == len(cur):
            cur.append(copy.deepcopy(value))
        else:
            cur[last] = copy.deepcopy(value)
    return obj


def case_maker(prefix: str, resource: Resource, base: dict[str, Any]) -> Callable[[str, dict[str, Any], str, str],
                                                                                  InvalidCase]:
    """make(id, changes, field, reason): the case "prefix-id", `base` edited by `changes`."""
    def make(id: str, changes: dict[str, Any], field: str, reason: str) -> InvalidCase:
        return InvalidCase(f"{prefix}-{id}", resource, _edit(base, changes), field, reason)
    return make


SERVICE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
}
NODEPORT = _edit(SERVICE, {"spec.type": "NodePort"})
LOADBALANCER = _edit(SERVICE, {"spec.type": "LoadBalancer"})
EXTERNAL_NAME = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "ext", "namespace": "default"},
    "spec": {"type": "ExternalName", "externalName": "db.example.com"},
}
TWO_PORTS = _edit(SERVICE, {"spec.ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]})

POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "app", "image": "nginx:1.25",
                             "ports": [{"name": "http", "containerPort": 8080}]}]},
}
SLICE: dict[str, Any] = {
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "web-abc12", "namespace": "default",
                 "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}, "nodeName": "node-1"}],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
}
ENDPOINTS: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Endpoints",
    "metadata": {"name": "web", "namespace": "default"},
    "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"name": "http", "port": 8080}]}],
}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.244.1.0/24"}}
QUOTA = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "default"},
         "spec": {"hard": {"pods": "10", "services": "5"}}}
LEASE = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "node-1", "namespace": "default"},
         "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
EVENT = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "default"},
         "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1"},
         "reason": "Started", "message": "started", "type": "Normal"}
SERVICE_ACCOUNT = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "default"}}

VALID: list[tuple[Resource, dict[str, Any]]] = [
    (R.SERVICES, SERVICE), (R.SERVICES, NODEPORT), (R.SERVICES, LOADBALANCER), (R.SERVICES, EXTERNAL_NAME),
    (R.SERVICES, TWO_PORTS), (R.PODS, POD), (R.ENDPOINT_SLICES, SLICE), (R.ENDPOINTS, ENDPOINTS),
    (R.NAMESPACES, NAMESPACE), (R.NODES, NODE), (R.RESOURCE_QUOTAS, QUOTA), (R.LEASES, LEASE),
    (R.EVENTS, EVENT), (R.SERVICE_ACCOUNTS, SERVICE_ACCOUNT),
]
"""The bases the cases are built from: each of these is valid."""

REQ, INV, DUP, NSUP = "FieldValueRequired", "FieldValueInvalid", "FieldValueDuplicate", "FieldValueNotSupported"
FORB, LONG, MANY, TYPE, NFOUND = ("FieldValueForbidden", "FieldValueTooLong", "FieldValueTooMany",
                                  "FieldValueTypeInvalid", "FieldValueNotFound")


def _svc(id: str, changes: dict[str, Any], field: str, reason: str, base: dict[str, Any] = SERVICE,
         over_http: bool = True) -> InvalidCase:
    return InvalidCase("svc-" + id, R.SERVICES, _edit(base, changes), field, reason, over_http)


def _pod(id: str, changes: dict[str, Any], field: str, reason: str, over_http: bool = True) -> InvalidCase:
    return InvalidCase("pod-" + id, R.PODS, _edit(POD, changes), field, reason, over_http)


_slice = case_maker("slice", R.ENDPOINT_SLICES, SLICE)


def _many_addresses(n: int) -> list[str]:
    return [f"10.244.{i // 250}.{i % 250 + 1}" for i in range(n)]


CASES: list[InvalidCase] = [
    # --- metadata (on Services, whose names are DNS-1035 labels) ---
    _svc("name-uppercase", {"metadata.name": "Web"}, "metadata.name", INV),
    _svc("name-leading-digit", {"metadata.name": "1web"}, "metadata.name", INV),
    _svc("name-too-long", {"metadata.name": "a" * 64}, "metadata.name", INV),
    _svc("name-underscore", {"metadata.name": "my_svc"}, "metadata.name", INV),
    _svc("name-dot", {"metadata.name": "my.svc"}, "metadata.name", INV),
    _svc("name-trailing-dash", {"metadata.name": "web-"}, "metadata.name", INV),
    _svc("name-missing", {"metadata.name": DELETE}, "metadata.name", REQ),
    _svc("name-empty", {"metadata.name": ""}, "metadata.name", REQ),
    _svc("generate-name-uppercase", {"metadata.name": DELETE, "metadata.generateName": "Web-"},
         "metadata.generateName", INV),
    _svc("label-key-leading-dash", {"metadata.labels": {"-bad": "x"}}, "metadata.labels", INV),
    _svc("label-key-space", {"metadata.labels": {"bad key": "x"}}, "metadata.labels", INV),
    _svc("label-key-prefix-uppercase", {"metadata.labels": {"Example.com/team": "x"}}, "metadata.labels", INV),
    _svc("label-key-two-slashes", {"metadata.labels": {"a/b/c": "x"}}, "metadata.labels", INV),
    _svc("label-key-name-too-long", {"metadata.labels": {"k" * 64: "x"}}, "metadata.labels", INV),
    _svc("label-value-too-long", {"metadata.labels": {"app": "v" * 64}}, "metadata.labels", INV),
    _svc("label-value-space", {"metadata.labels": {"app": "a b"}}, "metadata.labels", INV),
    _svc("label-value-leading-dash", {"metadata.labels": {"app": "-web"}}, "metadata.labels", INV),
    _svc("label-value-not-string", {"metadata.labels": {"app": 1}}, "metadata.labels[app]", TYPE),
    _svc("annotation-key-space", {"metadata.annotations": {"bad key": "x"}}, "metadata.annotations", INV),
    _svc("annotations-too-large", {"metadata.annotations": {"big": "x" * (256 * 1024 + 1)}},
         "metadata.annotations", LONG),
    _svc("finalizer-not-qualified", {"metadata.finalizers": ["myfinalizer"]}, "metadata.finalizers[0]", INV),
    _svc("owner-reference-without-uid",
         {"metadata.ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}]},
         "metadata.ownerReferences[0].uid", REQ),
    _svc("namespace-missing", {"metadata.namespace": DELETE}, "metadata.namespace", REQ, over_http=False),
    _svc("namespace-uppercase", {"metadata.namespace": "Default"}, "metadata.namespace", INV, over_http=False),
    _svc("metadata-not-object", {"metadata": "web"}, "metadata", TYPE),

    # --- Service spec ---
    _svc("spec-not-object", {"spec": "x"}, "spec", TYPE),
    _svc("ports-empty", {"spec.ports": []}, "spec.ports", REQ),
    _svc("ports-missing", {"spec.ports": DELETE}, "spec.ports", REQ),
    _svc("ports-not-list", {"spec.ports": {"port": 80}}, "spec.ports", TYPE),
    _svc("port-zero", {"spec.ports[0].port": 0}, "spec.ports[0].port", INV),
    _svc("port-too-large", {"spec.ports[0].port": 65536}, "spec.ports[0].port", INV),
    _svc("port-negative", {"spec.ports[0].port": -1}, "spec.ports[0].port", INV),
    _svc("port-huge", {"spec.ports[0].port": 10 ** 12}, "spec.ports[0].port", INV),
    _svc("port-missing", {"spec.ports[0].port": DELETE}, "spec.ports[0].port", REQ),
    _svc("port-string", {"spec.ports[0].port": "80"}, "spec.ports[0].port", TYPE),
    _svc("port-fraction", {"spec.ports[0].port": 80.5}, "spec.ports[0].port", TYPE),
    _svc("protocol-icmp", {"spec.ports[0].protocol": "ICMP"}, "spec.ports[0].protocol", NSUP),
    _svc("protocol-lowercase", {"spec.ports[0].protocol": "tcp"}, "spec.ports[0].protocol", NSUP),
    _svc("second-port-unnamed", {"spec.ports[1].name": DELETE}, "spec.ports[1].name", REQ, base=TWO_PORTS),
    _svc("both-ports-unnamed", {"spec.ports[0].name": DELETE, "spec.ports[1].name": DELETE},
         "spec.ports[0].name", REQ, base=TWO_PORTS),
    _svc("port-name-uppercase", {"spec.ports[0].name": "HTTP"}, "spec.ports[0].name", INV),
    _svc("port-name-too-long", {"spec.ports[0].name": "p" * 64}, "spec.ports[0].name", INV),
    _svc("port-name-underscore", {"spec.ports[0].name": "http_alt"}, "spec.ports[0].name", INV),
    _svc("port-names-duplicate", {"spec.ports[1].name": "http"}, "spec.ports[1].name", DUP, base=TWO_PORTS),
    _svc("port-protocol-pair-duplicate", {"spec.ports[1].port": 80}, "spec.ports[1]", DUP, base=TWO_PORTS),
    _svc("target-port-too-large", {"spec.ports[0].targetPort": 70000}, "spec.ports[0].targetPort", INV),
    _svc("target-port-negative", {"spec.ports[0].targetPort": -5}, "spec.ports[0].targetPort", INV),
    _svc("target-port-name-uppercase", {"spec.ports[0].targetPort": "Http"}, "spec.ports[0].targetPort", INV),
    _svc("target-port-name-too-long", {"spec.ports[0].targetPort": "abcdefghijklmnop"}, "spec.ports[0].targetPort", INV),
    _svc("target-port-name-double-hyphen", {"spec.ports[0].targetPort": "a--b"}, "spec.ports[0].targetPort", INV),
    _svc("target-port-name-no-letter", {"spec.ports[0].targetPort": "80-80"}, "spec.ports[0].targetPort", INV),
    _svc("target-port-name-leading-hyphen", {"spec.ports[0].targetPort": "-http"}, "spec.ports[0].targetPort", INV),
    _svc("target-port-numeric-string", {"spec.ports[0].targetPort": "8080"}, "spec.ports[0].targetPort", INV),
    _svc("target-port-bool", {"spec.ports[0].targetPort": True}, "spec.ports[0].targetPort", TYPE),
    _svc("node-port-on-cluster-ip", {"spec.ports[0].nodePort": 30080}, "spec.ports[0].nodePort", FORB),
    _svc("node-port-duplicate", {"spec.type": "NodePort", "spec.ports[0].nodePort": 30080,
                                 "spec.ports[1].nodePort": 30080}, "spec.ports[1].nodePort", DUP, base=TWO_PORTS),
    _svc("node-port-too-large", {"spec.ports[0].nodePort": 70000}, "spec.ports[0].nodePort", INV, base=NODEPORT),
    _svc("app-protocol-invalid", {"spec.ports[0].appProtocol": "bad proto"}, "spec.ports[0].appProtocol", INV),
    _svc("type-unknown", {"spec.type": "Foo"}, "spec.type", NSUP),
    _svc("type-lowercase", {"spec.type": "clusterip"}, "spec.type", NSUP),
    _svc("session-affinity-unknown", {"spec.sessionAffinity": "Sticky"}, "spec.sessionAffinity", NSUP),
    _svc("affinity-timeout-zero", {"spec.sessionAffinity": "ClientIP",
                                   "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
         "spec.sessionAffinityConfig.clientIP.timeoutSeconds", INV),
    _svc("affinity-timeout-too-long", {"spec.sessionAffinity": "ClientIP",
                                       "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}},
         "spec.sessionAffinityConfig.clientIP.timeoutSeconds", INV),
    _svc("affinity-timeout-negative", {"spec.sessionAffinity": "ClientIP",
                                       "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": -1}}},
         "spec.sessionAffinityConfig.clientIP.timeoutSeconds", INV),
    _svc("affinity-config-without-client-ip",
         {"spec.sessionAffinity": "None", "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
         "spec.sessionAffinityConfig", INV),
    _svc("cluster-ip-word", {"spec.clusterIP": "abc"}, "spec.clusterIPs[0]", INV),
    _svc("cluster-ip-octet-too-large", {"spec.clusterIP": "10.96.0.300"}, "spec.clusterIPs[0]", INV),
    _svc("cluster-ip-none-lowercase", {"spec.clusterIP": "none"}, "spec.clusterIPs[0]", INV),
    _svc("cluster-ip-cidr", {"spec.clusterIP": "10.96.0.0/24"}, "spec.clusterIPs[0]", INV),
    _svc("cluster-ips-mismatch", {"spec.clusterIP": "10.96.0.10", "spec.clusterIPs": ["10.96.0.11"]},
         "spec.clusterIPs", INV),
    _svc("cluster-ips-three", {"spec.clusterIPs": ["10.96.0.10", "fd00::10", "10.96.0.11"]}, "spec.clusterIPs", INV),
    _svc("cluster-ips-same-family", {"spec.clusterIPs": ["10.96.0.10", "10.96.0.11"],
                                     "spec.ipFamilyPolicy": "PreferDualStack"}, "spec.clusterIPs", INV),
    _svc("ip-family-unknown", {"spec.ipFamilies": ["IPv5"]}, "spec.ipFamilies[0]", NSUP),
    _svc("ip-families-duplicate", {"spec.ipFamilies": ["IPv4", "IPv4"], "spec.ipFamilyPolicy": "PreferDualStack"},
         "spec.ipFamilies[1]", DUP),
    _svc("ip-family-policy-unknown", {"spec.ipFamilyPolicy": "Single"}, "spec.ipFamilyPolicy", NSUP),
    # over HTTP the apiserver's family defaulting refuses it first, on spec.ipFamilyPolicy as
    # upstream (tests/apiserver/test_dualstack_services.py)
    _svc("single-stack-two-families", {"spec.ipFamilyPolicy": "SingleStack", "spec.ipFamilies": ["IPv4", "IPv6"]},
         "spec.ipFamilies", INV, over_http=False),
    _svc("headless-node-port", {"spec.clusterIP": "None"}, "spec.clusterIPs[0]", INV, base=NODEPORT),
    _svc("headless-load-balancer", {"spec.clusterIP": "None"}, "spec.clusterIPs[0]", INV, base=LOADBALANCER),
    _svc("load-balancer-kubelet-port", {"spec.ports[0].port": 10250}, "spec.ports[0].port", INV, base=LOADBALANCER),
    _svc("external-name-internal-traffic-policy-unknown", {"spec.internalTrafficPolicy": "Bogus"},
         "spec.internalTrafficPolicy", NSUP, base=EXTERNAL_NAME),
    _svc("external-name-missing", {"spec.externalName": DELETE}, "spec.externalName", REQ, base=EXTERNAL_NAME),
    _svc("external-name-invalid", {"spec.externalName": "bad_name"}, "spec.externalName", INV, base=EXTERNAL_NAME),
    _svc("external-name-with-cluster-ip", {"spec.clusterIP": "10.96.0.10"}, "spec.clusterIP", FORB,
         base=EXTERNAL_NAME),
    _svc("external-traffic-policy-on-cluster-ip", {"spec.externalTrafficPolicy": "Local"},
         "spec.externalTrafficPolicy", INV),
    _svc("external-traffic-policy-unknown", {"spec.externalTrafficPolicy": "Bogus"},
         "spec.externalTrafficPolicy", NSUP, base=NODEPORT),
    _svc("internal-traffic-policy-unknown", {"spec.internalTrafficPolicy": "Bogus"},
         "spec.internalTrafficPolicy", NSUP),
    _svc("external-ip-word", {"spec.externalIPs": ["not-an-ip"]}, "spec.externalIPs[0]", INV),
    _svc("external-ip-loopback", {"spec.externalIPs": ["127.0.0.1"]}, "spec.externalIPs[0]", INV),
    _svc("external-ip-unspecified", {"spec.externalIPs": ["0.0.0.0"]}, "spec.externalIPs[0]", INV),
    _svc("external-ip-multicast", {"spec.externalIPs": ["224.0.0.1"]}, "spec.externalIPs[0]", INV),
    _svc("external-ip-link-local", {"spec.externalIPs": ["169.254.1.1"]}, "spec.externalIPs[0]", INV),
    _svc("external-ip-second-bad", {"spec.externalIPs": ["192.0.2.10", "192.0.2.300"]}, "spec.externalIPs[1]", INV),
    _svc("source-ranges-on-cluster-ip", {"spec.loadBalancerSourceRanges": ["10.0.0.0/8"]},
         "spec.loadBalancerSourceRanges", FORB),
    _svc("source-range-not-cidr", {"spec.loadBalancerSourceRanges": ["10.0.0.0/33"]},
         "spec.loadBalancerSourceRanges[0]", INV, base=LOADBALANCER),
    _svc("load-balancer-ip-on-cluster-ip", {"spec.loadBalancerIP": "192.0.2.1"}, "spec.loadBalancerIP", FORB),
    _svc("health-check-node-port-on-cluster-ip", {"spec.healthCheckNodePort": 30100},
         "spec.healthCheckNodePort", INV),
    _svc("allocate-lb-node-ports-on-cluster-ip", {"spec.allocateLoadBalancerNodePorts": False},
         "spec.allocateLoadBalancerNodePorts", FORB),
    _svc("load-balancer-class-on-cluster-ip", {"spec.loadBalancerClass": "example.com/lb"},
         "spec.loadBalancerClass", FORB),
    _svc("publish-not-ready-not-bool", {"spec.publishNotReadyAddresses": "yes"},
         "spec.publishNotReadyAddresses", TYPE),
    _svc("selector-key-space", {"spec.selector": {"bad key": "web"}}, "spec.selector", INV),
    _svc("selector-value-leading-dash", {"spec.selector": {"app": "-web"}}, "spec.selector", INV),
    _svc("selector-value-too-long", {"spec.selector": {"app": "w" * 64}}, "spec.selector", INV),
    _svc("selector-not-object", {"spec.selector": ["app=web"]}, "spec.selector", TYPE),
    _svc("status-ingress-ip-invalid", {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3"}]}}},
         "status.loadBalancer.ingress[0].ip", INV, over_http=False),

    # --- Pods ---
    _pod("name-uppercase", {"metadata.name": "Web-1"}, "metadata.name", INV),
    _pod("name-too-long", {"metadata.name": "a" * 254}, "metadata.name", INV),
    _pod("name-double-dot", {"metadata.name": "a..b"}, "metadata.name", INV),
    _pod("containers-empty", {"spec.containers": []}, "spec.containers", REQ),
    _pod("containers-missing", {"spec.containers": DELETE}, "spec.containers", REQ),
    _pod("container-name-missing", {"spec.containers[0].name": DELETE}, "spec.containers[0].name", REQ),
    _pod("container-name-uppercase", {"spec.containers[0].name": "App"}, "spec.containers[0].name", INV),
    _pod("container-name-too-long", {"spec.containers[0].name": "c" * 64}, "spec.containers[0].name", INV),
    _pod("container-names-duplicate", {"spec.containers[1]": {"name": "app", "image": "busybox"}},
         "spec.containers[1].name", DUP),
    _pod("init-container-name-duplicate", {"spec.initContainers": [{"name": "app", "image": "busybox"}]},
         "spec.initContainers[0].name", DUP),
    _pod("image-missing", {"spec.containers[0].image": DELETE}, "spec.containers[0].image", REQ),
    _pod("image-blank", {"spec.containers[0].image": "  "}, "spec.containers[0].image", REQ),
    _pod("container-port-zero", {"spec.containers[0].ports[0].containerPort": 0},
         "spec.containers[0].ports[0].containerPort", INV),
    _pod("container-port-too-large", {"spec.containers[0].ports[0].containerPort": 70000},
         "spec.containers[0].ports[0].containerPort", INV),
    _pod("container-port-missing", {"spec.containers[0].ports[0].containerPort": DELETE},
         "spec.containers[0].ports[0].containerPort", REQ),
    _pod("host-port-too-large", {"spec.containers[0].ports[0].hostPort": 70000},
         "spec.containers[0].ports[0].hostPort", INV),
    _pod("port-protocol-http", {"spec.containers[0].ports[0].protocol": "HTTP"},
         "spec.containers[0].ports[0].protocol", NSUP),
    _pod("port-name-too-long", {"spec.containers[0].ports[0].name": "abcdefghijklmnop"},
         "spec.containers[0].ports[0].name", INV),
    _pod("port-names-duplicate", {"spec.containers[0].ports[1]": {"name": "http", "containerPort": 9090}},
         "spec.containers[0].ports[1].name", DUP),
    _pod("host-network-port-mismatch", {"spec.hostNetwork": True, "spec.containers[0].ports[0].hostPort": 9000},
         "spec.containers[0].ports[0].hostPort", INV),
    _pod("host-ports-duplicate", {"spec.containers[0].ports[0].hostPort": 8080,
                                  "spec.containers[1]": {"name": "b", "image": "busybox",
                                                         "ports": [{"containerPort": 81, "hostPort": 8080}]}},
         "spec.containers[1].ports[0].hostPort", DUP),
    _pod("restart-policy-unknown", {"spec.restartPolicy": "Sometimes"}, "spec.restartPolicy", NSUP),
    _pod("dns-policy-unknown", {"spec.dnsPolicy": "Bogus"}, "spec.dnsPolicy", NSUP),
    _pod("image-pull-policy-unknown", {"spec.containers[0].imagePullPolicy": "Maybe"},
         "spec.containers[0].imagePullPolicy", NSUP),
    _pod("node-name-invalid", {"spec.nodeName": "Node_1"}, "spec.nodeName", INV),
    _pod("service-account-name-invalid", {"spec.serviceAccountName": "SA"}, "spec.serviceAccountName", INV),
    _pod("hostname-invalid", {"spec.hostname": "Host_1"}, "spec.hostname", INV),
    _pod("env-name-missing", {"spec.containers[0].env": [{"value": "x"}]}, "spec.containers[0].env[0].name", REQ),
    _pod("env-name-with-equals", {"spec.containers[0].env": [{"name": "A=B", "value": "x"}]},
         "spec.containers[0].env[0].name", INV),
    _pod("volume-mount-unknown-volume", {"spec.containers[0].volumeMounts": [{"name": "data", "mountPath": "/d"}]},
         "spec.containers[0].volumeMounts[0].name", NFOUND),
    _pod("volume-names-duplicate", {"spec.volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]},
         "spec.volumes[1].name", DUP),
    _pod("volume-two-sources", {"spec.volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/tmp"}}]},
         "spec.volumes[0].hostPath", FORB),
    _pod("resource-limit-not-quantity", {"spec.containers[0].resources": {"limits": {"cpu": "lots"}}},
         "spec.containers[0].resources.limits[cpu]", INV),
    _pod("grace-period-negative", {"spec.terminationGracePeriodSeconds": -1}, "spec.terminationGracePeriodSeconds", INV),
    _pod("active-deadline-zero", {"spec.activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds", INV),
    _pod("node-selector-value-invalid", {"spec.nodeSelector": {"zone": "a b"}}, "spec.nodeSelector", INV),
    _pod("init-container-restart-policy", {"spec.initContainers": [{"name": "init", "image": "busybox",
                                                                     "restartPolicy": "Never"}]},
         "spec.initContainers[0].restartPolicy", NSUP),
    _pod("containers-not-list", {"spec.containers": {"name": "app"}}, "spec.containers", TYPE),
    _pod("status-pod-ip-invalid", {"status": {"podIP": "10.244.1"}}, "status.podIP", INV, over_http=False),
    _pod("status-pod-ips-invalid", {"status": {"podIPs": [{"ip": "x"}]}}, "status.podIPs[0].ip", INV, over_http=False),
    _pod("status-phase-unknown", {"status": {"phase": "Done"}}, "status.phase", NSUP, over_http=False),
    _pod("status-condition-status-unknown", {"status": {"conditions": [{"type": "Ready", "status": "Yes"}]}},
         "status.conditions[0].status", NSUP, over_http=False),

    # --- EndpointSlices ---
    _slice("name-invalid", {"metadata.name": "Bad_Name"}, "metadata.name", INV),
    _slice("address-type-missing", {"addressType": DELETE}, "addressType", REQ),
    _slice("address-type-unknown", {"addressType": "IPv5"}, "addressType", NSUP),
    _slice("addresses-empty", {"endpoints[0].addresses": []}, "endpoints[0].addresses", REQ),
    _slice("ipv6-in-ipv4-slice", {"endpoints[0].addresses": ["fd00::5"]}, "endpoints[0].addresses[0]", INV),
    _slice("ipv4-in-ipv6-slice", {"addressType": "IPv6"}, "endpoints[0].addresses[0]", INV),
    _slice("address-word", {"endpoints[0].addresses": ["pod-a"]}, "endpoints[0].addresses[0]", INV),
    _slice("address-loopback", {"endpoints[0].addresses": ["127.0.0.1"]}, "endpoints[0].addresses[0]", INV),
    _slice("address-link-local", {"endpoints[0].addresses": ["169.254.0.7"]}, "endpoints[0].addresses[0]", INV),
    _slice("fqdn-invalid", {"addressType": "FQDN", "endpoints[0].addresses": ["Bad_Host"]},
           "endpoints[0].addresses[0]", INV),
    _slice("too-many-addresses", {"endpoints[0].addresses": _many_addresses(101)}, "endpoints[0].addresses", MANY),
    _slice("too-many-endpoints", {"endpoints": [{"addresses": [a]} for a in _many_addresses(1001)]}, "endpoints", MANY),
    _slice("too-many-ports", {"ports": [{"name": f"p{i}", "port": 1000 + i, "protocol": "TCP"} for i in range(101)]},
           "ports", MANY),
    _slice("condition-ready-not-bool", {"endpoints[0].conditions.ready": "yes"}, "endpoints[0].conditions.ready", TYPE),
    _slice("node-name-invalid", {"endpoints[0].nodeName": "Node_1"}, "endpoints[0].nodeName", INV),
    _slice("hostname-invalid", {"endpoints[0].hostname": "host.a"}, "endpoints[0].hostname", INV),
    _slice("port-name-uppercase", {"ports[0].name": "HTTP"}, "ports[0].name", INV),
    _slice("port-names-duplicate", {"ports[1]": {"name": "http", "port": 9090, "protocol": "TCP"}}, "ports[1].name", DUP),
    _slice("port-zero", {"ports[0].port": 0}, "ports[0].port", INV),
    _slice("port-too-large", {"ports[0].port": 70000}, "ports[0].port", INV),
    _slice("port-protocol-unknown", {"ports[0].protocol": "ICMP"}, "ports[0].protocol", NSUP),
    _slice("endpoints-not-list", {"endpoints": {"addresses": ["10.244.1.5"]}}, "endpoints", TYPE),

    # --- Endpoints, Namespaces, Nodes and the rest ---
    InvalidCase("endpoints-ip-invalid", R.ENDPOINTS, _edit(ENDPOINTS, {"subsets[0].addresses[0].ip": "10.244.1"}),
                "subsets[0].addresses[0].ip", INV),
    InvalidCase("endpoints-subset-without-addresses", R.ENDPOINTS, _edit(ENDPOINTS, {"subsets[0].addresses": []}),
                "subsets[0]", REQ),
    InvalidCase("endpoints-two-ports-unnamed", R.ENDPOINTS,
                _edit(ENDPOINTS, {"subsets[0].ports": [{"port": 80}, {"port": 81}]}), "subsets[0].ports[0].name", REQ),
    InvalidCase("endpoints-port-zero", R.ENDPOINTS, _edit(ENDPOINTS, {"subsets[0].ports[0].port": 0}),
                "subsets[0].ports[0].port", INV),
    InvalidCase("namespace-name-dot", R.NAMESPACES, _edit(NAMESPACE, {"metadata.name": "team.a"}), "metadata.name", INV),
    InvalidCase("namespace-name-uppercase", R.NAMESPACES, _edit(NAMESPACE, {"metadata.name": "Team"}),
                "metadata.name", INV),
    InvalidCase("namespace-with-namespace", R.NAMESPACES, _edit(NAMESPACE, {"metadata.namespace": "default"}),
                "metadata.namespace", FORB, over_http=False),
    InvalidCase("node-pod-cidr-invalid", R.NODES, _edit(NODE, {"spec.podCIDR": "10.244.1.0/40"}), "spec.podCIDR", INV),
    InvalidCase("node-taint-effect-unknown", R.NODES,
                _edit(NODE, {"spec.taints": [{"key": "k", "effect": "Evict"}]}), "spec.taints[0].effect", NSUP),
    InvalidCase("quota-negative", R.RESOURCE_QUOTAS, _edit(QUOTA, {"spec.hard.pods": "-1"}), "spec.hard[pods]", INV),
    InvalidCase("quota-not-quantity", R.RESOURCE_QUOTAS, _edit(QUOTA, {"spec.hard.services": "many"}),
                "spec.hard[services]", INV),
    InvalidCase("quota-fractional-pods", R.RESOURCE_QUOTAS, _edit(QUOTA, {"spec.hard.pods": "1500m"}),
                "spec.hard[pods]", INV),
    InvalidCase("lease-duration-zero", R.LEASES, _edit(LEASE, {"spec.leaseDurationSeconds": 0}),
                "spec.leaseDurationSeconds", INV),
    InvalidCase("event-namespace-mismatch", R.EVENTS, _edit(EVENT, {"involvedObject.namespace": "other"}),
                "involvedObject.namespace", INV),
    InvalidCase("serviceaccount-name-invalid", R.SERVICE_ACCOUNTS,
                _edit(SERVICE_ACCOUNT, {"metadata.name": "SA_1"}), "metadata.name", INV),
]


# --- generated invalid Services (hypothesis) ----------------------------------------------------

def invalid_services():
    """A hypothesis strategy of InvalidCase: a valid Service with one random defect (a port out
    of range, an unknown protocol or type, a bad name, target port, clusterIP or selector)."""
    from hypothesis import strategies as st

    bad_port = st.one_of(st.integers(max_value=0), st.integers(min_value=65536, max_value=2**31 - 1))
    bad_protocol = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabc", min_size=1, max_size=6).filter(
        lambda p: p not in ("TCP", "UDP", "SCTP"))
    bad_name = st.one_of(
        st.from_regex(r"[0-9][a-z0-9]{0,8}", fullmatch=True),
        st.from_regex(r"[a-z]{1,6}[A-Z_.][a-z]{1,6}", fullmatch=True),
        st.from_regex(r"[a-z]{64,70}", fullmatch=True),
    )
    bad_port_name = st.one_of(
        st.from_regex(r"[a-z]{16,20}", fullmatch=True),
        st.from_regex(r"[0-9]{1,4}-[0-9]{1,4}", fullmatch=True),
        st.from_regex(r"[a-z]{1,5}--[a-z]{1,5}", fullmatch=True),
        st.from_regex(r"[A-Z][a-z]{1,8}", fullmatch=True),
    )
    bad_ip = st.one_of(
        st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
        st.from_regex(r"[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}\.(25[6-9]|2[6-9][0-9]|[3-9][0-9]{2})", fullmatch=True),
        st.from_regex(r"[g-z]{1,8}", fullmatch=True),
    )
    bad_label_value = st.one_of(st.from_regex(r"[-_.][a-z]{1,5}", fullmatch=True),
                                st.from_regex(r"[a-z]{64,66}", fullmatch=True))

    def case(kind: str, value: Any, path: str, field: str, reason: str) -> InvalidCase:
        return InvalidCase(f"gen-svc-{kind}", R.SERVICES, _edit(SERVICE, {path: value}), field, reason)

    return st.one_of(
        bad_port.map(lambda v: case("port", v, "spec.ports[0].port", "spec.ports[0].port", INV)),
        # targetPort 0 is not a defect: it defaults to the port
        bad_port.filter(lambda v: v != 0).map(
            lambda v: case("target-port", v, "spec.ports[0].targetPort", "spec.ports[0].targetPort", INV)),
        bad_protocol.map(lambda v: case("protocol", v, "spec.ports[0].protocol", "spec.ports[0].protocol", NSUP)),
        bad_protocol.map(lambda v: case("type", v, "spec.type", "spec.type", NSUP)),
        bad_name.map(lambda v: case("name", v, "metadata.name", "metadata.name", INV)),
        bad_port_name.map(lambda v: case("target-port-name", v, "spec.ports[0].targetPort", "spec.ports[0].targetPort", INV)),
        bad_ip.map(lambda v: case("cluster-ip", v, "spec.clusterIP", "spec.clusterIPs[0]", INV)),
        bad_label_value.map(lambda v: case("selector", {"app": v}, "spec.selector", "spec.selector", INV)),
        st.integers(min_value=86401, max_value=2**31 - 1).map(lambda v: InvalidCase(
            "gen-svc-affinity-timeout", R.SERVICES,
            _edit(SERVICE, {"spec.sessionAffinity": "ClientIP",
                            "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": v}}}),
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds", INV)),
    )


def _with_workloads() -> None:
    from tests.unit import invalid_workload_cases as workloads  # uses this module's names: after them
    CASES.extend(workloads.WORKLOAD_CASES)
    VALID.extend(workloads.VALID)
    from tests.unit import invalid_set_workload_cases as set_workloads
    CASES.extend(set_workloads.SET_WORKLOAD_CASES)
    VALID.extend(set_workloads.VALID)


_with_workloads()


def _with_batch() -> None:
    from tests.unit import invalid_batch_cases as batch  # uses this module's names: after them
    CASES.extend(batch.BATCH_CASES)
    VALID.extend(batch.VALID)


_with_batch()
