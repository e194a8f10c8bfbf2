"""What a kubelet remembers of a pod on disk so a successor can adopt it after a crash: the
sandbox (namespace, address slot) and each container's process (pid and its kernel start
time, so a recycled pid is never mistaken for it) with its status fields.

Files: <root-dir>/pods/<uid>/pod.json, written whole through a rename (never half a record),
removed when the pod stops. A kubelet that exits cleanly stops its pods and leaves no record;
only one that died does.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

RECORD_NAME = "pod.json"


@dataclass
class ContainerRecordOnDisk:
    pid: int | None  # None once it exited for good (an init container that finished)
    start_ticks: int  # /proc/<pid>/stat starttime: the process's identity beside its pid
    wrapped: bool  # runs in a mount namespace of its own (volumes)
    started_at: str | None
    container_id: str
    restart_count: int
    exit_code: int | None = None
    oom_kills: int = 0


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    netns: str
    ip: str
    own_network: bool
    slot: int | None  # the address slot of the pod's network (None for hostNetwork)
    start_time: str | None
    containers: dict[str, ContainerRecordOnDisk] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "PodRecord":
        containers = {k: ContainerRecordOnDisk(**v) for k, v in (doc.get("containers") or {}).items()}
        return cls(**{**doc, "containers": containers})


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])  # field 22 of stat; `rest` starts at field 3


def alive(pid: int | None, start_ticks: int) -> bool:
    return pid is not None and process_start_ticks(pid) == start_ticks


def save(pod_dir: str, record: PodRecord) -> None:
    os.makedirs(pod_dir, exist_ok=True)
    tmp = os.path.join(pod_dir, RECORD_NAME + ".tmp")
    with open(tmp, "w") as f:
        json.dump(asdict(record), f)
    os.replace(tmp, os.path.join(pod_dir, RECORD_NAME))


def remove(pod_dir: str) -> None:
    try:
        os.unlink(os.path.join(pod_dir, RECORD_NAME))
    except FileNotFoundError:
        pass


def load_all(root_dir: str) -> dict[str, PodRecord]:
    """Every pod record under root-dir by uid; unreadable ones are skipped."""
    pods = os.path.join(root_dir, "pods")
    found: dict[str, PodRecord] = {}
    for uid in os.listdir(pods) if os.path.isdir(pods) else ():
        try:
            with open(os.path.join(pods, uid, RECORD_NAME)) as f:
                record = PodRecord.from_json(json.load(f))
        except (OSError, ValueError, TypeError):
            continue
        found[record.uid] = record
    return found
