"""The lab's workloads as pure manifests: echo pods the kubelets run, and Deployments of them.

The lab's pods are ordinary Pod objects with `spec.nodeName` set, run by that node's kubelet
(kproxy/kubelet); nothing here touches the kernel or the API. A pod the lab places by hand
can be made ready or not ready at will: its readiness probe looks for a flag file that
`Lab.set_ready` creates or removes (the process runtime runs exec probes with this machine's
files).
"""
from __future__ import annotations

from typing import Any

from kproxy.kubelet.containerspec import BASE_IMAGE, ECHO_IMAGE

ECHO_CONTAINER = "echo"
# A readiness probe that answers within a second of a change: set_ready waits on it.
FLAG_PROBE_PERIOD = 1
# The preStop sleep of a hand-placed pod: a graceful deletion keeps it serving for its whole
# grace period (the kubelet sleeps min(grace, this)); a deletion with grace 0 stops it at once.
SERVE_WHILE_TERMINATING = 3600


def echo_container(port: int = 8080, readiness: dict | None = None, liveness: dict | None = None,
                   pre_stop_sleep: int | None = None) -> dict[str, Any]:
    """The echo server on `port` (TCP and UDP), with optional probes and a preStop sleep."""
    container: dict[str, Any] = {
        "name": ECHO_CONTAINER, "image": ECHO_IMAGE,
        "env": [{"name": "PORT", "value": str(port)}],
        "ports": [{"name": "echo-tcp", "containerPort": port, "protocol": "TCP"},
                  {"name": "echo-udp", "containerPort": port, "protocol": "UDP"}],
    }
    if readiness is not None:
        container["readinessProbe"] = readiness
    if liveness is not None:
        container["livenessProbe"] = liveness
    if pre_stop_sleep is not None:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop_sleep}}}
    return container


def file_probe(path: str, period: int = FLAG_PROBE_PERIOD, initial_delay: int = 0) -> dict[str, Any]:
    """A probe that passes while `path` exists (one failure is enough to fail it)."""
    return {"exec": {"command": ["test", "-e", path]}, "periodSeconds": period, "initialDelaySeconds": initial_delay,
            "failureThreshold": 1, "successThreshold": 1, "timeoutSeconds": 5}


def http_probe(port: int = 8080, period: int = 1) -> dict[str, Any]:
    """The echo server's /healthz, answered once it listens."""
    return {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": period,
            "failureThreshold": 1, "successThreshold": 1, "timeoutSeconds": 5}


def echo_pod(name: str, namespace: str, node: str, labels: dict[str, str], port: int = 8080,
             ready_flag: str | None = None, live_flag: str | None = None, ready_delay: int = 0,
             grace_seconds: int = 0) -> dict[str, Any]:
    """A Pod bound to `node` running the echo server. With `ready_flag` it is Ready only
    while that file exists; with `live_flag` its container is restarted when that file is
    missing (a liveness probe); `ready_delay` is its readiness probe's initialDelaySeconds.
    `grace_seconds` is its terminationGracePeriodSeconds: the default 0 stops a pod deleted
    without a grace period at once; one deleted with a grace period keeps serving through it
    (preStop sleep)."""
    readiness = file_probe(ready_flag, initial_delay=ready_delay) if ready_flag else None
    liveness = file_probe(live_flag) if live_flag else None
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": grace_seconds,
                 "containers": [echo_container(port, readiness=readiness, liveness=liveness,
                                               pre_stop_sleep=SERVE_WHILE_TERMINATING)]},
    }


def echo_deployment(name: str, replicas: int, labels: dict[str, str] | None = None, port: int = 8080,
                    pre_stop_sleep: int = 2, grace_seconds: int = 10, namespace: str = "default") -> dict[str, Any]:
    """A Deployment of echo pods made for rollouts that lose no request: maxSurge 1,
    maxUnavailable 0, a readiness probe (/healthz), and a preStop sleep that keeps a deleted
    pod serving while the agents remove its endpoint."""
    labels = dict(labels or {"app": name})
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"terminationGracePeriodSeconds": grace_seconds,
                         "containers": [echo_container(port, readiness=http_probe(port),
                                                       pre_stop_sleep=pre_stop_sleep)]},
            },
        },
    }


def echo_daemonset(name: str, labels: dict[str, str] | None = None, port: int = 8080,
                   namespace: str = "default") -> dict[str, Any]:
    """A DaemonSet of echo pods (one per node), Ready once their /healthz answers."""
    labels = dict(labels or {"app": name})
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"terminationGracePeriodSeconds": 0,
                                       "containers": [echo_container(port, readiness=http_probe(port))]}}},
    }


def shell_job(name: str, script: str, completions: int = 1, parallelism: int = 1,
              labels: dict[str, str] | None = None, namespace: str = "default") -> dict[str, Any]:
    """A Job whose pods run `script` with the base image's shell (restartPolicy Never)."""
    labels = dict(labels or {"app": name})
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": 0,
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "main", "image": BASE_IMAGE,
                                                       "command": ["sh", "-c", script]}]}}},
    }


def simple_deployment(name: str, replicas: int, image: str = ECHO_IMAGE) -> dict[str, Any]:
    """What `kubectl create deployment NAME --image=IMAGE --replicas=N` creates."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": dict(labels)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [{"name": image.rsplit("/", 1)[-1].split(":")[0],
                                                       "image": image}]}}},
    }


def zero_loss_patch(port: int = 8080, pre_stop_sleep: int = 2) -> dict[str, Any]:
    """A strategic merge patch giving a Deployment's echo container what a rollout without a
    lost request needs (a readiness probe, a preStop sleep) and the strategy that keeps every
    ready pod until its successor is ready."""
    return {"spec": {
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"spec": {"containers": [{
            "name": ECHO_CONTAINER,
            "readinessProbe": http_probe(port),
            "lifecycle": {"preStop": {"sleep": {"seconds": pre_stop_sleep}}},
        }]}},
    }}


def condition(pod: dict, ctype: str) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c.get("status")
    return None


def running(pod: dict) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and bool(status.get("podIP"))


def restart_count(pod: dict, container: str = ECHO_CONTAINER) -> int:
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        if c.get("name") == container:
            return int(c.get("restartCount") or 0)
    return 0


def container_pid(pod: dict, container: str = ECHO_CONTAINER) -> int | None:
    """The pid of a running container of the process runtime (containerID process://PID)."""
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        cid = str(c.get("containerID") or "")
        if c.get("name") == container and "running" in (c.get("state") or {}) and cid.startswith("process://"):
            return int(cid.removeprefix("process://"))
    return None


def rollout_complete(deployment: dict) -> bool:
    """kubectl rollout status's test: the controller saw the latest spec, every replica is
    updated and available, and no old replica is left."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    want = int(spec.get("replicas", 1))
    return (int(status.get("observedGeneration") or 0) >= int((deployment.get("metadata") or {}).get("generation") or 0)
            and int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want)
