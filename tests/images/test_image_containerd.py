"""The built-in images imported into a real containerd (started by the test, in a network
namespace the test creates) through `kproxy image import`, and run with `ctr run`: base runs
python3, the echo server answers on its port inside that namespace, pause stops on SIGTERM."""
from __future__ import annotations

import shutil
import time

import pytest

from kproxy.cli.main import main as kproxy_main
from kproxy.images.build import build
from kproxy.images.provision import ensure_builtin_images
from kproxy.images.recipes import ECHO_SCRIPT, RECIPES
from tests.images.containerd_netns import containerd_in_netns

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("containerd") and shutil.which("runc")),
                                 reason="needs Debian's containerd and runc (scripts/install-deps.sh)")]

DEADLINE = 60.0  # generous, for a loaded CI machine; the conditions below are what the test waits for


@pytest.fixture(scope="module")
def image_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("image-cache")


@pytest.fixture(scope="module")
def daemon(image_cache):
    with containerd_in_netns("images") as ctrd:
        for recipe in RECIPES.values():
            path = build(recipe, cache_dir=image_cache).path
            assert kproxy_main(["image", "import", str(path), "--containerd-socket", ctrd.socket]) == 0
        yield ctrd


def _run(daemon, image: str, container_id: str, *args: str, detach: bool = False):
    flags = ["--net-host", "--cgroup", f"{daemon.cgroup_parent}/{container_id}",
             "--fifo-dir", daemon.fifo_dir, "--runc-root", daemon.runc_root]
    if detach:
        flags.append("--detach")
    else:
        flags.append("--rm")
    return daemon.ctr("run", *flags, f"{image}:latest", container_id, *args, check=False)


def _task_status(daemon, container_id: str) -> str:
    for line in daemon.ctr("tasks", "ls").stdout.splitlines()[1:]:
        words = line.split()
        if words and words[0] == container_id:
            return words[-1]
    return ""


def test_list_shows_the_imported_images_by_name_and_digest(daemon, capsys):
    assert kproxy_main(["image", "list", "--containerd-socket", daemon.socket]) == 0
    listed = {line.split("\t")[0]: line.split("\t")[1] for line in capsys.readouterr().out.splitlines()}
    assert set(listed) == {f"{name}:latest" for name in RECIPES}
    stored = {line.split()[0]: line.split()[2] for line in daemon.ctr("images", "ls").stdout.splitlines()[1:]}
    assert listed == stored


def test_base_runs_python_and_the_busybox_shell(daemon):
    proc = _run(daemon, "kproxy.local/base", "base-python", "python3", "-c",
                "import asyncio, json, socket, sys; print(json.dumps([6 * 7, sys.version_info[0]]))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[42, 3]"
    # the container sees its image's files, not the host's (ctr is on the host: the test needs it)
    proc = _run(daemon, "kproxy.local/base", "base-shell", "/bin/sh", "-c", "ls -d /usr/lib/python3*; ls /usr/bin/ctr")
    assert proc.returncode != 0 and "/usr/lib/python3" in proc.stdout
    assert "/usr/bin/ctr: No such file or directory" in proc.stderr


def test_echo_answers_on_its_port_inside_the_namespace(daemon):
    # ctr's arguments replace the image's entrypoint and cmd, as a pod's command would
    proc = _run(daemon, "kproxy.local/echo", "echo", ECHO_SCRIPT, "--name", "echo-pod", detach=True)
    assert proc.returncode == 0, proc.stderr
    client = ("import socket,sys\n"
              "s=socket.create_connection(('127.0.0.1',8080),5)\n"
              "s.sendall(b'hello\\n'); sys.stdout.write(s.recv(200).decode())\n")
    deadline = time.monotonic() + DEADLINE
    while True:
        answer = daemon.in_netns(["python3", "-c", client])
        if answer.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("echo-pod 127.0.0.1:")
    # UDP on the same port
    udp = daemon.in_netns(["python3", "-c", "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                           "s.settimeout(10);s.sendto(b'x',('127.0.0.1',8080));print(s.recv(200).decode())"])
    assert udp.stdout.startswith("echo-pod 127.0.0.1:"), udp.stderr
    # SIGTERM stops it (exit code 0, as the process runtime's echo)
    daemon.ctr("tasks", "kill", "echo")
    deadline = time.monotonic() + DEADLINE
    while _task_status(daemon, "echo") != "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _task_status(daemon, "echo") == "STOPPED"


def test_pause_waits_until_sigterm(daemon):
    proc = _run(daemon, "kproxy.local/pause", "pause", detach=True)
    assert proc.returncode == 0, proc.stderr
    assert _task_status(daemon, "pause") == "RUNNING"
    daemon.ctr("tasks", "kill", "--signal", "SIGTERM", "pause")
    deadline = time.monotonic() + DEADLINE
    while _task_status(daemon, "pause") != "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _task_status(daemon, "pause") == "STOPPED"


def test_import_by_name_skips_an_image_already_there_and_restores_a_removed_one(daemon, image_cache, capsys):
    argv = ["image", "import", "kproxy.local/pause", "--containerd-socket", daemon.socket,
            "--cache-dir", str(image_cache)]
    assert kproxy_main(argv) == 0
    assert "already in" in capsys.readouterr().out
    daemon.ctr("images", "rm", "kproxy.local/pause:latest")
    assert ensure_builtin_images(daemon.socket, names=["kproxy.local/pause"], cache_dir=image_cache) == \
        ["kproxy.local/pause:latest"]
    assert "kproxy.local/pause:latest" in daemon.ctr("images", "ls", "-q").stdout.split()
    assert ensure_builtin_images(daemon.socket, cache_dir=image_cache) == []


def test_a_file_that_is_no_image_archive_is_a_clear_error(daemon, tmp_path, capsys):
    bogus = tmp_path / "not-an-image.tar"
    bogus.write_bytes(b"this is not a tar archive\n" * 100)
    before = daemon.ctr("images", "ls", "-q").stdout.split()
    assert kproxy_main(["image", "import", str(bogus), "--containerd-socket", daemon.socket]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kproxy image: ctr images import") and err.count("\n") == 1
    assert daemon.ctr("images", "ls", "-q").stdout.split() == before


def test_pause_reaps_orphans_in_a_shared_pid_namespace(daemon):
    proc = _run(daemon, "kproxy.local/pause", "pause-reaper", detach=True)
    assert proc.returncode == 0, proc.stderr
    # the exec'd shell exits at once, so its background usleep is re-parented to the pause
    # process; once it exits, only the pause process's wait can remove it (else it stays a zombie)
    daemon.ctr("tasks", "exec", "--fifo-dir", daemon.fifo_dir, "--exec-id", "orphan", "pause-reaper", "/bin/sh", "-c", "usleep 300000 & exit 0")
    states = ""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        ps = daemon.ctr("tasks", "exec", "--fifo-dir", daemon.fifo_dir, "--exec-id", f"ps{int(time.monotonic() * 1000)}", "pause-reaper",
                        "/bin/sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null")
        states = ps.stdout
        if "(usleep)" not in states:
            break
        time.sleep(0.5)
    assert "(usleep)" not in states, f"the orphan was not reaped:\n{states}"
