"""One pod on this node, from its network namespace to its deletion.

A PodWorker owns the pod's namespace and container processes. Each pass (every `tick`
seconds, or at once when the pod object changes) it collects exited processes, runs the
probes that are due, starts the containers that may start (restartPolicy, CrashLoopBackOff)
and writes the status through pods/status when it differs from what it last wrote.

Guarantees:
- a pod marked for deletion gets preStop hooks (exec, sleep), SIGTERM, and SIGKILL after its
  grace period; then its namespace is removed and the object deleted with grace 0 (uid
  precondition, so a new pod of the same name is never touched);
- a failure in one container (unknown image, bad env, a program that cannot start) shows in
  that container's waiting state and never stops the others or the kubelet;
- `shutdown()` (the kubelet exiting) stops the processes and removes the namespace, leaving
  the pod object alone.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from kproxy.api.meta import now_rfc3339
from kproxy.api import resources
from kproxy.api.resources import PODS, SECRETS
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError
from kproxy.client.events import POD_REF, EventRecorder
from kproxy.kubelet import logs, records
from kproxy.kubelet.backoff import CrashBackoff
from kproxy.kubelet.cgroups import join_prefix, limits_of
from kproxy.kubelet.containerspec import EnvError, ImageError, container_argv, container_env, referenced_sources
from kproxy.kubelet.probes import ProbeTracker, run_probe
from kproxy.kubelet.podnet import pod_hostname
from kproxy.kubelet.runtime import ContainerProcess, PodNetworks, RuntimeFailure, in_pod
from kproxy.kubelet.runtimeapi import ContainerHandle, CriPodRuntime
from kproxy.kubelet.status import ContainerRecord, pod_status
from kproxy.kubelet.volumemanager import PodVolumes
from kproxy.kubelet.volumes import MountError, mount_prefix
from kproxy.netns import NetNS

log = logging.getLogger(__name__)

DEFAULT_GRACE = 30
# where env's Secrets and ConfigMaps are read (ConfigMaps once the apiserver serves them)
SOURCE_RESOURCES = {"Secret": SECRETS, **({"ConfigMap": resources.CONFIG_MAPS}
                                          if hasattr(resources, "CONFIG_MAPS") else {})}
PROBE_KINDS = (("startupProbe", "startup"), ("livenessProbe", "liveness"), ("readinessProbe", "readiness"))


@dataclass
class NodeContext:
    """What every pod worker of one kubelet shares."""

    client: Any
    node_name: str
    host_ip: str
    node_ns: NetNS
    networks: PodNetworks
    root_dir: str
    services: Any  # an Informer of Services (for the Service environment variables)
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    tick: float = 2.0  # the longest a worker sleeps; exits (pidfd), probes and backoffs wake it sooner
    events: EventRecorder | None = None  # the Events kubelet records (Started, Killing, BackOff, ...)
    shutdown_grace: float = 5.0  # the most a kubelet that exits waits for one pod
    cgroups: Any = None  # a cgroups.Cgroups for resource limits, None when the machine offers none
    cgroups_note: str = ""  # why there are no cgroups
    cri: CriPodRuntime | None = None  # pods in containerd through CRI (criruntime.py); None: processes


@dataclass
class Container:
    spec: dict
    record: ContainerRecord
    backoff: CrashBackoff
    process: ContainerHandle | None = None  # a ContainerProcess, or the CRI runtime's CriContainer
    probes: dict[str, ProbeTracker] = field(default_factory=dict)
    ever_started: bool = False
    done: bool = False  # exited and will not restart
    init: bool = False  # an init container: runs to completion before the app containers
    oom_kills: int = 0  # the OOM kills its cgroup had counted when it last started


@dataclass(frozen=True)
class Sandbox:
    """Where a pod's containers run: a network namespace and the pod's IP."""

    netns: str
    ip: str
    own_network: bool  # False for hostNetwork pods, which run in the node's namespace
    ips: tuple[str, ...] = ()  # every address, primary first (a dual-stack pod has two)


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: dict, adopt: records.PodRecord | None = None):
        self.ctx = ctx
        self.pod = pod
        self.uid = str(meta(pod).get("uid"))
        self.name, self.namespace = str(meta(pod).get("name")), str(meta(pod).get("namespace"))
        spec = pod.get("spec") or {}
        self.init_containers = [self._container(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [self._container(c) for c in spec.get("containers") or []]
        self.sandbox: Sandbox | None = None
        self._network_backoff = CrashBackoff(1.0, 30.0)
        self.volumes = PodVolumes(ctx.client, pod, os.path.join(ctx.root_dir, "pods", self.uid))
        self._mount_backoff = CrashBackoff(1.0, 30.0)
        self.start_time: str | None = None
        self.last_written: dict | None = None
        self._server_view: dict = {}  # what the server returned for last_written
        self.finished = ((pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"))
        self._wake = asyncio.Event()
        self._gone = False  # the object is deleted: nothing to write or delete any more
        self._shutdown = False
        self.pod_dir = os.path.join(ctx.root_dir, "pods", self.uid)
        if adopt is not None:
            self._adopt(adopt)

    def _container(self, spec: dict, init: bool = False) -> Container:
        record = ContainerRecord(name=str(spec.get("name")), image=str(spec.get("image") or ""))
        return Container(spec=spec, record=record,
                         backoff=CrashBackoff(self.ctx.backoff_initial, self.ctx.backoff_max), init=init)

    @property
    def every_container(self) -> list[Container]:
        return [*self.init_containers, *self.containers]

    def _startable(self) -> list[Container]:
        """The init container whose turn it is, or, once they all succeeded, the app containers."""
        for c in self.init_containers:
            if not (c.done and c.record.exit_code == 0):
                return [] if c.done else [c]  # an init container failed for good: nothing more runs
        return self.containers

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    # -- events from the kubelet ---------------------------------------------------------

    def update(self, pod: dict) -> None:
        self.pod = pod
        self._wake.set()

    def deleted(self) -> None:
        self._gone = True
        self._wake.set()

    def shutdown(self) -> None:
        self._shutdown = True
        self._wake.set()

    @property
    def deleting(self) -> bool:
        return bool(meta(self.pod).get("deletionTimestamp")) or self._gone

    def _event(self, event_type: str, reason: str, message: str) -> None:
        if self.ctx.events is not None:
            self.ctx.events.record(POD_REF, self.namespace, self.name, event_type, reason, message, uid=self.uid)

    # -- what an earlier kubelet left ------------------------------------------------------

    def _adopt(self, record: records.PodRecord) -> None:
        """Takes over the sandbox and processes an earlier kubelet of this node left running,
        with the status they had (no restart, no readiness flap); a process that died meanwhile
        is reaped as an exit of unknown code at the first pass."""
        self.sandbox = Sandbox(record.netns, record.ip, record.own_network,
                               self.ctx.networks.ips_of(self.uid) if record.own_network else ())
        self.start_time = record.start_time
        self.volumes.ready = True
        now = time.monotonic()
        status = self.pod.get("status") or {}
        seen = {s.get("name"): s for key in ("initContainerStatuses", "containerStatuses")
                for s in status.get(key) or () if isinstance(s, dict)}
        for c in self.every_container:
            saved = record.containers.get(c.record.name)
            if saved is None:
                continue
            old = seen.get(c.record.name) or {}
            c.ever_started = True
            c.oom_kills = saved.oom_kills
            c.record.restart_count, c.record.last_state = saved.restart_count, dict(old.get("lastState") or {})
            c.record.started_at, c.record.container_id = saved.started_at, saved.container_id
            if saved.pid is None:  # it had finished for good
                c.done = True
                c.record.state, c.record.exit_code = "terminated", saved.exit_code
                c.record.reason = "Completed" if saved.exit_code == 0 else "Error"
                c.record.finished_at = ((old.get("state") or {}).get("terminated") or {}).get("finishedAt")
                continue
            log_path = os.path.join(self.pod_dir, f"{c.record.name}.log")
            c.process = ContainerProcess.adopt(record.netns, saved.pid, saved.start_ticks, log_path, saved.wrapped)
            c.record.state, c.record.reason = "running", ""
            c.probes = {} if c.init else {kind: ProbeTracker(kind, c.spec[field_name], now) for field_name, kind
                                          in PROBE_KINDS if isinstance(c.spec.get(field_name), dict)}
            if "startup" in c.probes and old.get("started"):
                c.probes["startup"].result = True
            if "readiness" in c.probes and old.get("ready"):
                c.probes["readiness"].result = True
            self._judge(c)
        log.info("pod %s: adopted from an earlier kubelet", self.key)

    def _save_record(self) -> None:
        """Writes what a successor needs to adopt this pod (records.py)."""
        if self.sandbox is None or self.ctx.cri is not None:
            return  # CRI pods are not adopted by a successor yet: it removes their sandboxes
        containers = {}
        for c in self.every_container:
            if c.process is not None and c.process.pid is not None:
                containers[c.record.name] = records.ContainerRecordOnDisk(
                    c.process.pid, c.process.start_ticks(), bool(c.process.wrapper), c.record.started_at,
                    c.record.container_id, c.record.restart_count, oom_kills=c.oom_kills)
            elif c.done and c.ever_started:
                containers[c.record.name] = records.ContainerRecordOnDisk(
                    None, 0, False, c.record.started_at, c.record.container_id, c.record.restart_count,
                    exit_code=c.record.exit_code)
        record = records.PodRecord(self.uid, self.namespace, self.name, self.sandbox.netns, self.sandbox.ip,
                                   self.sandbox.own_network, self.ctx.networks.slot_of(self.uid), self.start_time,
                                   containers)
        try:
            records.save(self.pod_dir, record)
        except OSError as exc:
            log.warning("pod %s: record not written (a kubelet restart will rerun it): %s", self.key, exc)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        for c in self.every_container:
            if c.process is not None and c.process.adopted is not None:
                c.process.watch_exit(self._wake.set)
        try:
            while not (self.deleting or self._shutdown):
                await self._sync_once()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._sleep(time.monotonic()))
                except asyncio.TimeoutError:
                    pass
        finally:
            await self._terminate(delete_object=self.deleting and not self._gone and not self._shutdown)

    async def _sync_once(self) -> None:
        now = time.monotonic()
        if not self.finished and self.sandbox is None and not self._network_backoff.waiting(now):
            try:
                self.sandbox = await self._make_sandbox()
                self.start_time = now_rfc3339()
                self._save_record()
            except RuntimeFailure as exc:
                log.warning("pod %s: network not set up: %s", self.key, exc)
                self._event("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
                self._network_backoff.exited(now, 0.0)  # retried with backoff, not every tick
                for c in self.every_container:
                    c.record.reason, c.record.message = "ContainerCreating", str(exc)
        if self.sandbox is not None and not self.finished:
            await self._sync_volumes(now)
        if self.sandbox is not None and self.volumes.ready:
            self._reap(now)
            await self._probe(now)
            await self._start_due(now)
            if not self._startable() or (self.containers and all(c.done for c in self.containers)):
                self.finished = True
        await self._write_status()

    def _sleep(self, now: float) -> float:
        """Seconds until something is due: a probe, the end of a backoff, or the next tick."""
        due = [now + self.ctx.tick]
        if self.sandbox is None and not self.finished:
            due.append(self._network_backoff.not_before)
        elif not self.volumes.ready and not self.finished:
            due.append(self._mount_backoff.not_before)
        for c in self.every_container if self.sandbox is not None else ():
            due.extend(t.next_at for t in c.probes.values())
            if c.process is None and not c.done:
                due.append(c.backoff.not_before)
        return max(0.01, min(due) - now)

    async def _make_sandbox(self) -> Sandbox:
        """The pod's own namespace and address, or the node's for a hostNetwork pod."""
        if self.ctx.cri is not None:
            made = await self.ctx.cri.make_sandbox(self.pod)
            return Sandbox(made.netns, made.ip, made.own_network)
        if (self.pod.get("spec") or {}).get("hostNetwork"):
            return Sandbox(self.ctx.networks.node_netns, self.ctx.host_ip, own_network=False)
        plan = await asyncio.to_thread(self.ctx.networks.create, self.uid, self.namespace, self.name,
                                       self.ctx.node_name, pod_hostname(self.pod))
        return Sandbox(plan.netns, plan.ip, own_network=True, ips=plan.ips)

    async def _sync_volumes(self, now: float) -> None:
        """Sets the volumes up before any container starts (a FailedMount Event and a retry
        with backoff while one cannot be: the pod stays ContainerCreating), then refreshes
        their contents every so often, keeping the old files when a refresh fails."""
        assert self.sandbox is not None
        ready = self.volumes.ready
        if (ready and not self.volumes.refresh_due(now)) or (not ready and self._mount_backoff.waiting(now)):
            return
        try:
            if ready:
                await self.volumes.refresh(self.pod, self.sandbox.ip, self.ctx.host_ip)
            else:
                await self.volumes.set_up(self.sandbox.ip, self.ctx.host_ip)
                if self.volumes.memory_note:
                    self._event("Normal", "EmptyDirNotTmpfs", self.volumes.memory_note)
        except (MountError, ApiError, ApiConnectionError, OSError) as exc:
            log.warning("pod %s: volumes: %s", self.key, exc)
            if not ready:
                self._mount_backoff.exited(now, 0.0)
                self._event("Warning", "FailedMount", str(exc))

    def _reap(self, now: float) -> None:
        policy = str((self.pod.get("spec") or {}).get("restartPolicy") or "Always")
        for c in self.every_container:
            if c.process is None:
                continue
            rc = c.process.poll()
            if rc is None:
                continue
            ran_for = now - c.process.started_mono
            reason, finished = ("Completed" if rc == 0 else "Error"), now_rfc3339()
            message = ("the container's exit code is unknown: it ran on after a kubelet restart"
                       if c.process.exit_unknown else "")
            if message:
                reason = "ContainerStatusUnknown"
            cgroups = self.ctx.cgroups
            if rc != 0 and (getattr(c.process, "oom_killed", False) or (  # the CRI runtime says so itself
                    cgroups is not None and cgroups.oom_kills(self.uid, c.record.name) > c.oom_kills)):
                reason = "OOMKilled"
            term = {"exitCode": rc, "reason": reason, "startedAt": c.record.started_at, "finishedAt": finished,
                    "containerID": c.record.container_id, **({"message": message} if message else {})}
            log.info("pod %s: container %s exited with %d", self.key, c.record.name, rc)
            c.process, c.probes = None, {}
            c.record.ready = c.record.started = False
            if (policy == "Always" and not c.init) or (policy != "Never" and rc != 0):
                c.record.last_state = {"terminated": term}
                if c.backoff.exited(now, ran_for) > now:
                    self._event("Warning", "BackOff", f"Back-off restarting failed container {c.record.name} in pod "
                                f"{self.name}_{self.namespace}({self.uid})")
                c.record.state, c.record.reason, c.record.message = "waiting", "CrashLoopBackOff", ""
            else:
                c.done = True
                c.record.state, c.record.exit_code = "terminated", rc
                c.record.reason, c.record.finished_at = reason, finished
                self._save_record()

    async def _start_due(self, now: float) -> None:
        assert self.sandbox is not None
        for c in self._startable():
            if c.process is not None or c.done:
                continue
            if c.backoff.waiting(now):
                if c.ever_started:
                    c.record.reason = "CrashLoopBackOff"
                    c.record.message = (f"back-off {c.backoff.last_wait:g}s restarting failed container="
                                        f"{c.record.name} pod={self.name}_{self.namespace}({self.uid})")
                continue
            try:
                sources = await self._sources(referenced_sources(c.spec))
                env = container_env(c.spec, self.pod, self._services(), self.sandbox.ip, self.ctx.host_ip, sources)
                if self.ctx.cri is not None:
                    await self.ctx.cri.check_image(c.spec)
                    argv, wrapper = [], []
                else:
                    argv = container_argv(c.spec, env)
                    wrapper = mount_prefix(self.volumes.mounts(c.spec))
            except ImageError as exc:
                pulled_before = c.record.reason in ("ErrImagePull", "ImagePullBackOff")
                c.record.state = "waiting"
                own_reason = getattr(exc, "reason", None)  # the CRI runtime's (ErrImageNeverPull)
                if own_reason:
                    c.record.reason, c.record.message = own_reason, str(exc)
                    self._event("Warning", c.record.reason, c.record.message)
                    c.backoff.exited(now, 0.0)
                    continue
                c.record.reason = "ImagePullBackOff" if pulled_before else "ErrImagePull"
                c.record.message = (f'Back-off pulling image "{c.record.image}"' if pulled_before else str(exc))
                if pulled_before:
                    self._event("Normal", "BackOff", c.record.message)
                else:
                    self._event("Warning", "Failed", f'Failed to pull image "{c.record.image}": {exc}')
                c.backoff.exited(now, 0.0)
                continue
            except (EnvError, MountError, ApiError, ApiConnectionError) as exc:
                c.record.state, c.record.reason, c.record.message = "waiting", "CreateContainerConfigError", str(exc)
                c.backoff.exited(now, 0.0)
                continue
            log_path = logs.log_path(self.ctx.root_dir, self.uid, c.record.name)
            if c.ever_started:
                logs.keep_previous(log_path)  # one previous run's output, for kubectl logs --previous
            if self.ctx.cri is not None:
                proc = await self.ctx.cri.container(self.uid, c.spec, env, self.volumes.mounts(c.spec),
                                                    c.record.restart_count + int(c.ever_started))
            else:
                proc = ContainerProcess(self.sandbox.netns, argv, env, c.spec.get("workingDir"), log_path, wrapper,
                                        await self._cgroup_launcher(c))
            try:
                await asyncio.to_thread(proc.start)
            except RuntimeFailure as exc:
                c.record.state, c.record.message = "waiting", str(exc)
                c.record.reason = getattr(exc, "reason", "RunContainerError")
                self._event("Warning", "Failed", f"Error: {exc}")
                c.backoff.exited(now, 0.0)
                continue
            if c.ever_started:
                c.record.restart_count += 1
            c.ever_started = True
            c.process = proc
            proc.watch_exit(self._wake.set)
            c.record.state, c.record.reason, c.record.message = "running", "", ""
            c.record.started_at = now_rfc3339()
            runtime_id = getattr(proc, "container_id", "")  # the CRI runtime's; a process has its pid
            c.record.container_id = f"containerd://{runtime_id}" if runtime_id else f"process://{proc.pid}"
            self._save_record()
            c.probes = {} if c.init else {kind: ProbeTracker(kind, c.spec[field_name], now) for field_name, kind
                                          in PROBE_KINDS if isinstance(c.spec.get(field_name), dict)}
            self._judge(c)
            log.info("pod %s: started container %s (pid %s)", self.key, c.record.name, proc.pid)
            self._event("Normal", "Pulled", f'Container image "{c.record.image}" already present on machine')
            self._event("Normal", "Started", f"Started container {c.record.name}")

    async def _cgroup_launcher(self, c: Container) -> list[str]:
        """Puts a container with limits into its own cgroup; without cgroups the limits are
        not enforced, which an Event says."""
        limits = limits_of(c.spec)
        if not limits:
            return []
        if self.ctx.cgroups is None:
            if not c.ever_started:
                self._event("Warning", "LimitsNotEnforced", f"resource limits of container {c.record.name} are "
                            f"not enforced: {self.ctx.cgroups_note or 'no cgroups'}")
            return []
        try:
            procs = await asyncio.to_thread(self.ctx.cgroups.create, self.uid, c.record.name, limits)
        except OSError as exc:
            self._event("Warning", "LimitsNotEnforced", f"container {c.record.name}: cgroup not created: {exc}")
            return []
        c.oom_kills = self.ctx.cgroups.oom_kills(self.uid, c.record.name)
        return join_prefix(procs)

    async def _sources(self, refs: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str] | None]:
        """The data of the Secrets (base64-decoded) and ConfigMaps a container refers to; None
        for one that does not exist."""
        found: dict[tuple[str, str], dict[str, str] | None] = {}
        for kind, name in sorted(refs):
            resource = SOURCE_RESOURCES.get(kind)
            if resource is None:
                found[(kind, name)] = None
                continue
            try:
                obj = await self.ctx.client.get(resource, name, self.namespace)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                found[(kind, name)] = None
                continue
            data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()} \
                if kind == "Secret" else dict(obj.get("data") or {})
            found[(kind, name)] = data
        return found

    def _services(self) -> list[dict]:
        """The Services whose variables a container sees: its namespace's and `kubernetes`."""
        services = list(self.ctx.services.list(self.namespace))
        master = self.ctx.services.get("kubernetes", "default")
        if self.namespace != "default" and master is not None:
            services.append(master)
        return services

    def _judge(self, c: Container) -> None:
        startup = c.probes.get("startup")
        readiness = c.probes.get("readiness")
        c.record.started = c.process is not None and (startup is None or startup.result)
        c.record.ready = c.record.started and (readiness is None or readiness.result)

    async def _probe(self, now: float) -> None:
        assert self.sandbox is not None
        for c in self.containers:
            if c.process is None:
                continue
            startup = c.probes.get("startup")
            for kind, tracker in list(c.probes.items()):
                if not tracker.due(now) or (kind != "startup" and startup is not None and not startup.result):
                    continue
                if kind == "startup" and tracker.result:
                    continue  # a startup probe stops once it succeeded
                ok = await asyncio.to_thread(run_probe, tracker.probe, c.spec, self.sandbox.ip, self.ctx.node_ns,
                                             c.process.exec_prefix())
                changed = tracker.record(ok, time.monotonic())
                if changed and not ok:
                    self._event("Warning", "Unhealthy", f"{kind.capitalize()} probe failed")
                if (kind == "liveness" and changed and not ok) or (kind == "startup" and tracker.gave_up()):
                    log.info("pod %s: container %s failed its %s probe, killing it", self.key, c.record.name, kind)
                    self._event("Normal", "Killing",
                                f"Container {c.record.name} failed {kind} probe, will be restarted")
                    await c.process.stop(self._grace())
                    break
            self._judge(c)

    def _grace(self) -> float:
        m = meta(self.pod)
        if m.get("deletionGracePeriodSeconds") is not None:
            return float(m["deletionGracePeriodSeconds"])
        value = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return float(DEFAULT_GRACE if value is None else value)

    async def _write_status(self) -> None:
        if self._gone:
            return
        status = pod_status(self.pod, [c.record for c in self.containers],
                            init_containers=[c.record for c in self.init_containers],
                            pod_ip=self.sandbox.ip if self.sandbox else None, host_ip=self.ctx.host_ip,
                            pod_ips=self.sandbox.ips if self.sandbox else (),
                            start_time=self.start_time,
                            network_ready=self.sandbox is not None, now=now_rfc3339())
        if status == self.last_written and self._status_seen() == self._server_view:
            return  # nothing changed here, and nobody (the node lifecycle controller) overwrote it
        try:
            self.pod = await self.ctx.client.patch(PODS, self.name, {"status": status}, self.namespace,
                                                   subresource="status")
            self.last_written = status
            self._server_view = self._status_seen()
        except ApiError as exc:
            if exc.code == 404:
                self._gone = True
            else:
                log.warning("pod %s: status not written: %s", self.key, exc)
        except ApiConnectionError as exc:
            log.warning("pod %s: status not written: %s", self.key, exc)

    def _status_seen(self) -> dict:
        """The fields this worker writes, as the latest pod object holds them."""
        current = self.pod.get("status") or {}
        return {k: current.get(k) for k in self.last_written or ()}

    # -- the end -------------------------------------------------------------------------

    async def _terminate(self, delete_object: bool) -> None:
        grace = min(self._grace(), self.ctx.shutdown_grace) if self._shutdown else self._grace()
        running = [c for c in self.every_container if c.process is not None]
        for c in running:
            self._event("Normal", "Killing", f"Stopping container {c.record.name}")
        await self._stop_containers(running, grace)
        for c in running:
            assert c.process is not None
            rc = c.process.poll()
            c.record.state, c.record.exit_code, c.record.finished_at = "terminated", rc, now_rfc3339()
            c.record.reason = "Completed" if rc == 0 else "Error"
            c.record.ready = c.record.started = False
            c.process = None
        if self.ctx.cri is not None:
            await self.ctx.cri.remove_sandbox(self.uid)
        else:
            await asyncio.to_thread(self.ctx.networks.remove, self.uid)  # also what a failed setup left
        await asyncio.to_thread(self.volumes.tear_down)
        records.remove(self.pod_dir)
        if self.ctx.cgroups is not None:
            await asyncio.to_thread(self.ctx.cgroups.remove_pod, self.uid)
        if delete_object:
            await self._write_status()
            try:
                await self.ctx.client.delete(PODS, self.name, self.namespace, uid=self.uid, grace_period_seconds=0)
            except ApiError as exc:
                if exc.code not in (404, 409):
                    log.warning("pod %s: not deleted: %s", self.key, exc)
            except ApiConnectionError as exc:
                log.warning("pod %s: not deleted: %s", self.key, exc)
        log.info("pod %s: stopped", self.key)

    async def _stop_containers(self, running: list[Container], grace: float) -> None:
        """preStop hooks, SIGTERM, SIGKILL at the end of `grace`. Cut short (SIGKILL now), as
        kubelet shortens a termination, when the object is removed meanwhile (a force
        delete), a new deletion brings a shorter grace period, or the kubelet stops."""
        deadline = time.monotonic() + grace
        gone, shutdown = self._gone, self._shutdown

        async def graceful() -> None:
            await asyncio.gather(*(self._pre_stop(c, grace) for c in running), return_exceptions=True)
            remaining = max(0.0, deadline - time.monotonic())
            await asyncio.gather(*(c.process.stop(remaining) for c in running if c.process is not None))

        ending = asyncio.ensure_future(graceful())
        while not ending.done():
            self._wake.clear()
            woken = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({ending, woken}, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            shorter = self._grace() < grace and not self._shutdown
            if not ending.done() and ((self._gone and not gone) or (self._shutdown and not shutdown) or shorter):
                log.info("pod %s: termination cut short", self.key)
                ending.cancel()
                await asyncio.gather(ending, return_exceptions=True)
                await asyncio.gather(*(c.process.stop(0) for c in running if c.process is not None))
        await asyncio.gather(ending, return_exceptions=True)

    async def _pre_stop(self, c: Container, grace: float) -> None:
        """Runs the container's preStop hook (exec, httpGet or sleep) within the grace period."""
        hook = ((c.spec.get("lifecycle") or {}).get("preStop") or {})
        if "sleep" in hook:
            await asyncio.sleep(min(grace, float((hook.get("sleep") or {}).get("seconds") or 0)))
        elif "httpGet" in hook and self.sandbox is not None:
            request = {"httpGet": hook["httpGet"], "timeoutSeconds": max(1.0, grace)}
            await asyncio.to_thread(run_probe, request, c.spec, self.sandbox.ip, self.ctx.node_ns, [])
        elif "exec" in hook and self.sandbox is not None:
            command = list((hook.get("exec") or {}).get("command") or [])
            if not command:
                return
            try:
                prefix = (c.process.exec_prefix() if c.process is not None
                          else in_pod(self.sandbox.netns, []))
                proc = await asyncio.create_subprocess_exec(*prefix, *command,
                                                            stdout=asyncio.subprocess.DEVNULL,
                                                            stderr=asyncio.subprocess.DEVNULL)
                await asyncio.wait_for(proc.wait(), grace)
            except (OSError, asyncio.TimeoutError):
                log.info("pod %s: preStop of %s did not finish", self.key, c.record.name)
