"""One containerd per node: its own root, state, socket, CNI directories and config, started
in the node's network namespace (only the network namespace: mounts it makes, container root
filesystems and pod network namespaces, live in the machine's mount namespace, so a restarted
containerd finds them again).

Guarantees:
- `render_config` is pure: the same layout gives the same config.toml;
- `start()` returns once the CRI answers, with the pause image (kproxy.images) imported, so
  the CRI plugin never tries a registry for it; it raises ContainerdError with the daemon's
  last log lines otherwise;
- `stop()` ends the daemon only: the shims keep the containers running (what a restart of
  containerd under running pods means); `remove()` removes every sandbox it holds, ends its
  shims, unmounts what is left under its directory and deletes the directory.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from kproxy.containerd import cni
from kproxy.containerd.cri import CriClient, CriError
from kproxy.images import containerd as image_store
from kproxy.images.build import build
from kproxy.images.recipes import PAUSE, ImageRecipe, recipe_for

PAUSE_IMAGE = PAUSE.reference  # containerd's sandbox_image
DISABLED_PLUGINS = ("io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing")


class ContainerdError(RuntimeError):
    """containerd could not be started or did not answer."""


@dataclass(frozen=True)
class Layout:
    """Where one node's containerd keeps everything, all under `base`."""

    base: str

    @property
    def root(self) -> str:
        return os.path.join(self.base, "root")

    @property
    def state(self) -> str:
        return os.path.join(self.base, "state")

    @property
    def socket(self) -> str:
        return os.path.join(self.base, "containerd.sock")

    @property
    def config(self) -> str:
        return os.path.join(self.base, "config.toml")

    @property
    def log(self) -> str:
        return os.path.join(self.base, "containerd.log")

    @property
    def cni_conf_dir(self) -> str:
        return os.path.join(self.base, "cni", "net.d")

    @property
    def cni_ipam_dir(self) -> str:
        return os.path.join(self.base, "cni", "ipam")


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(layout: Layout, cni_bin_dir: str = "/usr/lib/cni",
                  sandbox_image: str = PAUSE_IMAGE) -> str:
    """containerd's config.toml (version 2) for `layout`: CRI plugin with its own CNI
    directories, overlayfs, runc through the v2 shim with cgroupfs, streaming on loopback."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "version = 2",
        f"root = {_q(layout.root)}",
        f"state = {_q(layout.state)}",
        "disabled_plugins = [" + ", ".join(_q(p) for p in DISABLED_PLUGINS) + "]",
        "",
        "[grpc]",
        f"  address = {_q(layout.socket)}",
        "[ttrpc]",
        f"  address = {_q(layout.socket + '.ttrpc')}",
        "",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_q(os.path.join(layout.root, 'opt'))}",
        f"[{cri}]",
        f"  sandbox_image = {_q(sandbox_image)}",
        "  netns_mounts_under_state_dir = true",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  disable_apparmor = true",
        "  enable_selinux = false",
        # a sandbox asks for oom_score_adj -998, which a process without CAP_SYS_RESOURCE (a
        # machine that is itself a container) may not set: runc then fails to start anything
        "  restrict_oom_score_adj = true",
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f"  Root = {_q(os.path.join(layout.state, 'runc'))}",
        f"[{cri}.cni]",
        f"  bin_dir = {_q(cni_bin_dir)}",
        f"  conf_dir = {_q(layout.cni_conf_dir)}",
        "  max_conf_num = 1",
        "",
    ]
    return "\n".join(lines)


class Containerd:
    """A containerd daemon for one node. `netns`: the node's network namespace name (None: ours)."""

    def __init__(self, base: str, netns: str | None = None, pod_cidr: str | None = None):
        self.layout = Layout(base)
        self.netns, self.pod_cidr = netns, pod_cidr
        self.proc: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        return self.layout.socket

    def argv(self) -> list[str]:
        command = ["containerd", "--config", self.layout.config]
        if self.netns is None:
            return command
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *command]

    def start(self, timeout: float = 60.0) -> None:
        layout = self.layout
        for d in (layout.base, layout.root, layout.state, layout.cni_conf_dir, layout.cni_ipam_dir):
            os.makedirs(d, exist_ok=True)
        with open(layout.config, "w") as f:
            f.write(render_config(layout))
        if self.pod_cidr:
            cni.write_conflist(layout.cni_conf_dir, self.pod_cidr, layout.cni_ipam_dir)
        with open(layout.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        client = CriClient(layout.socket)
        try:
            deadline = time.monotonic() + timeout
            while not os.path.exists(layout.socket):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise ContainerdError(f"containerd did not start: {self.log_tail()}")
                time.sleep(0.05)
            try:
                client.wait_ready(deadline)
            except CriError as exc:
                raise ContainerdError(f"containerd's CRI does not answer ({exc}): {self.log_tail()}") from None
            if client.image_status(PAUSE_IMAGE) is None:
                self.import_image(PAUSE)
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()

    def import_image(self, recipe: ImageRecipe | str) -> None:
        """Builds an image (kproxy.images: a built-in's name, or a recipe) and imports it."""
        built = build(recipe_for(recipe) if isinstance(recipe, str) else recipe)
        try:
            image_store.import_archive(built.path, self.socket)
        except image_store.ContainerdError as exc:
            raise ContainerdError(str(exc)) from None

    def log_tail(self, lines: int = 8) -> str:
        try:
            with open(self.layout.log, errors="replace") as f:
                return " | ".join(f.read().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """Ends the daemon (SIGTERM, SIGKILL after `grace`); containers keep running in their shims."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for leftover in (self.layout.socket, self.layout.socket + ".ttrpc"):
            if os.path.exists(leftover):
                os.unlink(leftover)

    def remove_sandboxes(self) -> None:
        """Stops and removes every pod sandbox (and so every container) the daemon holds."""
        client = CriClient(self.layout.socket)
        try:
            for sandbox in client.list_pod_sandboxes():
                try:
                    client.stop_pod_sandbox(sandbox.id)
                    client.remove_pod_sandbox(sandbox.id)
                except CriError:
                    pass
        finally:
            client.close()

    def remove(self) -> None:
        """Everything gone: sandboxes, the daemon, its shims, its mounts and its directory."""
        if self.running():
            try:
                self.remove_sandboxes()
            except CriError:
                pass
        self.stop()
        containers = container_ids(self.layout)
        shims = shim_pids(self.layout.socket)
        # a container's init is a child of one of the shim's threads and pid 1 of its own pid
        # namespace: killing it ends the container, killing only the shim would leave it running;
        # the containers' cgroups also name what runs in them
        inits = {pid for shim in shims for pid in children(shim)} | set(cgroup_pids(containers))
        kill_and_wait(sorted(inits) + shims)
        remove_cgroups(containers)
        unmount_under(self.layout.base)
        shutil.rmtree(self.layout.base, ignore_errors=True)


def container_ids(layout: Layout) -> list[str]:
    """The containers runc holds for this containerd (its runc root, namespace k8s.io)."""
    try:
        return os.listdir(os.path.join(layout.state, "runc", "k8s.io"))
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """The children of every thread of `pid` (a Go program forks from any of its threads)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return found


def _cgroup_dirs(container_id: str) -> list[str]:
    return glob.glob(f"/sys/fs/cgroup/*/k8s.io/{container_id}") + glob.glob(f"/sys/fs/cgroup/k8s.io/{container_id}")


def cgroup_pids(container_ids: list[str]) -> list[int]:
    """The processes in these containers' cgroups (runc's cgroupfs layout: /k8s.io/<id>)."""
    pids: set[int] = set()
    for cid in container_ids:
        for path in _cgroup_dirs(cid):
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError:
                continue
    return sorted(pids)


def kill_and_wait(pids: list[int], timeout: float = 10.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def remove_cgroups(container_ids: list[str]) -> None:
    """Removes the cgroups runc made for these containers (cgroupfs: /k8s.io/<id> in every
    hierarchy), then the k8s.io parent when no other containerd uses it."""
    for cid in container_ids:
        for path in _cgroup_dirs(cid):
            try:
                os.rmdir(path)
            except OSError:
                pass
    for parent in glob.glob("/sys/fs/cgroup/*/k8s.io") + glob.glob("/sys/fs/cgroup/k8s.io"):
        try:
            os.rmdir(parent)
        except OSError:
            pass  # another containerd's containers are in it


def shim_pids(socket: str) -> list[int]:
    """The containerd-shim processes serving the containerd at `socket` (their -address)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith(b"containerd-shim") and socket.encode() in argv:
            pids.append(int(entry))
    return pids


def unmount_under(base: str) -> None:
    """Lazily unmounts every mount point at or below `base`, deepest first."""
    prefix = os.path.realpath(base).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted({p for p in points if (p + "/").startswith(prefix)}, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
