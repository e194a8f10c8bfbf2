"""The kubelet's Node: the object it registers (pure) and the machine facts it is made of.

The Node carries what kubelet reports: capacity and allocatable (cpu, memory, pods,
ephemeral-storage), addresses (InternalIP, Hostname), spec.podCIDR(s), nodeInfo, the standard
labels, and the four conditions kubelet's setters write (MemoryPressure, DiskPressure,
PIDPressure False; Ready True with reason KubeletReady). `refreshed_status` renews their
lastHeartbeatTime and keeps each lastTransitionTime while its status holds.
"""
from __future__ import annotations

import copy
import os
import platform
import shutil
from dataclasses import dataclass
from typing import Any, Mapping

import kproxy

KUBELET_VERSION = "v1.32.0"  # the API level kproxy's apiserver speaks
DEFAULT_MAX_PODS = 110
NETNS_ANNOTATION = "kproxy.io/node-netns"

CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


@dataclass(frozen=True)
class NodeFacts:
    name: str
    internal_ip: str  # comma-separated on a dual-stack node, primary first
    hostname: str
    pod_cidr: str  # likewise, one CIDR per family
    cpu: str
    memory: str  # a quantity, e.g. "16384Mi"
    pods: int = DEFAULT_MAX_PODS
    ephemeral_storage: str = "0"
    kernel_version: str = ""
    os_image: str = ""
    machine_id: str = ""
    boot_id: str = ""
    architecture: str = "amd64"
    kubelet_port: int = 10250  # daemonEndpoints: where the apiserver reaches logs and exec (0: not served)
    netns: str = ""  # the node's network namespace when nodes are namespaces of one machine (the lab)


def conditions(now: str, old: Mapping[str, dict] | None = None) -> list[dict]:
    old = old or {}
    out = []
    for ctype, status, reason, message in CONDITIONS:
        prev = old.get(ctype) or {}
        since = prev.get("lastTransitionTime") if prev.get("status") == status else None
        out.append({"type": ctype, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": since or now,
                    "reason": reason, "message": message})
    return out


def node_status(facts: NodeFacts, now: str, old_status: Mapping[str, Any] | None = None) -> dict:
    old = {str(c.get("type")): c for c in (old_status or {}).get("conditions") or () if isinstance(c, dict)}
    resources = {"cpu": facts.cpu, "memory": facts.memory, "pods": str(facts.pods),
                 "ephemeral-storage": facts.ephemeral_storage}
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": conditions(now, old),
        "addresses": [*({"type": "InternalIP", "address": ip} for ip in facts.internal_ip.split(",")),
                      {"type": "Hostname", "address": facts.hostname}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": facts.kubelet_port}},
        "nodeInfo": {
            "machineID": facts.machine_id, "systemUUID": facts.machine_id, "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version, "osImage": facts.os_image,
            "containerRuntimeVersion": f"process://{kproxy.__version__}",
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": facts.architecture,
        },
    }


def node_annotations(facts: NodeFacts) -> dict[str, str]:
    """The node's network namespace, for an apiserver that dials kubelets inside it
    (`kproxy apiserver --kubelet-netns-dial`, the lab's nodes on one machine)."""
    return {NETNS_ANNOTATION: facts.netns} if facts.netns else {}


def node_object(facts: NodeFacts, now: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": facts.name, "labels": {
            "kubernetes.io/hostname": facts.hostname, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": facts.architecture, "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": facts.architecture}, "annotations": node_annotations(facts)},
        "spec": {"podCIDR": facts.pod_cidr.split(",")[0], "podCIDRs": facts.pod_cidr.split(",")},
        "status": node_status(facts, now),
    }


def refreshed_node(node: dict, facts: NodeFacts, now: str) -> dict:
    """`node` with kubelet's status (and podCIDR if it had none) written over it."""
    new = copy.deepcopy(node)
    if node_annotations(facts):
        new.setdefault("metadata", {}).setdefault("annotations", {}).update(node_annotations(facts))
    spec = new.setdefault("spec", {})
    if not spec.get("podCIDR"):
        spec["podCIDR"], spec["podCIDRs"] = facts.pod_cidr.split(",")[0], facts.pod_cidr.split(",")
    status = new.setdefault("status", {})
    status.update(node_status(facts, now, status))
    return new


def status_differs(node: Mapping[str, Any], facts: NodeFacts) -> bool:
    """True when the Node's status says something other than what kubelet reports (a condition's
    status, capacity, allocatable, addresses, nodeInfo), heartbeat times aside."""
    status = node.get("status") or {}
    mine = node_status(facts, "")
    seen = {c.get("type"): c.get("status") for c in status.get("conditions") or () if isinstance(c, dict)}
    if any(seen.get(c["type"]) != c["status"] for c in mine["conditions"]):
        return True
    return any(status.get(k) != mine[k] for k in ("capacity", "allocatable", "addresses", "nodeInfo"))


# -- facts of this machine ---------------------------------------------------------------

def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def machine_memory() -> str:
    """MemTotal from /proc/meminfo as a Ki quantity ("0" when unknown)."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return f"{line.split()[1]}Ki"
    return "0"


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def machine_facts(name: str, internal_ip: str, pod_cidr: str, root_dir: str, *, cpu: str | None = None,
                  memory: str | None = None, pods: int = DEFAULT_MAX_PODS, kubelet_port: int = 10250,
                  netns: str = "") -> NodeFacts:
    try:
        storage = f"{shutil.disk_usage(root_dir).total // 1024}Ki"
    except OSError:
        storage = "0"
    return NodeFacts(name=name, internal_ip=internal_ip, hostname=name, pod_cidr=pod_cidr,
                     cpu=cpu or str(os.cpu_count() or 1), memory=memory or machine_memory(), pods=pods,
                     ephemeral_storage=storage, kernel_version=platform.release(), os_image=os_image(),
                     machine_id=_read("/etc/machine-id"), boot_id=_read("/proc/sys/kernel/random/boot_id"),
                     architecture=architecture(), kubelet_port=kubelet_port, netns=netns)
