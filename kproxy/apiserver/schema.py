"""A compact description of the object types kproxy serves, following k8s.io/api field names.

One source for two consumers: the OpenAPI documents (openapi.py) and server-side field
validation (fieldcheck.py). Types are plain immutable values; `OPEN` marks a subtree this
description does not spell out: it accepts any JSON object and is not checked further.
Patch metadata (merge key, strategy, list type) follows Kubernetes' struct tags.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from kproxy.api.resources import Resource


@dataclass(frozen=True)
class Scalar:
    kind: str  # "string" | "integer" | "boolean" | "number" | "int-or-string" | "quantity"
    fmt: str | None = None


@dataclass(frozen=True)
class Ref:
    name: str  # a definition name in DEFINITIONS


@dataclass(frozen=True)
class MapOf:
    value: "Type"
    atomic: bool = False  # x-kubernetes-map-type: atomic (replaced and owned whole)


@dataclass(frozen=True)
class ListOf:
    item: "Type"
    merge_key: str | None = None  # x-kubernetes-patch-merge-key
    strategy: str | None = None  # x-kubernetes-patch-strategy ("merge", "retainKeys,merge")
    list_type: str = "atomic"  # x-kubernetes-list-type: atomic | set | map
    map_keys: tuple[str, ...] = ()  # x-kubernetes-list-map-keys


@dataclass(frozen=True)
class Open:
    """Any JSON object (x-kubernetes-preserve-unknown-fields)."""


@dataclass(frozen=True)
class Struct:
    fields: dict[str, "Type"] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    atomic: bool = False  # x-kubernetes-map-type: atomic (+structType=atomic)


Type = Union[Scalar, Ref, MapOf, ListOf, Open, Struct]

STR = Scalar("string")
INT = Scalar("integer", "int32")
INT64 = Scalar("integer", "int64")
BOOL = Scalar("boolean")
TIME = Scalar("string", "date-time")
INT_OR_STR = Scalar("int-or-string")
QUANTITY = Scalar("quantity")
OPEN = Open()
STRS = ListOf(STR)
OPENS = ListOf(OPEN)


def _merge_list(item: Type, key: str, *map_keys: str) -> ListOf:
    return ListOf(item, merge_key=key, strategy="merge", list_type="map", map_keys=map_keys or (key,))


META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
CORE = "io.k8s.api.core.v1."
DISCOVERY = "io.k8s.api.discovery.v1."
COORDINATION = "io.k8s.api.coordination.v1."
RBAC = "io.k8s.api.rbac.v1."
AUTHZ = "io.k8s.api.authorization.v1."
AUTHN = "io.k8s.api.authentication.v1."

DEFINITIONS: dict[str, Struct] = {
    META: Struct({
        "name": STR, "generateName": STR, "namespace": STR, "selfLink": STR, "uid": STR,
        "resourceVersion": STR, "generation": INT64, "creationTimestamp": TIME, "deletionTimestamp": TIME,
        "deletionGracePeriodSeconds": INT64, "labels": MapOf(STR), "annotations": MapOf(STR),
        "ownerReferences": _merge_list(Ref("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"), "uid"),
        "finalizers": ListOf(STR, strategy="merge", list_type="set"), "managedFields": OPENS,
    }),
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference": Struct({
        "apiVersion": STR, "kind": STR, "name": STR, "uid": STR, "controller": BOOL, "blockOwnerDeletion": BOOL,
    }, required=("apiVersion", "kind", "name", "uid"), atomic=True),
    CORE + "ObjectReference": Struct({
        "kind": STR, "namespace": STR, "name": STR, "uid": STR, "apiVersion": STR, "resourceVersion": STR,
        "fieldPath": STR,
    }, atomic=True),
    CORE + "LocalObjectReference": Struct({"name": STR}, atomic=True),
    # --- Service
    CORE + "Service": Struct({"spec": Ref(CORE + "ServiceSpec"), "status": Ref(CORE + "ServiceStatus")}),
    CORE + "ServiceSpec": Struct({
        "ports": _merge_list(Ref(CORE + "ServicePort"), "port", "port", "protocol"),
        "selector": MapOf(STR, atomic=True), "clusterIP": STR, "clusterIPs": STRS, "type": STR, "externalIPs": STRS,
        "sessionAffinity": STR, "loadBalancerIP": STR, "loadBalancerSourceRanges": STRS, "externalName": STR,
        "externalTrafficPolicy": STR, "healthCheckNodePort": INT, "publishNotReadyAddresses": BOOL,
        "sessionAffinityConfig": Struct({"clientIP": Struct({"timeoutSeconds": INT})}),
        "ipFamilies": STRS, "ipFamilyPolicy": STR, "allocateLoadBalancerNodePorts": BOOL,
        "loadBalancerClass": STR, "internalTrafficPolicy": STR, "trafficDistribution": STR,
    }),
    CORE + "ServicePort": Struct({
        "name": STR, "protocol": STR, "appProtocol": STR, "port": INT, "targetPort": INT_OR_STR, "nodePort": INT,
    }, required=("port",)),
    CORE + "ServiceStatus": Struct({
        "loadBalancer": Struct({"ingress": ListOf(Struct({
            "ip": STR, "hostname": STR, "ipMode": STR,
            "ports": ListOf(Struct({"port": INT, "protocol": STR, "error": STR}))}))}),
        "conditions": _merge_list(OPEN, "type"),
    }),
    # --- Pod
    CORE + "Pod": Struct({"spec": Ref(CORE + "PodSpec"), "status": Ref(CORE + "PodStatus")}),
    CORE + "PodSpec": Struct({
        "volumes": ListOf(OPEN, merge_key="name", strategy="merge,retainKeys", list_type="map", map_keys=("name",)),
        "initContainers": _merge_list(Ref(CORE + "Container"), "name"),
        "containers": _merge_list(Ref(CORE + "Container"), "name"),
        "ephemeralContainers": _merge_list(OPEN, "name"),
        "restartPolicy": STR, "terminationGracePeriodSeconds": INT64, "activeDeadlineSeconds": INT64,
        "dnsPolicy": STR, "nodeSelector": MapOf(STR), "serviceAccountName": STR, "serviceAccount": STR,
        "automountServiceAccountToken": BOOL, "nodeName": STR, "hostNetwork": BOOL, "hostPID": BOOL,
        "hostIPC": BOOL, "shareProcessNamespace": BOOL, "securityContext": OPEN,
        "imagePullSecrets": _merge_list(Ref(CORE + "LocalObjectReference"), "name"),
        "hostname": STR, "subdomain": STR, "affinity": OPEN, "schedulerName": STR, "tolerations": OPENS,
        "hostAliases": _merge_list(OPEN, "ip"), "priorityClassName": STR, "priority": INT, "dnsConfig": OPEN,
        "readinessGates": OPENS, "runtimeClassName": STR, "enableServiceLinks": BOOL, "preemptionPolicy": STR,
        "overhead": MapOf(QUANTITY), "topologySpreadConstraints": _merge_list(OPEN, "topologyKey", "topologyKey", "whenUnsatisfiable"), "setHostnameAsFQDN": BOOL,
        "os": OPEN, "hostUsers": BOOL, "schedulingGates": _merge_list(OPEN, "name"),
        "resourceClaims": _merge_list(OPEN, "name"), "resources": OPEN,
    }, required=("containers",)),
    CORE + "Container": Struct({
        "name": STR, "image": STR, "command": STRS, "args": STRS, "workingDir": STR,
        "ports": _merge_list(Ref(CORE + "ContainerPort"), "containerPort", "containerPort", "protocol"),
        "envFrom": OPENS, "env": _merge_list(Ref(CORE + "EnvVar"), "name"), "resources": OPEN,
        "resizePolicy": OPENS, "restartPolicy": STR,
        "volumeMounts": _merge_list(OPEN, "mountPath"), "volumeDevices": _merge_list(OPEN, "devicePath"),
        "livenessProbe": OPEN, "readinessProbe": OPEN, "startupProbe": OPEN, "lifecycle": OPEN,
        "terminationMessagePath": STR, "terminationMessagePolicy": STR, "imagePullPolicy": STR,
        "securityContext": OPEN, "stdin": BOOL, "stdinOnce": BOOL, "tty": BOOL,
    }, required=("name",)),
    CORE + "ContainerPort": Struct({
        "name": STR, "hostPort": INT, "containerPort": INT, "protocol": STR, "hostIP": STR,
    }, required=("containerPort",)),
    CORE + "EnvVar": Struct({"name": STR, "value": STR, "valueFrom": OPEN}, required=("name",)),
    CORE + "PodStatus": Struct({
        "phase": STR, "conditions": _merge_list(Ref(CORE + "PodCondition"), "type"), "message": STR,
        "reason": STR, "nominatedNodeName": STR, "hostIP": STR, "hostIPs": _merge_list(Struct({"ip": STR}), "ip"),
        "podIP": STR, "podIPs": _merge_list(Struct({"ip": STR}), "ip"), "startTime": TIME,
        "initContainerStatuses": OPENS, "containerStatuses": OPENS, "qosClass": STR,
        "ephemeralContainerStatuses": OPENS, "resize": STR, "resourceClaimStatuses": _merge_list(OPEN, "name"),
        "observedGeneration": INT64,
    }),
    CORE + "PodCondition": Struct({
        "type": STR, "status": STR, "lastProbeTime": TIME, "lastTransitionTime": TIME, "reason": STR,
        "message": STR, "observedGeneration": INT64,
    }, required=("type", "status")),
    # --- Namespace, Node
    CORE + "Namespace": Struct({
        "spec": Struct({"finalizers": STRS}),
        "status": Struct({"phase": STR, "conditions": _merge_list(OPEN, "type")}),
    }),
    CORE + "Node": Struct({"spec": Ref(CORE + "NodeSpec"), "status": Ref(CORE + "NodeStatus")}),
    CORE + "NodeSpec": Struct({
        "podCIDR": STR, "podCIDRs": ListOf(STR, strategy="merge", list_type="set"), "providerID": STR,
        "unschedulable": BOOL, "taints": OPENS, "configSource": OPEN, "externalID": STR,
    }),
    CORE + "NodeStatus": Struct({
        "capacity": MapOf(QUANTITY), "allocatable": MapOf(QUANTITY), "phase": STR,
        "conditions": _merge_list(Ref(CORE + "NodeCondition"), "type"),
        "addresses": _merge_list(Ref(CORE + "NodeAddress"), "type"), "daemonEndpoints": OPEN, "nodeInfo": OPEN,
        "images": OPENS, "volumesInUse": STRS, "volumesAttached": OPENS, "config": OPEN,
        "runtimeHandlers": OPENS, "features": OPEN,
    }),
    CORE + "NodeCondition": Struct({
        "type": STR, "status": STR, "lastHeartbeatTime": TIME, "lastTransitionTime": TIME, "reason": STR,
        "message": STR,
    }, required=("type", "status")),
    CORE + "NodeAddress": Struct({"type": STR, "address": STR}, required=("type", "address")),
    # --- Endpoints, EndpointSlice
    CORE + "Endpoints": Struct({"subsets": ListOf(Ref(CORE + "EndpointSubset"))}),
    CORE + "EndpointSubset": Struct({
        "addresses": ListOf(Ref(CORE + "EndpointAddress")), "notReadyAddresses": ListOf(Ref(CORE + "EndpointAddress")),
        "ports": ListOf(Ref(CORE + "EndpointPort")),
    }),
    CORE + "EndpointAddress": Struct({
        "ip": STR, "hostname": STR, "nodeName": STR, "targetRef": Ref(CORE + "ObjectReference"),
    }, required=("ip",)),
    CORE + "EndpointPort": Struct({"name": STR, "port": INT, "protocol": STR, "appProtocol": STR}, required=("port",)),
    DISCOVERY + "EndpointSlice": Struct({
        "addressType": STR, "endpoints": ListOf(Ref(DISCOVERY + "Endpoint")),
        "ports": ListOf(Ref(DISCOVERY + "EndpointPort")),
    }, required=("addressType", "endpoints")),
    DISCOVERY + "Endpoint": Struct({
        "addresses": ListOf(STR, list_type="set"),
        "conditions": Struct({"ready": BOOL, "serving": BOOL, "terminating": BOOL}),
        "hostname": STR, "targetRef": Ref(CORE + "ObjectReference"), "deprecatedTopology": MapOf(STR),
        "nodeName": STR, "zone": STR,
        "hints": Struct({"forZones": ListOf(Struct({"name": STR})), "forNodes": ListOf(Struct({"name": STR}))}),
    }, required=("addresses",)),
    DISCOVERY + "EndpointPort": Struct({"name": STR, "protocol": STR, "port": INT, "appProtocol": STR}, atomic=True),
    # --- the rest
    CORE + "ServiceAccount": Struct({
        "secrets": _merge_list(Ref(CORE + "ObjectReference"), "name"),
        "imagePullSecrets": ListOf(Ref(CORE + "LocalObjectReference")), "automountServiceAccountToken": BOOL,
    }),
    CORE + "ResourceQuota": Struct({
        "spec": Struct({"hard": MapOf(QUANTITY), "scopes": STRS, "scopeSelector": OPEN}),
        "status": Struct({"hard": MapOf(QUANTITY), "used": MapOf(QUANTITY)}),
    }),
    CORE + "Event": Struct({
        "involvedObject": Ref(CORE + "ObjectReference"), "reason": STR, "message": STR,
        "source": Struct({"component": STR, "host": STR}), "firstTimestamp": TIME, "lastTimestamp": TIME,
        "count": INT, "type": STR, "eventTime": Scalar("string", "date-time"), "series": OPEN, "action": STR,
        "related": Ref(CORE + "ObjectReference"), "reportingComponent": STR, "reportingInstance": STR,
    }, required=("metadata", "involvedObject")),
    CORE + "Secret": Struct({"data": MapOf(Scalar("string", "byte")), "stringData": MapOf(STR), "type": STR,
                             "immutable": BOOL}),
    COORDINATION + "Lease": Struct({"spec": Struct({
        "holderIdentity": STR, "leaseDurationSeconds": INT, "acquireTime": Scalar("string", "date-time"),
        "renewTime": Scalar("string", "date-time"), "leaseTransitions": INT, "strategy": STR, "preferredHolder": STR,
    })}),
    # --- RBAC
    RBAC + "PolicyRule": Struct({"verbs": STRS, "apiGroups": STRS, "resources": STRS, "resourceNames": STRS,
                                 "nonResourceURLs": STRS}, required=("verbs",)),
    RBAC + "Subject": Struct({"kind": STR, "apiGroup": STR, "name": STR, "namespace": STR}, required=("kind", "name")),
    RBAC + "RoleRef": Struct({"apiGroup": STR, "kind": STR, "name": STR}, required=("apiGroup", "kind", "name")),
    RBAC + "Role": Struct({"rules": ListOf(Ref(RBAC + "PolicyRule"))}),
    RBAC + "ClusterRole": Struct({"rules": ListOf(Ref(RBAC + "PolicyRule")), "aggregationRule": OPEN}),
    RBAC + "RoleBinding": Struct({"subjects": ListOf(Ref(RBAC + "Subject")), "roleRef": Ref(RBAC + "RoleRef")},
                                 required=("roleRef",)),
    RBAC + "ClusterRoleBinding": Struct({"subjects": ListOf(Ref(RBAC + "Subject")), "roleRef": Ref(RBAC + "RoleRef")},
                                        required=("roleRef",)),
    # --- create-only reviews and TokenRequest (answered, never stored)
    AUTHZ + "ResourceAttributes": Struct({"namespace": STR, "verb": STR, "group": STR, "version": STR,
                                          "resource": STR, "subresource": STR, "name": STR,
                                          "fieldSelector": OPEN, "labelSelector": OPEN}),
    AUTHZ + "NonResourceAttributes": Struct({"path": STR, "verb": STR}),
    AUTHZ + "SubjectAccessReviewSpec": Struct({
        "resourceAttributes": Ref(AUTHZ + "ResourceAttributes"),
        "nonResourceAttributes": Ref(AUTHZ + "NonResourceAttributes"),
        "user": STR, "groups": STRS, "extra": MapOf(STRS), "uid": STR}),
    AUTHZ + "SubjectAccessReviewStatus": Struct({"allowed": BOOL, "denied": BOOL, "reason": STR,
                                                 "evaluationError": STR}, required=("allowed",)),
    AUTHZ + "SelfSubjectAccessReview": Struct({
        "spec": Struct({"resourceAttributes": Ref(AUTHZ + "ResourceAttributes"),
                        "nonResourceAttributes": Ref(AUTHZ + "NonResourceAttributes")}),
        "status": Ref(AUTHZ + "SubjectAccessReviewStatus")}, required=("spec",)),
    AUTHZ + "SelfSubjectRulesReview": Struct({"spec": Struct({"namespace": STR}), "status": OPEN},
                                             required=("spec",)),
    AUTHZ + "SubjectAccessReview": Struct({"spec": Ref(AUTHZ + "SubjectAccessReviewSpec"),
                                           "status": Ref(AUTHZ + "SubjectAccessReviewStatus")}, required=("spec",)),
    AUTHZ + "LocalSubjectAccessReview": Struct({"spec": Ref(AUTHZ + "SubjectAccessReviewSpec"),
                                                "status": Ref(AUTHZ + "SubjectAccessReviewStatus")},
                                               required=("spec",)),
    AUTHN + "UserInfo": Struct({"username": STR, "uid": STR, "groups": STRS, "extra": MapOf(STRS)}),
    AUTHN + "SelfSubjectReview": Struct({"status": Struct({"userInfo": Ref(AUTHN + "UserInfo")})}),
    AUTHN + "TokenReview": Struct({
        "spec": Struct({"token": STR, "audiences": STRS}),
        "status": Struct({"authenticated": BOOL, "user": Ref(AUTHN + "UserInfo"), "audiences": STRS, "error": STR}),
    }, required=("spec",)),
    AUTHN + "TokenRequest": Struct({
        "spec": Struct({"audiences": STRS, "expirationSeconds": INT64,
                        "boundObjectRef": Struct({"kind": STR, "apiVersion": STR, "name": STR, "uid": STR})},
                       required=("audiences",)),
        "status": Struct({"token": STR, "expirationTimestamp": TIME}, required=("token", "expirationTimestamp")),
    }, required=("spec",)),
}


def definition_name(resource: Resource) -> str:
    """The OpenAPI definition name of a resource's kind (io.k8s.api.<group>.<version>.<Kind>)."""
    group = resource.group.split(".")[0] if resource.group else "core"
    return f"io.k8s.api.{group}.{resource.version}.{resource.kind}"


def kind_schema(resource: Resource) -> Struct:
    """The top-level schema of a resource's kind: apiVersion, kind, metadata and its own fields."""
    own = DEFINITIONS[definition_name(resource)]
    fields: dict[str, Type] = {"apiVersion": STR, "kind": STR, "metadata": Ref(META)}
    fields.update(own.fields)
    return Struct(fields, own.required)


def _add_workloads() -> None:
    from kproxy.apiserver import schema_batch, schema_policy, schema_workloads  # import this module's names
    DEFINITIONS.update(schema_workloads.DEFINITIONS)
    DEFINITIONS.update(schema_batch.DEFINITIONS)
    DEFINITIONS.update(schema_policy.DEFINITIONS)
    from kproxy.apiserver import schema_set_workloads
    DEFINITIONS.update(schema_set_workloads.DEFINITIONS)


_add_workloads()
