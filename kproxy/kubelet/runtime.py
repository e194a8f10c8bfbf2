"""The process runtime: a pod is a network namespace behind the node, a container is a
process started inside it with `ip netns exec`.

Guarantees:
- pod namespaces are named `<prefix><namespace>-<name>` and their addresses come from the
  node's pod CIDR (kproxy.kubelet.podnet's routed-veth layout);
- every container process leads its own session, so stopping it signals everything it
  started; its output goes, with the time of each line, to `<root>/pods/<uid>/<container>.log`
  through a log shim process of its own (kproxy.kubelet.logshim, CRI log format);
- `remove_pod_network` and `stop` are idempotent.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Iterable, Mapping, Sequence

from kproxy.kubelet import records
from kproxy.kubelet import podnet
from kproxy.kubelet.podnet import PodPlan, pod_plan
from kproxy.lab import netsetup

LOG_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logshim.py")
MAX_SLOTS = 4096  # more than any node's pod limit


__all__ = ["ContainerProcess", "PodNetworks", "RuntimeFailure", "exit_code", "free_slot", "pod_plan"]


class RuntimeFailure(RuntimeError):
    """A pod network or process could not be set up."""


def free_slot(pod_cidr: str, used: Iterable[int]) -> int:
    """The lowest host number of `pod_cidr` not in `used`, from 2 (.1 is left to a gateway, as
    the lab's address plan does) up to the last address before broadcast."""
    net = ipaddress.ip_network(pod_cidr)
    taken = set(used)
    last = min(net.num_addresses - 2, MAX_SLOTS)
    for slot in range(2, last + 1):
        if slot not in taken:
            return slot
    raise RuntimeFailure(f"pod CIDR {pod_cidr} has no free address")


class PodNetworks:
    """Pod namespaces behind one node namespace, with their address slots."""

    def __init__(self, node_netns: str, pod_cidr: str, prefix: str):
        self.node_netns = node_netns
        self.pod_cidr = pod_cidr
        self.prefix = prefix
        self._slots: dict[str, PodPlan] = {}  # pod uid -> plan

    def create(self, uid: str, namespace: str, name: str, node: str, hostname: str = "") -> PodPlan:
        plan = self._slots.get(uid)
        if plan is None:
            # a dual-stack pod takes the same slot of each family's CIDR: the smaller bounds them
            smallest = min(self.pod_cidr.split(","), key=lambda c: ipaddress.ip_network(c).num_addresses)
            slot = free_slot(smallest, (p.slot for p in self._slots.values()))
            plan = self._slots[uid] = pod_plan(self.prefix, self.pod_cidr, namespace, name, node, slot)
        try:
            podnet.detach_pod_network(plan, self.node_netns)  # a leftover of an earlier kubelet
            podnet.attach_pod_network(plan, self.node_netns, hostname)
        except netsetup.NetSetupError as exc:
            raise RuntimeFailure(str(exc)) from None
        return plan

    def adopt(self, uid: str, namespace: str, name: str, node: str, slot: int) -> PodPlan | None:
        """Takes over the namespace an earlier kubelet made for the pod (same slot, same
        address), None when it is gone."""
        plan = pod_plan(self.prefix, self.pod_cidr, namespace, name, node, slot)
        if plan.netns not in netsetup.list_namespaces():
            return None
        self._slots[uid] = plan
        return plan

    def ips_of(self, uid: str) -> tuple[str, ...]:
        plan = self._slots.get(uid)
        return plan.ips if plan else ()

    def slot_of(self, uid: str) -> int | None:
        plan = self._slots.get(uid)
        return plan.slot if plan else None

    def remove(self, uid: str) -> None:
        plan = self._slots.pop(uid, None)
        if plan is not None:
            podnet.detach_pod_network(plan, self.node_netns)

    def remove_leftovers(self) -> list[str]:
        """Deletes pod namespaces with our prefix that no pod of ours holds (a crashed kubelet's)."""
        mine = {p.netns for p in self._slots.values()}
        gone = [n for n in netsetup.list_namespaces() if n.startswith(self.prefix) and n not in mine]
        for name in gone:
            podnet.delete_pod_namespaces(name)
        podnet.delete_kept_uts(self.prefix, keep=mine)  # of namespaces already gone
        return gone


def exit_code(returncode: int) -> int:
    """A process's exit code as a container runtime reports it (128 + signal when killed)."""
    return 128 - returncode if returncode < 0 else returncode


def in_pod(netns: str, argv: Sequence[str]) -> list[str]:
    """The command line that runs `argv` inside the pod's namespaces (containers, exec)."""
    return podnet.enter_pod(netns, argv)


def missing_program(argv: Sequence[str], env: Mapping[str, str], root: str = "/") -> str | None:
    """The runtime's message when argv's program is not on the environment's PATH, else None;
    `root`: the filesystem the program is looked up in (a container's)."""
    program, path = (argv[0] if argv else ""), env.get("PATH")
    if root != "/":
        program = root + program if program.startswith("/") else program
        path = os.pathsep.join(root + d for d in (path or "").split(os.pathsep) if d.startswith("/"))
    if not argv or shutil.which(program, path=path) is None:
        return f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH'
    return None


class ContainerProcess:
    def __init__(self, netns: str, argv: Sequence[str], env: Mapping[str, str], cwd: str | None, log_path: str,
                 wrapper: Sequence[str] = (), launcher: Sequence[str] = ()):
        self.netns, self.argv, self.env, self.cwd, self.log_path = netns, list(argv), dict(env), cwd, log_path
        self.wrapper = list(wrapper)  # run before argv in the namespace (volumes.mount_prefix), then exec'd
        self.launcher = list(launcher)  # run before entering the namespace (cgroups.join_prefix): /sys is ours
        self.proc: subprocess.Popen | None = None
        self.shim: subprocess.Popen | None = None  # writes the output to log_path (kproxy.kubelet.logshim)
        self.adopted: tuple[int, int] | None = None  # (pid, start ticks) of a process an earlier kubelet started
        self.exit_unknown = False  # an adopted process exited: not our child, its exit code is lost
        self.started_mono = 0.0
        self._pidfd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Starts the process; raises RuntimeFailure (bad workingDir, missing program)."""
        if self.cwd and not os.path.isdir(self.cwd):
            raise RuntimeFailure(f"workingDir {self.cwd!r} does not exist")
        missing = missing_program(self.argv, self.env)
        if missing:
            raise RuntimeFailure(missing)
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        # opened here, not by the shim: the file exists from the start, so a restart that keeps
        # it as the previous run's (kproxy.kubelet.logs.keep_previous) never races the shim
        try:
            log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise RuntimeFailure(f"cannot open the log file {self.log_path}: {exc.strerror}") from None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            # the container first (its start is what a pod waits for); its output waits in the
            # pipes, whose read ends we hold until the shim has them
            self.proc = subprocess.Popen([*self.launcher, *in_pod(self.netns, [*self.wrapper, *self.argv])],
                                         env=self.env,
                                         cwd=self.cwd or "/", stdout=out_w, stderr=err_w,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            self.shim = subprocess.Popen([sys.executable, "-I", "-S", LOG_SHIM, str(log_fd), str(out_r), str(err_r)],
                                         pass_fds=(log_fd, out_r, err_r), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        except OSError as exc:
            if self.proc is not None:
                self.signal(signal.SIGKILL)
                self.proc.wait()
                self.proc = None
            raise RuntimeFailure(f"cannot start {self.argv[0]!r}: {exc}") from None
        finally:
            for fd in (log_fd, out_r, out_w, err_r, err_w):
                os.close(fd)
        self.started_mono = time.monotonic()

    @classmethod
    def adopt(cls, netns: str, pid: int, start_ticks: int, log_path: str, wrapped: bool) -> "ContainerProcess":
        """A running process an earlier kubelet started (records.py), taken over as it is."""
        proc = cls(netns, [], {}, None, log_path, wrapper=["(adopted)"] if wrapped else [])
        proc.adopted = (pid, start_ticks)
        proc.started_mono = time.monotonic()
        return proc

    def start_ticks(self) -> int:
        ticks = records.process_start_ticks(self.pid) if self.pid else None
        return ticks or 0

    def _running(self) -> bool:
        if self.adopted is not None:
            return records.alive(*self.adopted)
        return self.proc is not None and self.proc.poll() is None

    def exec_prefix(self) -> list[str]:
        """How to run another command where this process runs (exec probes, preStop): its
        own mount namespace (volumes) and the pod's network namespace."""
        if self.wrapper and self._running():
            return ["nsenter", "--target", str(self.pid), "--mount", "--net", "--uts", "--"]
        return in_pod(self.netns, [])

    @property
    def pid(self) -> int | None:
        if self.adopted is not None:
            return self.adopted[0]
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        """The exit code once it has exited, else None (137 and exit_unknown for an adopted one)."""
        if self.adopted is not None:
            if self._running():
                return None
            self._unwatch()
            self.exit_unknown = True
            return 137
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            return None
        self._unwatch()
        if self.shim is not None:
            self.shim.poll()  # reaped once it has written the last output
        return exit_code(rc)

    def watch_exit(self, callback: Callable[[], None]) -> bool:
        """Calls `callback` on the running loop when the process exits (a pidfd becoming
        readable), so exits are seen at once rather than at the next poll. False when the
        kernel has no pidfd_open: the caller polls."""
        if self.pid is None or not hasattr(os, "pidfd_open"):
            return False
        try:
            fd = os.pidfd_open(self.pid)
        except OSError:
            return False
        loop = asyncio.get_running_loop()
        self._pidfd, self._loop = fd, loop

        def exited() -> None:
            self._unwatch()
            callback()
        loop.add_reader(fd, exited)
        return True

    def _unwatch(self) -> None:
        if self._pidfd is not None and self._loop is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
        self._pidfd = self._loop = None

    def signal(self, sig: int) -> None:
        if self.pid is not None and self._running():
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    async def stop(self, grace: float) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
        if self.pid is None:
            return None
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + max(0.0, grace)
        while self._running() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.signal(signal.SIGKILL)
        while self._running():
            await asyncio.sleep(0.02)
        return self.poll()
