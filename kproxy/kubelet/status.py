"""A pod's status as kubelet writes it, computed from what the runtime knows (pure).

Follows kubelet's generateAPIPodStatus: the phase from the containers' states and the
restart policy (getPhase), the conditions PodReadyToStartContainers, Initialized, Ready,
ContainersReady in kubelet's order with the scheduler's PodScheduled kept, and a
containerStatus per container in spec order. A condition keeps its lastTransitionTime while
its status does not change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

OWN_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")


@dataclass
class ContainerRecord:
    """One container as the runtime sees it."""

    name: str
    image: str
    state: str = "waiting"  # "waiting" | "running" | "terminated"
    reason: str = "ContainerCreating"  # waiting or terminated reason
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    restart_count: int = 0
    last_state: dict = field(default_factory=dict)  # a ready-made API state ({"terminated": {...}})
    ready: bool = False
    started: bool = False
    container_id: str = ""

    def api_state(self) -> dict:
        if self.state == "running":
            return {"running": {"startedAt": self.started_at}}
        if self.state == "terminated":
            term: dict[str, Any] = {"exitCode": self.exit_code if self.exit_code is not None else 0,
                                    "reason": self.reason, "startedAt": self.started_at,
                                    "finishedAt": self.finished_at}
            if self.message:
                term["message"] = self.message
            if self.container_id:
                term["containerID"] = self.container_id
            return {"terminated": term}
        waiting: dict[str, Any] = {"reason": self.reason}
        if self.message:
            waiting["message"] = self.message
        return {"waiting": waiting}

    def api_status(self) -> dict:
        status: dict[str, Any] = {
            "name": self.name, "state": self.api_state(), "lastState": dict(self.last_state),
            "ready": self.ready, "restartCount": self.restart_count, "image": self.image,
            "imageID": "", "started": self.started,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def init_done(c: ContainerRecord) -> bool:
    return c.state == "terminated" and c.exit_code == 0


def pod_phase(containers: Sequence[ContainerRecord], restart_policy: str,
              init_containers: Sequence[ContainerRecord] = ()) -> str:
    """kubelet's getPhase: Pending until every init container succeeded (Failed when one
    failed and restartPolicy is Never), then from the app containers' states."""
    if not all(init_done(c) for c in init_containers):
        failed = any(c.state == "terminated" and c.exit_code != 0 for c in init_containers)
        return "Failed" if failed and restart_policy == "Never" else "Pending"
    running = waiting = stopped = succeeded = 0
    for c in containers:
        if c.state == "running":
            running += 1
        elif c.state == "terminated":
            stopped += 1
            succeeded += c.exit_code == 0
        elif c.last_state.get("terminated"):
            stopped += 1  # waiting to restart after it ran
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(ctype: str, ok: bool, now: str, old: Mapping[str, dict], reason: str = "",
               message: str = "") -> dict:
    status = "True" if ok else "False"
    prev = old.get(ctype)
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None,
                            "lastTransitionTime": prev.get("lastTransitionTime") if prev and
                            prev.get("status") == status else now}
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def pod_status(pod: Mapping[str, Any], containers: Sequence[ContainerRecord], *, pod_ip: str | None,
               host_ip: str | None, start_time: str | None, network_ready: bool, now: str,
               init_containers: Sequence[ContainerRecord] = (), pod_ips: Sequence[str] = ()) -> dict:
    """The status to write for `pod` (its old status supplies PodScheduled and transition times);
    `pod_ips` are all its addresses, primary (`pod_ip`) first, when it has more than one."""
    spec, old_status = pod.get("spec") or {}, pod.get("status") or {}
    old = {str(c.get("type")): c for c in old_status.get("conditions") or () if isinstance(c, dict)}
    phase = pod_phase(containers, str(spec.get("restartPolicy") or "Always"), init_containers)
    incomplete = [c.name for c in init_containers if not init_done(c)]
    unready = [c.name for c in containers if not c.ready]
    ready_reason, ready_message = "", ""
    if phase in ("Succeeded", "Failed"):
        ready_reason = "PodCompleted"
    elif unready:
        ready_reason = "ContainersNotReady"
        ready_message = f"containers with unready status: [{' '.join(unready)}]"
    all_ready = not unready and phase not in ("Succeeded", "Failed")
    conditions = [
        _condition("PodReadyToStartContainers", network_ready, now, old),
        _condition("Initialized", not incomplete, now, old, "PodCompleted" if phase in ("Succeeded", "Failed")
                   else "ContainersNotInitialized", f"containers with incomplete status: [{' '.join(incomplete)}]"),
        _condition("Ready", all_ready, now, old, ready_reason, ready_message),
        _condition("ContainersReady", all_ready, now, old, ready_reason, ready_message),
    ]
    conditions += [c for t, c in old.items() if t not in OWN_CONDITIONS]
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": ip} for ip in (pod_ips or (pod_ip,))]
    if start_time:
        status["startTime"] = start_time
    if init_containers:
        status["initContainerStatuses"] = [c.api_status() for c in init_containers]
    status["containerStatuses"] = [c.api_status() for c in containers]
    status["qosClass"] = old_status.get("qosClass") or qos_class(spec)
    return status


def qos_class(spec: Mapping[str, Any]) -> str:
    """BestEffort without any request or limit, Guaranteed when every container's limits equal
    its requests for cpu and memory, else Burstable."""
    containers = spec.get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits = r.get("limits") or {}
        requests = r.get("requests") or limits  # requests default to limits
        if any(not limits.get(k) or requests.get(k, limits[k]) != limits[k] for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"
