"""Minimal OCI image archives from busybox-static (Debian's), for containerd's k8s.io namespace.

The pod sandbox image (kproxy.local/pause) is one: containerd's CRI plugin never pulls it
because it is imported before the first pod. The built-in images (kproxy.local/echo, base)
come from `kproxy image build`.

Guarantees: `build_archive` is deterministic (same inputs, same bytes: every mtime is 0), the
archive is an OCI image layout (`ctr images import` takes it) with one uncompressed layer.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from typing import Iterable, Sequence

BUSYBOX = "/bin/busybox"
PAUSE_IMAGE = "kproxy.local/pause:1"
# the applets linked in /bin: what sandboxes and tests run
APPLETS = ("sh", "sleep", "httpd", "cat", "echo", "hostname", "ls", "ps", "nc", "wget", "true",
           "false", "env", "id", "kill", "mkdir", "dd", "head", "printf", "test", "tr")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"


class ImageError(RuntimeError):
    """An image archive could not be built or imported."""


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.mode, info.type, info.linkname = 0, 0, 0, mode, kind, link
    info.size = len(data) if data is not None else 0
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def busybox_layer(busybox: str = BUSYBOX, applets: Iterable[str] = APPLETS) -> bytes:
    """A layer tar: /bin/busybox, its applets as symlinks, and the usual empty directories."""
    try:
        with open(busybox, "rb") as f:
            binary = f.read()
    except OSError as exc:
        raise ImageError(f"cannot read {busybox} (Debian package busybox-static): {exc.strerror}") from None
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "var", "www"):
            _add(tar, d, mode=0o1777 if d == "tmp" else 0o755, kind=tarfile.DIRTYPE)
        _add(tar, "bin/busybox", binary, mode=0o755)
        for applet in sorted(set(applets)):
            _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
        _add(tar, "etc/passwd", b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        _add(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return out.getvalue()


def build_archive(path: str, name: str, entrypoint: Sequence[str] = (), cmd: Sequence[str] = (),
                  layer: bytes | None = None) -> str:
    """Writes an OCI image layout tar for image `name` (registry/repo:tag) to `path`; returns
    the manifest digest."""
    layer = busybox_layer() if layer is None else layer
    layer_digest, _ = _blob(layer)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": [PATH_ENV], "Entrypoint": list(entrypoint) or None, "Cmd": list(cmd) or None,
                         "WorkingDir": "/"},
              "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}
    config_digest, config_data = _blob(json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                           "size": len(config_data)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                            "size": len(layer)}]}
    manifest_digest, manifest_data = _blob(json.dumps(manifest, sort_keys=True).encode())
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": len(manifest_data), "annotations": {CONTAINERD_NAME: name, OCI_REF_NAME: tag}}]}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        _add(tar, "blobs", mode=0o755, kind=tarfile.DIRTYPE)
        _add(tar, "blobs/sha256", mode=0o755, kind=tarfile.DIRTYPE)
        for digest, data in ((layer_digest, layer), (config_digest, config_data), (manifest_digest, manifest_data)):
            _add(tar, "blobs/sha256/" + digest.split(":", 1)[1], data)
    return manifest_digest


def import_archive(socket: str, path: str, namespace: str = "k8s.io") -> None:
    """`ctr images import` of `path` into containerd at `socket` (unpacked for its snapshotter)."""
    argv = ["ctr", "--address", socket, "--namespace", namespace, "images", "import", path]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageError(f"ctr images import {os.path.basename(path)}: {exc}") from None
    if proc.returncode != 0:
        raise ImageError(f"ctr images import {os.path.basename(path)}: {proc.stderr.strip() or proc.stdout.strip()}")
