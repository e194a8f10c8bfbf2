"""One valid object of each kind the apiserver serves, in JSON, exercising the protobuf mapping's
special cases: times, IntOrString, Quantity, bytes, Go pointers holding zero, empty pointer
messages (emptyDir: {}), embedded structs (volume sources, probe handlers), maps and int64."""
from __future__ import annotations

from typing import Any

from kproxy.api import resources as R

NS = "pb"
META = {"name": "sample", "namespace": NS, "labels": {"app": "web", "tier": "front"},
        "annotations": {"note": "protobuf round trip"}}
CLUSTER_META = {"name": "pb-sample", "labels": {"app": "web"}}

POD_SPEC: dict[str, Any] = {
    "containers": [{
        "name": "web", "image": "nginx:1.27", "command": ["nginx"], "args": ["-g", "daemon off;"],
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": "MODE", "value": "prod"},
                {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k", "optional": False}}}],
        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 3},
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "cfg", "mountPath": "/etc/cfg",
                                                                    "readOnly": True}],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "allowPrivilegeEscalation": False},
    }],
    "volumes": [{"name": "cache", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}},
                {"name": "tok", "secret": {"secretName": "creds", "items": [{"key": "k", "path": "k"}]}}],
    "restartPolicy": "Always", "terminationGracePeriodSeconds": 0, "dnsPolicy": "ClusterFirst",
    "nodeSelector": {"kubernetes.io/os": "linux"}, "serviceAccountName": "default",
    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": 300}],
}

_SERVED: dict[R.Resource, dict[str, Any]] = {
    R.NAMESPACES: {"metadata": {"name": NS, "labels": {"team": "a"}}, "spec": {"finalizers": ["kubernetes"]}},
    R.SERVICES: {"metadata": META, "spec": {
        "type": "NodePort", "selector": {"app": "web"}, "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}, "externalTrafficPolicy": "Local",
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                  {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}],
        "externalIPs": ["192.0.2.10"]}},
    R.ENDPOINTS: {"metadata": META, "subsets": [{
        "addresses": [{"ip": "10.244.1.5", "nodeName": "node-1",
                       "targetRef": {"kind": "Pod", "name": "web-1", "namespace": NS}}],
        "notReadyAddresses": [{"ip": "10.244.2.6"}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]},
    R.PODS: {"metadata": META, "spec": POD_SPEC},
    R.NODES: {"metadata": CLUSTER_META, "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
                                                 "taints": [{"key": "dedicated", "value": "web", "effect": "NoSchedule"}]}},
    R.SERVICE_ACCOUNTS: {"metadata": META, "automountServiceAccountToken": False,
                         "imagePullSecrets": [{"name": "registry"}]},
    R.RESOURCE_QUOTAS: {"metadata": META, "spec": {"hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "4Gi"},
                                                   "scopes": ["NotTerminating"]}},
    R.EVENTS: {"metadata": META, "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": NS},
               "reason": "Started", "message": "started container web", "type": "Normal", "count": 3,
               "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:05:06Z",
               "source": {"component": "kubelet", "host": "node-1"}},
    R.SECRETS: {"metadata": META, "type": "Opaque", "data": {"k": "c2VjcmV0", "bin": "AAEC/w=="}, "immutable": False},
    R.ENDPOINT_SLICES: {"metadata": {**META, "labels": {"kubernetes.io/service-name": "web"}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "node-1", "zone": "a",
                                       "conditions": {"ready": True, "serving": True, "terminating": False},
                                       "targetRef": {"kind": "Pod", "name": "web-1", "namespace": NS}}],
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
    R.LEASES: {"metadata": META, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                                         "renewTime": "2026-01-02T03:04:05.123456Z", "leaseTransitions": 0}},
    R.ROLES: {"metadata": META, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
    R.CLUSTER_ROLES: {"metadata": CLUSTER_META, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
        {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]},
    R.ROLE_BINDINGS: {"metadata": META, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                    "name": "sample"},
                      "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS},
                                   {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]},
    R.CLUSTER_ROLE_BINDINGS: {"metadata": CLUSTER_META, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                                    "kind": "ClusterRole", "name": "pb-sample"},
                              "subjects": [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]},
}


LABELS = {"matchLabels": {"app": "web"}}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC}
# (apiVersion, kind) -> the object without them: the served kinds, and the workload kinds
SAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    **{(r.group_version, r.kind): obj for r, obj in _SERVED.items()},
    ("v1", "ConfigMap"): {"metadata": META, "data": {"app.conf": "x=1\n"}, "binaryData": {"blob": "AAE="}},
    ("apps/v1", "ReplicaSet"): {"metadata": META, "spec": {"replicas": 0, "selector": LABELS, "template": TEMPLATE}},
    ("apps/v1", "Deployment"): {"metadata": META, "spec": {
        "replicas": 3, "selector": LABELS, "template": TEMPLATE, "revisionHistoryLimit": 10,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}}},
    ("v1", "ReplicationController"): {"metadata": META, "spec": {
        "replicas": 0, "selector": {"app": "web"}, "template": TEMPLATE, "minReadySeconds": 5}},
    ("policy/v1", "PodDisruptionBudget"): {"metadata": META, "spec": {
        "maxUnavailable": "25%", "selector": LABELS, "unhealthyPodEvictionPolicy": "AlwaysAllow"}},
    ("batch/v1", "Job"): {"metadata": META, "spec": {
        "parallelism": 0, "completions": 4, "backoffLimit": 2, "completionMode": "Indexed", "suspend": False,
        "manualSelector": True, "selector": LABELS, "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 0,
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {**POD_SPEC, "restartPolicy": "Never"}}},
        "status": {"active": 1, "succeeded": 2, "ready": 0, "completedIndexes": "0,2",
                   "startTime": "2026-01-02T03:04:05Z",
                   "uncountedTerminatedPods": {"failed": ["uid-1"]},
                   "conditions": [{"type": "Suspended", "status": "False", "reason": "JobResumed",
                                   "lastTransitionTime": "2026-01-02T03:04:05Z"}]}},
    ("batch/v1", "CronJob"): {"metadata": META, "spec": {
        "schedule": "*/5 * * * *", "timeZone": "Europe/Paris", "concurrencyPolicy": "Forbid", "suspend": False,
        "startingDeadlineSeconds": 0, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 0,
        "jobTemplate": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "template": {"spec": {**POD_SPEC, "restartPolicy": "OnFailure"}}}}},
        "status": {"active": [{"kind": "Job", "name": "sample-1", "namespace": NS, "apiVersion": "batch/v1"}],
                   "lastScheduleTime": "2026-01-02T03:05:00Z"}},
    ("apps/v1", "DaemonSet"): {"metadata": META, "spec": {
        "selector": LABELS, "template": TEMPLATE, "revisionHistoryLimit": 10,
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": 0}}}},
    ("apps/v1", "StatefulSet"): {"metadata": META, "spec": {
        "replicas": 0, "selector": LABELS, "template": TEMPLATE, "serviceName": "web",
        "podManagementPolicy": "Parallel", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"},
        "ordinals": {"start": 2}}},
    ("apps/v1", "ControllerRevision"): {"metadata": META, "revision": 3,
                                        "data": {"spec": {"template": {"$patch": "replace", **TEMPLATE}}}},
}


def sample(api_version: str, kind: str) -> dict[str, Any]:
    """The sample of a kind with its apiVersion and kind."""
    return {"apiVersion": api_version, "kind": kind, **SAMPLES[(api_version, kind)]}
