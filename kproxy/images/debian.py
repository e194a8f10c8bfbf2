"""Reads an image's files from this machine's installed Debian packages (the I/O edge of the
image builder): the packages' files, the shared libraries their programs load, busybox's applet
links. Paths are given as the container sees them: a host directory that is a symlink
(merged /usr: /bin -> usr/bin) is resolved, and the top-level links are kept as links.
"""
from __future__ import annotations

import os
import subprocess
from typing import Iterable

from kproxy.images.layout import Entry

# what a container never needs from a package
SKIPPED_PREFIXES = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/lintian/", "/usr/share/info/")
MERGED_USR_LINKS = ("/bin", "/sbin", "/lib", "/lib64")


class PackageError(RuntimeError):
    """A package the image needs is not installed here."""


def architecture() -> str:
    """This machine's architecture in OCI terms (Debian's names match for amd64, arm64, ...)."""
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


def package_files(package: str) -> list[str]:
    """The paths `dpkg -L` lists for an installed package (directories included)."""
    proc = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PackageError(f"Debian package {package} is not installed (apt-get install {package}): "
                           f"{proc.stderr.strip()}")
    return [p for p in proc.stdout.splitlines() if p.startswith("/") and p != "/."]


def image_path(host_path: str) -> str:
    """Where a host file sits in the image: its directory resolved through symlinks, so
    /lib/x86_64-linux-gnu/libc.so.6 becomes /usr/lib/x86_64-linux-gnu/libc.so.6."""
    parent, name = os.path.split(host_path)
    return os.path.join(os.path.realpath(parent), name)


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def shared_libraries(programs: Iterable[str]) -> set[str]:
    """The libraries (and the dynamic loader) `ldd` resolves for the dynamically linked ELF
    files among `programs`; libraries not installed here are left out."""
    elves = sorted(p for p in programs if os.path.isfile(p) and not os.path.islink(p) and _is_elf(p))
    if not elves:
        return set()
    # one ldd for all: it prints "FILE:" then the file's libraries, indented ("not a dynamic
    # executable" for a static one, like busybox), and exits non-zero if any file was static
    return parse_ldd(subprocess.run(["ldd", *elves], capture_output=True, text=True).stdout)


def parse_ldd(text: str) -> set[str]:
    """The library paths (and the loader) in `ldd` output; unresolved ones ("not found") left out."""
    libs: set[str] = set()
    for line in text.splitlines():
        if not line[:1].isspace():
            continue  # a "FILE:" header
        words = line.split()
        if "=>" in words:
            target = words[words.index("=>") + 1]
            if target.startswith("/"):
                libs.add(target)
        elif words and words[0].startswith("/"):
            libs.add(words[0])  # the loader
    return libs


def host_entries(paths: Iterable[str]) -> list[Entry]:
    """Entries for host paths: files with their content and permission bits, symlinks with
    their target (and the file they lead to), directories; documentation is skipped."""
    entries: dict[str, Entry] = {}
    pending = list(paths)
    while pending:
        path = pending.pop()
        if path.startswith(SKIPPED_PREFIXES) or not os.path.lexists(path):
            continue
        dest = image_path(path)
        if dest in entries:
            continue
        st = os.lstat(path)
        if os.path.islink(path):
            target = os.readlink(path)
            entries[dest] = Entry(dest, 0o777, link=target)
            pending.append(os.path.join(os.path.dirname(path), target))
        elif os.path.isdir(path):
            entries[dest] = Entry(dest, st.st_mode, is_dir=True)
        else:
            with open(path, "rb") as f:
                entries[dest] = Entry(dest, st.st_mode, data=f.read())
    return [entries[p] for p in sorted(entries)]


def merged_usr_links() -> list[Entry]:
    """The top-level links of a merged-/usr system (/bin -> usr/bin, ...), as this host has them."""
    return [Entry(p, 0o777, link=os.readlink(p)) for p in MERGED_USR_LINKS if os.path.islink(p)]


def busybox_applet_links(busybox: str) -> list[Entry]:
    """A link per busybox applet (/bin/sh, /usr/bin/awk, ...) to the busybox binary."""
    proc = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True)
    target = image_path(busybox)
    links = []
    for applet in proc.stdout.split():
        path = image_path("/" + applet)
        if path != target:
            links.append(Entry(path, 0o777, link=target))
    return links


def python_version() -> str:
    """The version of Debian's python3 ("3.11"), from the python3-minimal package."""
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "python3-minimal"],
                          capture_output=True, text=True)
    if proc.returncode != 0 or proc.stdout.count(".") < 1:
        raise PackageError("Debian package python3-minimal is not installed (apt-get install python3-minimal)")
    major, minor = proc.stdout.split(".")[:2]
    return f"{major}.{minor}"
