"""Container resource limits through cgroups: memory and CPU quota, and OOM kills read back.

Pure part: what a container's limits become (`limits_of`), which files of which controller
hold them (`limit_files`, cgroup v2 memory.max / cpu.max or v1 memory.limit_in_bytes /
cpu.cfs_quota_us), and the argv prefix that puts a process into its cgroup before it runs
(`join_prefix`). I/O part: `Cgroups.detect` finds a hierarchy this process may use, below its
own cgroup, under one directory per kubelet root-dir (`kproxy-kubelet-<hash>`), so a
restarted kubelet finds and removes what an earlier one left.

Guarantees: a container with limits gets its own cgroup <base>/pod<uid>/<container>, removed
(its leftover processes killed) when the pod stops; `Cgroups.remove_all` removes the base at
kubelet exit; when no usable hierarchy exists `detect` returns None with the reason, and the
caller records that limits are not enforced.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Mapping

from kproxy.api.validation.common import parse_quantity

log = logging.getLogger(__name__)

CFS_PERIOD_US = 100_000  # kubelet's default cpu-cfs-quota-period
MIN_QUOTA_US = 1_000  # kubelet's minimum quota (1 ms)
V2_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Limits:
    memory_bytes: int | None = None
    cpu_quota_us: int | None = None

    def __bool__(self) -> bool:
        return self.memory_bytes is not None or self.cpu_quota_us is not None


def limits_of(container: Mapping[str, Any]) -> Limits:
    """The container's memory and CPU limits (kubelet's MilliCPUToQuota for CPU) (pure)."""
    limits = (container.get("resources") or {}).get("limits") or {}
    memory = parse_quantity(limits.get("memory")) if limits.get("memory") is not None else None
    cpu = parse_quantity(limits.get("cpu")) if limits.get("cpu") is not None else None
    quota = None
    if cpu is not None and cpu > 0:
        quota = max(MIN_QUOTA_US, math.ceil(cpu * CFS_PERIOD_US))
    return Limits(int(memory) if memory is not None and memory > 0 else None, quota)


def limit_files(limits: Limits, version: int) -> dict[str, dict[str, str]]:
    """controller -> {file: value} ("" is the v2 unified hierarchy), in the order to write (pure)."""
    if version == 2:
        files: dict[str, str] = {}
        if limits.memory_bytes is not None:
            files["memory.max"] = str(limits.memory_bytes)
            files["memory.swap.max"] = "0"
        if limits.cpu_quota_us is not None:
            files["cpu.max"] = f"{limits.cpu_quota_us} {CFS_PERIOD_US}"
        return {"": files}
    out: dict[str, dict[str, str]] = {}
    if limits.memory_bytes is not None:
        # memsw (memory + swap) may not be below the memory limit: set the limit first
        out["memory"] = {"memory.limit_in_bytes": str(limits.memory_bytes),
                         "memory.memsw.limit_in_bytes": str(limits.memory_bytes)}
    if limits.cpu_quota_us is not None:
        out["cpu"] = {"cpu.cfs_period_us": str(CFS_PERIOD_US), "cpu.cfs_quota_us": str(limits.cpu_quota_us)}
    return out


def join_prefix(procs_files: list[str]) -> list[str]:
    """What to put before a container's argv so the process enters the cgroups whose
    cgroup.procs files are given before it runs anything, then replaces the shell (pure)."""
    if not procs_files:
        return []
    script = " && ".join([*(f'echo $$ > "${i + 1}"' for i in range(len(procs_files))),
                          f"shift {len(procs_files)}", 'exec "$@"'])
    return ["/bin/sh", "-c", script, "sh", *procs_files]


def _own_cgroups() -> dict[str, str]:
    """controller ("" for v2) -> this process's cgroup path."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    return out


def _fs_type(path: str) -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return fields[fields.index("-") + 1]
    return ""


class Cgroups:
    """The cgroup directories of one kubelet: per controller, a base below our own cgroup."""

    def __init__(self, version: int, bases: dict[str, str]):
        self.version = version
        self.bases = bases  # controller -> base directory

    @classmethod
    def detect(cls, root_dir: str) -> tuple["Cgroups | None", str]:
        """A usable hierarchy (its base directories made), or None and why not."""
        if os.geteuid() != 0:
            return None, "not running as root"
        name = "kproxy-kubelet-" + hashlib.sha1(os.path.realpath(root_dir).encode()).hexdigest()[:10]
        own = _own_cgroups()
        try:
            if _fs_type(V2_ROOT) == "cgroup2":
                return cls._detect_v2(os.path.join(V2_ROOT + own.get("", "/"), name))
            bases: dict[str, str] = {}
            for controller in ("memory", "cpu"):
                mount = os.path.join("/sys/fs/cgroup", controller)
                if _fs_type(mount) != "cgroup" or controller not in own:
                    return None, f"no cgroup v1 {controller} hierarchy at {mount}"
                bases[controller] = os.path.normpath(mount + own[controller] + "/" + name)
            for base in bases.values():
                os.makedirs(base, exist_ok=True)
            return cls(1, bases), ""
        except OSError as exc:
            return None, f"cannot create cgroups: {exc}"

    @classmethod
    def _detect_v2(cls, base: str) -> tuple["Cgroups | None", str]:
        parent = os.path.dirname(base)
        with open(os.path.join(parent, "cgroup.controllers")) as f:
            available = f.read().split()
        if not {"memory", "cpu"} <= set(available):
            return None, f"cgroup v2 {parent} lacks the memory or cpu controller"
        # a cgroup with processes of its own cannot hand controllers down (no internal processes)
        with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
            f.write("+memory +cpu")
        os.makedirs(base, exist_ok=True)
        return cls(2, {"": base}), ""

    # -- containers ----------------------------------------------------------------------

    def container_dirs(self, pod_uid: str, container: str) -> dict[str, str]:
        return {c: os.path.join(base, f"pod{pod_uid}", container) for c, base in self.bases.items()}

    def create(self, pod_uid: str, container: str, limits: Limits) -> list[str]:
        """Makes the container's cgroups with `limits`; returns their cgroup.procs files."""
        dirs = self.container_dirs(pod_uid, container)
        files = limit_files(limits, self.version)
        procs = []
        for controller, path in dirs.items():
            if self.version == 2:  # each level hands the controllers down to the next
                for level in (os.path.dirname(os.path.dirname(path)), os.path.dirname(path)):
                    os.makedirs(level, exist_ok=True)
                    with open(os.path.join(level, "cgroup.subtree_control"), "w") as f:
                        f.write("+memory +cpu")
            os.makedirs(path, exist_ok=True)
            for name, value in files.get(controller, {}).items():
                try:
                    with open(os.path.join(path, name), "w") as f:
                        f.write(value)
                except FileNotFoundError:
                    continue  # memsw / swap.max only exist with swap accounting
            procs.append(os.path.join(path, "cgroup.procs"))
        return procs

    def oom_kills(self, pod_uid: str, container: str) -> int:
        """How many processes the kernel's OOM killer has killed in the container's cgroup."""
        path = self.container_dirs(pod_uid, container).get("" if self.version == 2 else "memory")
        if path is None:
            return 0
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            with open(os.path.join(path, name)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def remove_pod(self, pod_uid: str) -> None:
        for base in self.bases.values():
            _remove_tree(os.path.join(base, f"pod{pod_uid}"))

    def remove_pods(self, keep: frozenset[str] = frozenset()) -> list[str]:
        """Removes the pod cgroups (an earlier kubelet's) but those of the uids in `keep`;
        returns the pod directories removed."""
        gone = []
        for base in self.bases.values():
            for entry in os.scandir(base) if os.path.isdir(base) else ():
                if entry.is_dir() and entry.name.startswith("pod") and entry.name[3:] not in keep:
                    _remove_tree(entry.path)
                    gone.append(entry.path)
        return gone

    def remove_all(self) -> None:
        for base in self.bases.values():
            _remove_tree(base)


def _remove_tree(path: str) -> None:
    """Removes a cgroup directory and those below it, killing any process still inside."""
    if not os.path.isdir(path):
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)
    deadline = time.monotonic() + 5.0
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                log.warning("cgroup %s not removed: %s", path, exc)
                return
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
