"""The VM harness's plumbing (result files, exit status, timeout kill) with a stand-in for vng
that runs the guest command on the host: a unit test of the harness logic, no VM booted (the
real boot is exercised by tests/vm/test_vm.py)."""
from __future__ import annotations

import os
import stat
import time

import pytest

from kproxy.vm import harness
from kproxy.vm.harness import VmError, run_in_vm


def fake_vng(tmp_path, body: str) -> str:
    """A vng stand-in: `body` runs with $EXEC set to the --exec argument."""
    path = tmp_path / "vng"
    path.write_text("#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --exec ] && EXEC=\"$2\"; shift; done\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_output_and_exit_status_come_back(tmp_path):
    vng = fake_vng(tmp_path, 'echo "console noise"; eval "$EXEC"\n')
    result = run_in_vm("echo out; echo err >&2; pwd; exit 7", cwd=str(tmp_path), kernel="/vmlinuz-test", vng=vng)
    assert result.returncode == 7
    assert result.stdout == f"out\n{tmp_path}\n"
    assert result.stderr == "err\n"
    assert "console noise" in result.console
    assert result.boot_seconds >= 0 and result.total_seconds >= result.boot_seconds


def test_guest_environment_marks_the_vm(tmp_path):
    vng = fake_vng(tmp_path, 'eval "$EXEC"\n')
    result = run_in_vm('echo "$KPROXY_IN_VM $EXTRA"', kernel="/k", vng=vng, env={"EXTRA": "x y"})
    assert result.stdout == "1 x y\n"


def test_no_result_is_an_error_with_the_console_tail(tmp_path):
    vng = fake_vng(tmp_path, 'echo "Kernel panic - not syncing"; exit 0\n')
    with pytest.raises(VmError, match="without a result(.|\n)*Kernel panic"):
        run_in_vm("true", kernel="/k", vng=vng)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_vm_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    vng = fake_vng(tmp_path, f'sleep 300 & echo $! > {pidfile}; wait\n')
    with pytest.raises(VmError, match="timed out after 1s"):
        run_in_vm("true", kernel="/k", vng=vng, timeout=1)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the VM's child process survived the timeout"


def test_missing_kernel_names_the_package(monkeypatch):
    monkeypatch.setattr(harness.glob, "glob", lambda pattern: [])
    with pytest.raises(VmError, match="linux-image-amd64"):
        harness.find_kernel()


def test_shared_directory_is_removed(tmp_path, monkeypatch):
    made = []
    real = harness.tempfile.mkdtemp
    monkeypatch.setattr(harness.tempfile, "mkdtemp", lambda **kw: made.append(real(**kw)) or made[-1])
    run_in_vm("true", kernel="/k", vng=fake_vng(tmp_path, 'eval "$EXEC"\n'))
    assert made and not os.path.exists(made[0])


def test_ram_copy_packs_the_paths_and_the_guest_script_binds_them(tmp_path, monkeypatch):
    """pack_for_ram leaves the standard library's skipped directories and optimised bytecode
    out; the guest script unpacks into a tmpfs and binds each path over itself (checked as
    text: running it would mount over the host's own directories)."""
    import subprocess
    import sysconfig

    lib = tmp_path / "lib" / "python3"
    for rel in ("os.py", "__pycache__/os.cpython-311.pyc", "__pycache__/os.cpython-311.opt-1.pyc",
                "test/test_os.py", "json/__init__.py"):
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_text("x")
    venv = tmp_path / "venv"
    (venv / "test").mkdir(parents=True)
    (venv / "test" / "keep.py").write_text("x")  # "test" is skipped in the stdlib only
    real_paths = sysconfig.get_paths()
    monkeypatch.setattr(harness.sysconfig, "get_paths", lambda: {**real_paths, "stdlib": str(lib)})
    tar = tmp_path / "ram.tar"
    harness.pack_for_ram((str(lib), str(venv)), str(tar))
    names = set(subprocess.run(["tar", "-tf", str(tar)], capture_output=True, text=True, check=True).stdout.split())
    strip = lambda p: str(p).lstrip("/")  # noqa: E731
    assert f"{strip(lib)}/__pycache__/os.cpython-311.pyc" in names and f"{strip(lib)}/json/__init__.py" in names
    assert f"{strip(venv)}/test/keep.py" in names
    assert not any("opt-1" in n or n.startswith(f"{strip(lib)}/test") for n in names)
    script = harness._guest_script("true", "/shared", "/", {}, (str(lib), str(venv)))
    assert f"tar -C {harness.RAM_MOUNT} -xf /shared/ram.tar" in script
    assert f"mount --bind {harness.RAM_MOUNT}{lib} {lib}" in script and f"mount --bind {harness.RAM_MOUNT}{venv} {venv}" in script
    assert script.index("mount --bind") < script.index("( true )")
    assert "mount" not in harness._guest_script("true", "/shared", "/", {})


def test_ram_paths_hold_the_interpreter_and_every_project_package():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = harness.ram_paths(root)
    assert all(os.path.isdir(p) for p in paths), paths
    for package in harness.PROJECT_PACKAGES:
        assert os.path.isfile(os.path.join(root, package, "__init__.py")), package
        assert os.path.join(root, package) in paths
    assert os.path.realpath(os.__file__).startswith(paths[0] + "/")  # the stdlib comes first
