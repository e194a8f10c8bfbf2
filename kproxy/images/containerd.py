"""Imports image archives into a containerd and lists what it holds, through `ctr` (Debian's
containerd package). The kubelet's CRI images live in the k8s.io namespace.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_NAMESPACE = "k8s.io"
DEFAULT_SOCKET = "/run/containerd/containerd.sock"
CTR_TIMEOUT = 300.0


class ContainerdError(RuntimeError):
    """ctr failed (containerd not answering, a bad archive): the message has ctr's own words."""


@dataclass(frozen=True)
class StoredImage:
    reference: str
    digest: str
    size: str


def _ctr(socket: str, namespace: str, *args: str) -> str:
    ctr = shutil.which("ctr")
    if ctr is None:
        raise ContainerdError("ctr not found: install Debian's containerd package")
    if not os.path.exists(socket):  # ctr itself would wait 10 s for it
        raise ContainerdError(f"no containerd socket at {socket}: is containerd running there?")
    try:
        proc = subprocess.run([ctr, "--address", socket, "--namespace", namespace, *args],
                              capture_output=True, text=True, timeout=CTR_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ContainerdError(f"ctr {args[0]} {args[1]}: no answer from containerd at {socket} "
                              f"in {CTR_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise ContainerdError(f"ctr {' '.join(args[:2])} (containerd at {socket}): "
                              f"{detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc.stdout


def import_archive(archive: Path, socket: str = DEFAULT_SOCKET, namespace: str = DEFAULT_NAMESPACE) -> None:
    """Imports and unpacks the archive; the image keeps the name its index annotates."""
    _ctr(socket, namespace, "images", "import", str(archive))


def parse_image_list(text: str) -> list[StoredImage]:
    """`ctr images ls` output: REF TYPE DIGEST SIZE(two words) PLATFORMS LABELS."""
    images = []
    for line in text.splitlines()[1:]:
        words = line.split()
        if len(words) >= 5:
            images.append(StoredImage(words[0], words[2], " ".join(words[3:5])))
    return images


def list_images(socket: str = DEFAULT_SOCKET, namespace: str = DEFAULT_NAMESPACE) -> list[StoredImage]:
    return parse_image_list(_ctr(socket, namespace, "images", "ls"))
