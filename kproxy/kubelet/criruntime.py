"""The CRI runtime: the kubelet's pods as containerd pod sandboxes and containers, driven over
the Container Runtime Interface (kproxy.containerd.cri).

A PodWorker uses it through three hooks (NodeContext.cri): `make_sandbox`/`remove_sandbox`
for the pod, and `container()` for a handle that behaves as a ContainerProcess does (start,
poll, watch_exit, stop, exec_prefix), so the worker's restart, probe and termination logic is
the same for both runtimes.

Guarantees:
- pod IPs come from containerd's CNI (kproxy.containerd.cni: ptp + host-local over the pod CIDR);
- imagePullPolicy: an image the runtime holds is used as it is (no registry is reachable here,
  so Always behaves as IfNotPresent); Never with the image absent is ErrImageNeverPull, any
  other absent image is tried with PullImage and is ErrImagePull when that fails;
- a CreateContainer failure is CreateContainerError, a StartContainer failure RunContainerError;
- exits are seen by one watcher per runtime (ListContainers each `poll_interval`); while
  containerd does not answer (a restart) every container keeps its last known state, and the
  watcher carries on once it answers again;
- exec and exec probes run through nsenter into the container's namespaces (its init pid from
  ContainerStatus), logs are the CRI log files containerd writes at kproxy.kubelet.logs' paths.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from kproxy.containerd.cri import CriClient, CriError, pb
from kproxy.kubelet import logs, records
from kproxy.kubelet.cgroups import CFS_PERIOD_US, limits_of
from kproxy.kubelet.containerspec import ImageError, expand
from kproxy.kubelet.runtime import RuntimeFailure
from kproxy.kubelet.volumes import BindMount

log = logging.getLogger(__name__)

NODE_LABEL = "kproxy.io/node"
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"
UNKNOWN_EXIT = 137


class ImageNeverPull(ImageError):
    """The image is absent and the pull policy is Never."""

    reason = "ErrImageNeverPull"


class CreateContainerFailure(RuntimeFailure):
    reason = "CreateContainerError"


@dataclass(frozen=True)
class CriSandbox:
    """What PodWorker keeps as its Sandbox (same fields) plus the runtime's sandbox id."""

    netns: str
    ip: str
    own_network: bool
    sandbox_id: str = ""


def sandbox_config(pod: Mapping[str, Any], node_name: str, root_dir: str) -> pb.PodSandboxConfig:
    """The PodSandboxConfig of a pod (pure)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    uid, name, namespace = str(meta.get("uid")), str(meta.get("name")), str(meta.get("namespace"))
    node = pb.NODE if spec.get("hostNetwork") else pb.POD
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=0),
        hostname="" if spec.get("hostNetwork") else str(spec.get("hostname") or name),
        log_directory=logs.log_path(root_dir, uid, "x").rsplit("/", 1)[0],
        labels={NODE_LABEL: node_name, POD_UID_LABEL: uid, "io.kubernetes.pod.name": name,
                "io.kubernetes.pod.namespace": namespace},
        linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
            namespace_options=pb.NamespaceOption(network=node, pid=pb.CONTAINER, ipc=pb.POD))))


def container_resources(spec: Mapping[str, Any]) -> pb.LinuxContainerResources:
    """Memory and CPU limits as kubelet gives them to the runtime (CFS quota over a 100 ms period)."""
    limits = limits_of(spec)
    resources = pb.LinuxContainerResources()
    if limits.memory_bytes is not None:
        resources.memory_limit_in_bytes = limits.memory_bytes
    if limits.cpu_quota_us is not None:
        resources.cpu_quota, resources.cpu_period = limits.cpu_quota_us, CFS_PERIOD_US
    return resources


def container_config(spec: Mapping[str, Any], env: Mapping[str, str], mounts: Sequence[BindMount],
                     uid: str, attempt: int) -> pb.ContainerConfig:
    """The ContainerConfig of a container (pure): command and args replace the image's
    entrypoint and cmd as in a pod spec, with $(VAR) expanded."""
    name = str(spec.get("name"))
    privileged = bool((spec.get("securityContext") or {}).get("privileged"))
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        image=pb.ImageSpec(image=str(spec.get("image") or "")),
        command=[expand(str(c), env) for c in spec.get("command") or ()],
        args=[expand(str(a), env) for a in spec.get("args") or ()],
        working_dir=str(spec.get("workingDir") or ""),
        envs=[pb.KeyValue(key=k, value=v) for k, v in env.items()],
        mounts=[pb.Mount(container_path=m.target, host_path=m.source, readonly=m.read_only) for m in mounts],
        labels={POD_UID_LABEL: uid, CONTAINER_NAME_LABEL: name},
        log_path=f"{name}.log",
        stdin=bool(spec.get("stdin")), stdin_once=bool(spec.get("stdinOnce")), tty=bool(spec.get("tty")),
        linux=pb.LinuxContainerConfig(resources=container_resources(spec),
                                      security_context=pb.LinuxContainerSecurityContext(
                                          privileged=privileged,
                                          namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER,
                                                                               ipc=pb.POD))))


def check_image(client: CriClient, image: str, policy: str) -> None:
    """Makes sure the runtime holds `image` as `policy` asks; raises ImageNeverPull or ImageError."""
    try:
        if client.image_status(image) is not None:
            return
    except CriError as exc:
        raise ImageError(f"image status of {image}: {exc.details or exc}") from None
    if policy == "Never":
        raise ImageNeverPull(f'Container image "{image}" is not present with pull policy of Never')
    try:
        client.pull_image(image)
    except CriError as exc:
        raise ImageError(f'failed to pull image "{image}": {exc.details or exc}') from None


class CriContainer:
    """One container run, with the interface of kproxy.kubelet.runtime.ContainerProcess."""

    def __init__(self, runtime: "CriRuntime", sandbox: CriSandbox, sandbox_cfg: pb.PodSandboxConfig,
                 config: pb.ContainerConfig, env: Mapping[str, str]):
        self.runtime, self.sandbox, self.sandbox_cfg, self.config = runtime, sandbox, sandbox_cfg, config
        self.env = dict(env)
        self.wrapper: list[str] = []  # what ContainerProcess has for volumes: mounts are the runtime's here
        self.adopted = None
        self.exit_unknown = False
        self.oom_killed = False
        self.started_mono = 0.0
        self.container_id = ""
        self.init_pid: int | None = None
        self.exit: int | None = None
        self._on_exit: Callable[[], None] | None = None

    # called in a thread (the calls block)
    def start(self) -> None:
        client = self.runtime.client
        try:
            self.container_id = client.create_container(self.sandbox.sandbox_id, self.config, self.sandbox_cfg)
        except CriError as exc:
            raise CreateContainerFailure(exc.details or str(exc)) from None
        try:
            client.start_container(self.container_id)
        except CriError as exc:
            self.runtime.forget(self.container_id)
            raise RuntimeFailure(exc.details or str(exc)) from None
        self.started_mono = time.monotonic()
        try:
            info = client.container_status(self.container_id, verbose=True).info.get("info") or "{}"
            self.init_pid = int(json.loads(info).get("pid") or 0) or None
        except (CriError, ValueError):
            self.init_pid = None

    @property
    def pid(self) -> int | None:
        return self.init_pid

    def start_ticks(self) -> int:
        return (records.process_start_ticks(self.init_pid) if self.init_pid else None) or 0

    def poll(self) -> int | None:
        return self.exit

    def watch_exit(self, callback: Callable[[], None]) -> bool:
        self._on_exit = callback
        self.runtime.watch(self)
        return True

    def exited(self, code: int, reason: str = "", unknown: bool = False) -> None:
        if self.exit is not None:
            return
        self.exit, self.oom_killed, self.exit_unknown = code, reason == "OOMKilled", unknown
        if self._on_exit is not None:
            self._on_exit()

    def exec_prefix(self) -> list[str]:
        """Runs a command in the container's mount, UTS, IPC, network and PID namespaces."""
        if self.init_pid is None:
            return ["false"]
        return ["nsenter", "--target", str(self.init_pid), "--mount", "--uts", "--ipc", "--net", "--pid",
                "--root", "--wd", "--"]

    @property
    def exec_root(self) -> str:
        """The container's filesystem as the node sees it (exec looks its program up there)."""
        return f"/proc/{self.init_pid}/root" if self.init_pid else "/"

    def signal(self, sig: int) -> None:  # the runtime signals through StopContainer only
        pass

    async def stop(self, grace: float) -> int | None:
        """StopContainer with `grace` seconds (SIGKILL after it); waits through a containerd restart."""
        if not self.container_id:
            return None
        deadline = time.monotonic() + grace + self.runtime.client.timeout
        while True:
            try:
                await asyncio.to_thread(self.runtime.client.stop_container, self.container_id, math.ceil(grace))
                break
            except CriError as exc:
                if exc.not_found:
                    self.exited(UNKNOWN_EXIT, unknown=True)
                    return self.exit
                if not exc.unavailable or time.monotonic() > deadline:
                    log.warning("container %s: not stopped: %s", self.container_id[:12], exc)
                    return self.exit
                await asyncio.sleep(0.5)
        await self.runtime.refresh(self)
        return self.exit


@dataclass
class _PodState:
    sandbox: CriSandbox
    config: pb.PodSandboxConfig
    containers: dict[str, str] = field(default_factory=dict)  # container name -> id of its latest run


class CriRuntime:
    """The pods of one kubelet in one containerd (CriClient at its socket)."""

    def __init__(self, client: CriClient, node_name: str, root_dir: str, host_ip: str,
                 node_netns: str, poll_interval: float = 1.0):
        self.client, self.node_name, self.root_dir = client, node_name, root_dir
        self.host_ip, self.node_netns, self.poll_interval = host_ip, node_netns, poll_interval
        self._pods: dict[str, _PodState] = {}
        self._attempts: dict[str, int] = {}  # pod uid -> the next sandbox attempt after failures
        self._watched: dict[str, CriContainer] = {}
        self._watcher: asyncio.Task | None = None
        self._outage_logged = False

    # -- sandboxes ----------------------------------------------------------------------

    async def make_sandbox(self, pod: Mapping[str, Any]) -> CriSandbox:
        """RunPodSandbox (CNI gives the address); raises RuntimeFailure with the runtime's message."""
        config = sandbox_config(pod, self.node_name, self.root_dir)
        uid = config.metadata.uid
        config.metadata.attempt = self._attempts.get(uid, 0)
        try:
            sandbox_id = await asyncio.to_thread(self.client.run_pod_sandbox, config)
            status = await asyncio.to_thread(self.client.pod_sandbox_status, sandbox_id)
        except CriError as exc:
            # containerd keeps a sandbox whose network failed (its name stays reserved): remove
            # it, and the next try is a new attempt, as kubelet does
            self._attempts[uid] = config.metadata.attempt + 1
            await self._remove_pod_sandboxes(uid)
            raise RuntimeFailure(f"failed to create pod sandbox: {exc.details or exc}") from None
        self._attempts.pop(uid, None)
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        ip = self.host_ip if host_network else status.network.ip
        sandbox = CriSandbox(self.node_netns if host_network else f"cri:{sandbox_id}", ip, not host_network,
                             sandbox_id)
        self._pods[uid] = _PodState(sandbox, config)
        log.info("pod %s/%s: sandbox %s, IP %s", config.metadata.namespace, config.metadata.name, sandbox_id[:12], ip)
        return sandbox

    async def remove_sandbox(self, uid: str) -> None:
        self._attempts.pop(uid, None)
        state = self._pods.pop(uid, None)
        if state is None:
            return
        for container_id in state.containers.values():
            self._watched.pop(container_id, None)
        try:
            await asyncio.to_thread(self.client.stop_pod_sandbox, state.sandbox.sandbox_id)
            await asyncio.to_thread(self.client.remove_pod_sandbox, state.sandbox.sandbox_id)
        except CriError as exc:
            log.warning("sandbox %s: not removed: %s", state.sandbox.sandbox_id[:12], exc)

    async def _remove_pod_sandboxes(self, uid: str) -> None:
        try:
            found = await asyncio.to_thread(self.client.list_pod_sandboxes, {POD_UID_LABEL: uid})
            for sandbox in found:
                await asyncio.to_thread(self.client.stop_pod_sandbox, sandbox.id)
                await asyncio.to_thread(self.client.remove_pod_sandbox, sandbox.id)
        except CriError as exc:
            log.warning("pod %s: failed sandboxes not removed: %s", uid, exc)

    async def remove_leftovers(self, keep: frozenset[str] = frozenset()) -> list[str]:
        """Removes this node's sandboxes that no pod worker holds (an earlier kubelet's)."""
        mine = {s.sandbox.sandbox_id for s in self._pods.values()}
        try:
            found = await asyncio.to_thread(self.client.list_pod_sandboxes, {NODE_LABEL: self.node_name})
        except CriError as exc:
            log.warning("sandboxes not listed: %s", exc)
            return []
        gone = []
        for sandbox in found:
            if sandbox.id in mine or sandbox.labels.get(POD_UID_LABEL) in keep:
                continue
            try:
                await asyncio.to_thread(self.client.stop_pod_sandbox, sandbox.id)
                await asyncio.to_thread(self.client.remove_pod_sandbox, sandbox.id)
                gone.append(sandbox.id)
            except CriError as exc:
                log.warning("sandbox %s: not removed: %s", sandbox.id[:12], exc)
        return gone

    # -- containers ---------------------------------------------------------------------

    async def check_image(self, spec: Mapping[str, Any]) -> None:
        image = str(spec.get("image") or "")
        await asyncio.to_thread(check_image, self.client, image, str(spec.get("imagePullPolicy") or "IfNotPresent"))

    async def container(self, uid: str, spec: Mapping[str, Any], env: Mapping[str, str],
                        mounts: Sequence[BindMount], attempt: int) -> CriContainer:
        """A handle for the next run of container `spec` of pod `uid` (the previous run's
        container is removed first: its log file is kept by the kubelet)."""
        state = self._pods.get(uid)
        if state is None:
            raise RuntimeFailure("the pod has no sandbox")
        name = str(spec.get("name"))
        previous = state.containers.pop(name, None)
        if previous:
            self._watched.pop(previous, None)
            await asyncio.to_thread(self.forget, previous)
        handle = CriContainer(self, state.sandbox, state.config, container_config(spec, env, mounts, uid, attempt), env)
        return handle

    def forget(self, container_id: str) -> None:
        """RemoveContainer, ignoring a container that is already gone."""
        try:
            self.client.remove_container(container_id)
        except CriError as exc:
            if not exc.not_found:
                log.warning("container %s: not removed: %s", container_id[:12], exc)

    # -- exits --------------------------------------------------------------------------

    def watch(self, handle: CriContainer) -> None:
        if not handle.container_id:
            return
        state = self._pods.get(handle.config.labels.get(POD_UID_LABEL, ""))
        if state is not None:
            state.containers[handle.config.metadata.name] = handle.container_id
        self._watched[handle.container_id] = handle
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch_loop())

    async def refresh(self, handle: CriContainer) -> None:
        """Reads the container's state now; an exited one reports its exit."""
        try:
            status = (await asyncio.to_thread(self.client.container_status, handle.container_id)).status
        except CriError as exc:
            if exc.not_found:
                handle.exited(UNKNOWN_EXIT, unknown=True)
                self._watched.pop(handle.container_id, None)
            return
        if status.state == pb.CONTAINER_EXITED:
            self._watched.pop(handle.container_id, None)
            handle.exited(status.exit_code, status.reason)

    async def _watch_loop(self) -> None:
        while self._watched:
            await asyncio.sleep(self.poll_interval)
            try:
                listed = await asyncio.to_thread(self.client.list_containers, "", {})
            except CriError as exc:
                if not self._outage_logged:
                    log.warning("container runtime not answering, keeping the last known states: %s", exc)
                    self._outage_logged = True
                continue
            if self._outage_logged:
                log.info("container runtime answers again")
                self._outage_logged = False
            states = {c.id: c.state for c in listed}
            for container_id, handle in list(self._watched.items()):
                if states.get(container_id, pb.CONTAINER_EXITED) != pb.CONTAINER_RUNNING:
                    await self.refresh(handle)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        self.client.close()
