"""Writes a volume's files so a reader never sees a half-updated set, as kubelet's AtomicWriter:
the files live in a hidden timestamped directory, `..data` is a symlink to it, and each
top-level name is a symlink through `..data`. An update writes a new directory and swaps
`..data` with one rename(2), then removes names that are gone and the old directory.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Iterable

from kproxy.kubelet.volumes import VolumeFile

DATA_LINK = "..data"


def _current(target: str) -> dict[str, tuple[bytes, int]] | None:
    """path -> (content, mode) of what `..data` points at, None when nothing was written."""
    data = os.path.join(target, DATA_LINK)
    if not os.path.islink(data):
        return None
    root = os.path.realpath(data)
    found: dict[str, tuple[bytes, int]] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = (f.read(), os.stat(path).st_mode & 0o777)
    return found


def write_atomic(target: str, files: Iterable[VolumeFile]) -> bool:
    """Makes `target` hold exactly `files`; returns False when it already did (nothing written)."""
    wanted = {f.path: (f.content, f.mode) for f in files}
    os.makedirs(target, exist_ok=True)
    if _current(target) == wanted:
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    new_dir = tempfile.mkdtemp(prefix=stamp, dir=target)
    os.chmod(new_dir, 0o755)
    for path, (content, mode) in wanted.items():
        full = os.path.join(new_dir, path)
        os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
        with open(full, "wb") as f:
            f.write(content)
        os.chmod(full, mode)
    data = os.path.join(target, DATA_LINK)
    old_dir = os.path.realpath(data) if os.path.islink(data) else None
    tmp_link = os.path.join(target, DATA_LINK + "_tmp")
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(os.path.basename(new_dir), tmp_link)
    os.rename(tmp_link, data)
    tops = {path.split("/", 1)[0] for path in wanted}
    for name in tops:
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_LINK, name), link)
    for name in os.listdir(target):
        if not name.startswith("..") and name not in tops and os.path.islink(os.path.join(target, name)):
            os.unlink(os.path.join(target, name))
    if old_dir and old_dir != os.path.realpath(new_dir):
        shutil.rmtree(old_dir, ignore_errors=True)
    return True
