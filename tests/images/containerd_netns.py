"""A throwaway containerd for tests: its own root, state, socket and config in a temporary
directory, running in a network namespace the test creates (tests.nsutil), so a container
started with `ctr run --net-host` listens only inside that namespace.

Its shims still put their sockets in the host's /run/containerd/s (containerd 1.6 has no
setting for that); each is removed when its task is deleted.

containerd joins only the network namespace (nsenter --net), not a new mount namespace as
`ip netns exec` would make: runc needs the host's /sys/fs/cgroup. Its container mounts are
therefore visible here, and stop() removes them all: tasks killed and deleted, containers
deleted, containerd stopped, anything still mounted under the directory unmounted.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator

from tests import nsutil

START_DEADLINE = 60.0  # generous: a loaded CI machine


@dataclass
class Containerd:
    netns: str
    directory: str
    process: subprocess.Popen

    @property
    def cgroup_parent(self) -> str:
        """The cgroup (in every hierarchy) the test's containers go under: `ctr run --cgroup`."""
        return "/" + os.path.basename(self.directory)

    @property
    def fifo_dir(self) -> str:
        """For `ctr run/exec --fifo-dir`: ctr's default is the host's /run/containerd/fifo."""
        return os.path.join(self.directory, "fifo")

    @property
    def runc_root(self) -> str:
        """For `ctr run --runc-root`: runc's default state is the host's /run/containerd/runc."""
        return os.path.join(self.directory, "runc")

    @property
    def socket(self) -> str:
        return os.path.join(self.directory, "c.sock")

    def ctr(self, *args: str, namespace: str = "k8s.io", check: bool = True,
            timeout: float = 120.0) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ctr", "--address", self.socket, "--namespace", namespace, *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}\n"
                                 f"containerd log:\n{self.log()[-3000:]}")
        return proc

    def log(self) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self.directory, "containerd.log")) as f:
            return f.read()
        return ""

    def in_netns(self, argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True,
                              timeout=timeout)

    def remove_everything(self) -> None:
        """Kills and deletes every task and container in every containerd namespace."""
        namespaces = self.ctr("namespaces", "ls", "-q", check=False).stdout.split()
        for ns in namespaces:
            for task in self.ctr("tasks", "ls", "-q", namespace=ns, check=False).stdout.split():
                self.ctr("tasks", "kill", "--signal", "SIGKILL", task, namespace=ns, check=False)
                self.ctr("tasks", "delete", "--force", task, namespace=ns, check=False)
            for container in self.ctr("containers", "ls", "-q", namespace=ns, check=False).stdout.split():
                self.ctr("containers", "delete", container, namespace=ns, check=False)


def _config(directory: str) -> str:
    return "\n".join([
        "version = 2",
        f'root = "{directory}/root"',
        f'state = "{directory}/state"',
        # the CRI plugin is the kubelet's business; images and ctr need only the core services
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        "[grpc]",
        f'  address = "{directory}/c.sock"',
        '[plugins."io.containerd.internal.v1.opt"]',
        f'  path = "{directory}/opt"',
        "",
    ])


def _remove_cgroups(parent: str) -> None:
    """Removes the (empty, their tasks gone) cgroups under `parent` in every hierarchy."""
    for hierarchy in os.scandir("/sys/fs/cgroup"):
        top = os.path.join(hierarchy.path, parent.lstrip("/"))
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def _mounts_under(directory: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == directory or p.startswith(directory + "/")]


@contextlib.contextmanager
def containerd_in_netns(name: str) -> Iterator[Containerd]:
    """A running containerd in namespace nsutil.unique_name(name); everything removed on exit."""
    # short path: the socket (and its ".ttrpc" twin) must fit a unix socket address
    directory = tempfile.mkdtemp(prefix=f"{nsutil.unique_name('ctrd')}-", dir="/tmp")
    try:
        with nsutil.netns(name) as ns:
            with open(os.path.join(directory, "config.toml"), "w") as f:
                f.write(_config(directory))
            log = open(os.path.join(directory, "containerd.log"), "wb")
            process = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "containerd", "--config",
                                        os.path.join(directory, "config.toml")],
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            daemon = Containerd(ns, directory, process)
            try:
                deadline = time.monotonic() + START_DEADLINE
                while daemon.ctr("version", check=False).returncode != 0:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"containerd did not start:\n{daemon.log()[-3000:]}")
                    time.sleep(0.2)
                yield daemon
            finally:
                if process.poll() is None:
                    daemon.remove_everything()
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
    finally:
        _remove_cgroups("/" + os.path.basename(directory))
        for point in reversed(_mounts_under(directory)):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
