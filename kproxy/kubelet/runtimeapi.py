"""What a PodWorker needs from a container runtime, as typing Protocols.

Two runtimes implement them: the process runtime (kproxy.kubelet.runtime: PodNetworks for
sandboxes, ContainerProcess for containers; the default) and the CRI runtime
(kproxy.kubelet.criruntime: CriRuntime and CriContainer, pods in containerd). The worker's
logic (restart policy, backoff, probes, termination, status) is written once against these.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence


class ContainerHandle(Protocol):
    """One run of one container."""

    env: dict[str, str]  # the container's environment (exec sessions get it)
    wrapper: list[str]  # the process runtime's mount-namespace wrapper; empty for CRI
    adopted: Any  # (pid, start ticks) of a process an earlier kubelet started, else None
    exit_unknown: bool  # it exited while nobody watched: the exit code is a guess
    started_mono: float  # time.monotonic() at start

    def start(self) -> None:
        """Starts it (blocking: the worker calls it in a thread); raises RuntimeFailure,
        whose `reason` attribute, when it has one, is the waiting reason."""

    @property
    def pid(self) -> int | None: ...

    def start_ticks(self) -> int: ...

    def poll(self) -> int | None:
        """The exit code once it has exited, else None; never blocks."""

    def watch_exit(self, callback: Callable[[], None]) -> bool:
        """Calls `callback` on the running loop when it exits; False: the caller polls."""

    async def stop(self, grace: float) -> int | None:
        """SIGTERM (or the runtime's stop), SIGKILL after `grace` seconds; the exit code."""

    def exec_prefix(self) -> list[str]:
        """The command line prefix that runs a command where the container runs."""


class SandboxInfo(Protocol):
    """Where a pod's containers run (read-only: runtimes return frozen records)."""

    @property
    def netns(self) -> str: ...

    @property
    def ip(self) -> str: ...

    @property
    def own_network(self) -> bool: ...


class CriPodRuntime(Protocol):
    """The hooks PodWorker and Kubelet call when pods run in a CRI runtime (NodeContext.cri)."""

    async def make_sandbox(self, pod: Mapping[str, Any]) -> SandboxInfo: ...

    async def remove_sandbox(self, uid: str) -> None: ...

    async def check_image(self, spec: Mapping[str, Any]) -> None: ...

    async def container(self, uid: str, spec: Mapping[str, Any], env: Mapping[str, str],
                        mounts: Sequence[Any], attempt: int) -> ContainerHandle: ...

    async def remove_leftovers(self, keep: frozenset[str] = frozenset()) -> list[str]: ...

    async def close(self) -> None: ...
