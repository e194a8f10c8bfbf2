"""The built-in images, as data: each is a list of layers (Debian packages, their libraries,
files from kproxy itself) and a runtime config. Images share their lower layers, so importing
echo after base stores only the echo layer.

- kproxy.local/pause: busybox's shell waiting for a signal: containerd's sandbox_image.
- kproxy.local/base: busybox (a shell and the usual tools) and Python 3 with its standard library.
- kproxy.local/echo: base + the lab's echo server (kproxy/lab/echo.py, its one home) as a script.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kproxy.images.layout import Entry, ImageConfig

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ECHO_SCRIPT = "/usr/local/bin/kproxy-echo"
ECHO_PORT = 8080

# A pause process: sleeps until SIGTERM/SIGINT, then exits 0 (a shell as PID 1 has no default
# action for them, hence the trap).
PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 2147483647 & wait $!; done"


# the minimal /etc and the mount points a root file system has
SKELETON: tuple[Entry, ...] = (
    Entry("/etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
                              b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
    Entry("/etc/group", data=b"root:x:0:\nnogroup:x:65534:\n"),
    Entry("/tmp", 0o1777, is_dir=True),
    Entry("/root", 0o700, is_dir=True),
    Entry("/var/tmp", 0o1777, is_dir=True),
    *(Entry(p, 0o755, is_dir=True) for p in ("/dev", "/proc", "/sys", "/run")),
)


@dataclass(frozen=True)
class LayerRecipe:
    """One layer: the files of `packages` (and the shared libraries their programs load),
    busybox's applet links when `busybox_applets`, the merged-/usr top-level links when
    `merged_usr`, `skeleton` (a minimal /etc, /tmp, ...), kproxy's own files:
    image path -> (kproxy module whose source it is, mode), and with `python_bytecode` the
    standard library's .pyc files."""
    name: str
    packages: tuple[str, ...] = ()
    busybox_applets: bool = False
    merged_usr: bool = False
    skeleton: bool = False
    kproxy_files: tuple[tuple[str, str, int], ...] = ()
    python_bytecode: bool = False


@dataclass(frozen=True)
class ImageRecipe:
    name: str                 # without tag; built as name + ":latest"
    layers: tuple[LayerRecipe, ...]
    config: ImageConfig = field(default_factory=ImageConfig)

    @property
    def reference(self) -> str:
        return self.name + ":latest"


BUSYBOX_LAYER = LayerRecipe("busybox", packages=("busybox-static",), busybox_applets=True,
                            merged_usr=True, skeleton=True)
# "{python}" is the Debian python3's version ("3.11" on Debian 12), read when the image is built
PYTHON_LAYER = LayerRecipe("python3", packages=("python3-minimal", "python{python}-minimal",
                                                "libpython{python}-minimal", "libpython{python}-stdlib"),
                           python_bytecode=True)
ECHO_LAYER = LayerRecipe("echo", kproxy_files=((ECHO_SCRIPT, "kproxy.lab.echo", 0o755),))

PAUSE = ImageRecipe("kproxy.local/pause", (BUSYBOX_LAYER,),
                    ImageConfig(entrypoint=("/bin/sh", "-c", PAUSE_SCRIPT), env=(PATH_ENV,)))
BASE = ImageRecipe("kproxy.local/base", (BUSYBOX_LAYER, PYTHON_LAYER),
                   ImageConfig(cmd=("/bin/sh",), env=(PATH_ENV,)))
ECHO = ImageRecipe("kproxy.local/echo", (BUSYBOX_LAYER, PYTHON_LAYER, ECHO_LAYER),
                   ImageConfig(entrypoint=(ECHO_SCRIPT,), env=(PATH_ENV, f"PORT={ECHO_PORT}"),
                               exposed_ports=(f"{ECHO_PORT}/tcp", f"{ECHO_PORT}/udp")))

RECIPES: dict[str, ImageRecipe] = {r.name: r for r in (PAUSE, BASE, ECHO)}


def recipe_for(name: str) -> ImageRecipe:
    """The recipe for "kproxy.local/echo" (a ":latest" tag is accepted); KeyError names the choices."""
    bare = name[: -len(":latest")] if name.endswith(":latest") else name
    if bare not in RECIPES:
        raise KeyError(f'no built-in image "{name}": choose one of {", ".join(sorted(RECIPES))}')
    return RECIPES[bare]
