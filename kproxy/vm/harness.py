"""Run a command inside a throw-away VM (virtme-ng, software emulation) and get its result back.

Why a VM: this machine's kernel lacks IPVS and dummy interfaces; Debian's linux-image-amd64
has both. virtme-ng boots that kernel over the host's own filesystem (read-only root with a
writable overlay), so the project's .venv works inside unchanged.

Reliability: the guest's console is not a dependable channel (without --verbose vng drops the
guest's output), so the command runs under a small guest-side wrapper that writes its stdout,
stderr, exit status and a boot timestamp into a host directory shared read-write with the VM
(--rwdir). The host reads those files after qemu exits. A result without the status file means
the guest died or timed out: that is a VmError, never a pass. qemu runs in its own process group
and the whole group is killed when `timeout` passes.
"""
from __future__ import annotations

import glob
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass

from kproxy import modes

DEFAULT_TIMEOUT = 900.0
DEFAULT_MEMORY = "4G"  # room for the RAM copy of Python (~0.5 GB) and a lab
DEFAULT_CPUS = 2


class VmError(Exception):
    """The VM could not be started or did not report a result (message says why)."""


@dataclass(frozen=True)
class VmResult:
    returncode: int
    stdout: str
    stderr: str
    boot_seconds: float  # host start -> guest command start
    total_seconds: float  # host start -> qemu exit
    console: str  # vng/qemu output, for diagnosing failures


def find_kernel() -> str:
    """The newest Debian kernel image whose modules are installed (/boot/vmlinuz-V with
    /lib/modules/V). Raises VmError naming the package to install."""
    for image in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        version = image.split("vmlinuz-", 1)[1]
        if os.path.isdir(f"/lib/modules/{version}"):
            return image
    raise VmError("no kernel for the VM: install Debian's linux-image-amd64 (apt-get install linux-image-amd64)")


def find_vng() -> str:
    """vng next to the running interpreter (the project's venv), else on PATH."""
    candidate = os.path.join(os.path.dirname(sys.executable), "vng")
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("vng")
    if not found:
        raise VmError("virtme-ng is not installed: .venv/bin/pip install virtme-ng")
    if not shutil.which("qemu-system-x86_64"):
        raise VmError("qemu is not installed: apt-get install qemu-system-x86")
    return found


# Left out of the RAM copy of the standard library: never imported by kproxy or its tests.
RAM_SKIP = ("test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "site-packages")
RAM_MOUNT = "/run/kproxy-ram"


def python_paths() -> tuple[str, ...]:
    """Where this interpreter's imports come from: the standard library (with lib-dynload) and
    the virtualenv's site-packages."""
    paths = sysconfig.get_paths()
    found = [os.path.realpath(paths[k]) for k in ("stdlib", "purelib", "platlib") if os.path.isdir(paths[k])]
    return tuple(dict.fromkeys(p for p in found if not any(p.startswith(q + "/") for q in found)))


PROJECT_PACKAGES = ("kproxy",) + modes.top_level_packages()  # setup.py maps the modes' folders into kproxy.*


def ram_paths(root: str) -> tuple[str, ...]:
    """What a guest run of the project reads from RAM (see pack_for_ram): the interpreter's
    library, the venv and the project's package directories under `root`."""
    return python_paths() + tuple(os.path.join(root, d) for d in PROJECT_PACKAGES)


def pack_for_ram(paths: tuple[str, ...], tar_path: str) -> None:
    """One tar of `paths` (absolute) for the guest to unpack into RAM. Why: the guest reads the
    host's files over 9p without a cache, one round trip per stat/open, so a Python start costs
    4 s and importing the agent 24 s; one sequential read of a tar and imports from tmpfs
    avoid that. The standard library's RAM_SKIP directories and optimised bytecode stay out."""
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"]).lstrip("/")
    excludes = [f"--exclude={stdlib}/{name}" for name in RAM_SKIP] + ["--exclude=*.opt-1.pyc", "--exclude=*.opt-2.pyc"]
    res = subprocess.run(["tar", "-C", "/", "--anchored", *excludes, "-cf", tar_path,
                          *(p.lstrip("/") for p in paths)], capture_output=True, text=True)
    if res.returncode != 0:
        raise VmError(f"cannot pack {', '.join(paths)} for the guest: {res.stderr.strip()[-500:]}")


def _ram_script(shared: str, paths: tuple[str, ...]) -> str:
    """Guest side of pack_for_ram: unpack into a tmpfs and bind it over each original path
    (same paths, so nothing else changes); on any failure the guest goes on from 9p."""
    binds = " && ".join(f"mount --bind {RAM_MOUNT}{shlex.quote(p)} {shlex.quote(p)}" for p in paths)
    return (f"if mkdir -p {RAM_MOUNT} && mount -t tmpfs -o size=75% tmpfs {RAM_MOUNT} && "
            f"tar -C {RAM_MOUNT} -xf {shared}/ram.tar && {binds}; then rm -f {shared}/ram.tar; "
            f"else echo 'kproxy.vm: RAM copy of {len(paths)} paths failed, reading them over 9p' >&2; fi\n")


def _guest_script(command: str, shared: str, cwd: str, env: dict[str, str], ram: tuple[str, ...] = ()) -> str:
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    return (
        "#!/bin/sh\n"
        + (_ram_script(shared, ram) if ram else "")
        + f"date +%s.%N > {shared}/started\n"
        f"{exports}"
        f"cd {shlex.quote(cwd)} || exit 97\n"
        f"( {command} ) > {shared}/stdout 2> {shared}/stderr\n"
        f"echo $? > {shared}/status.tmp && mv {shared}/status.tmp {shared}/status\n"
        "sync\n"
    )


def run_in_vm(command: str, *, cwd: str | None = None, timeout: float = DEFAULT_TIMEOUT,
              memory: str = DEFAULT_MEMORY, cpus: int = DEFAULT_CPUS, kernel: str | None = None,
              env: dict[str, str] | None = None, rwdirs: tuple[str, ...] = (),
              vng: str | None = None, ram: tuple[str, ...] = ()) -> VmResult:
    """Boots the VM, runs `command` (a shell command line) as root in `cwd` (default: current
    directory) and returns its result. Directories in `rwdirs` are writable from the guest
    (e.g. where the guest leaves reports). Directories in `ram` (absolute) are copied into the
    guest's RAM at boot and read from there (see pack_for_ram; e.g. python_paths()); the
    guest may then write bytecode caches there. `vng` overrides the virtme-ng binary. Raises
    VmError when no result came back (guest crash, timeout: qemu's process group is killed)."""
    kernel = kernel or find_kernel()
    vng = vng or find_vng()
    cwd = os.path.abspath(cwd or os.getcwd())
    system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    guest_env = {"PATH": os.path.dirname(sys.executable) + ":" + system_path,
                 "KPROXY_IN_VM": "1", **(env or {})}
    if not ram:  # nowhere writable to put bytecode caches
        guest_env["PYTHONDONTWRITEBYTECODE"] = "1"
    shared = tempfile.mkdtemp(prefix="kproxy-vm-")
    os.chmod(shared, 0o777)
    try:
        script = os.path.join(shared, "run.sh")
        ram = tuple(os.path.realpath(p) for p in ram)
        if ram:
            pack_for_ram(ram, os.path.join(shared, "ram.tar"))
        with open(script, "w") as f:
            f.write(_guest_script(command, shared, cwd, guest_env, ram))
        os.chmod(script, 0o755)
        argv = [vng, "--run", kernel, "--disable-kvm", "--memory", memory, "--cpus", str(cpus),
                "--rwdir", shared, *(a for d in rwdirs for a in ("--rwdir", d)), "--cwd", "/",
                "--exec", f"sh {script}"]
        host_env = dict(os.environ)
        host_env["PATH"] = os.path.dirname(sys.executable) + ":" + host_env.get("PATH", "")
        started = time.monotonic()
        wall_started = time.time()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=host_env)
        try:
            console, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            console, _ = proc.communicate()
            timed_out = True
        except BaseException:  # interrupted (Ctrl-C, a test timeout): never leave qemu running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        total = time.monotonic() - started
        console_text = console.decode(errors="replace")
        def read(name: str) -> str:
            path = os.path.join(shared, name)
            if not os.path.exists(path):
                return ""
            with open(path, errors="replace") as f:
                return f.read()
        status = read("status").strip()
        if not status:
            why = (f"timed out after {timeout:.0f}s (qemu killed)" if timed_out
                   else f"vng exited {proc.returncode} without a result")
            tail = "\n".join((console_text + read("stdout") + read("stderr")).splitlines()[-30:])
            raise VmError(f"VM {why}; last output:\n{tail}")
        boot = float(read("started").strip() or wall_started) - wall_started
        return VmResult(int(status), read("stdout"), read("stderr"), boot, total, console_text)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m kproxy.vm [--timeout S] -- COMMAND...`: runs COMMAND in the VM."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kproxy.vm")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    words = [w for w in args.command if w != "--"] if args.command[:1] == ["--"] else args.command
    if not words:
        parser.error("give a command to run")
    try:
        result = run_in_vm(shlex.join(words), timeout=args.timeout)
    except VmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    print(f"[vm] boot {result.boot_seconds:.1f}s, total {result.total_seconds:.1f}s, exit {result.returncode}",
          file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
