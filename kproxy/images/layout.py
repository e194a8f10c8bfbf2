"""OCI image layout, as pure functions: a layer tar from file entries, the image config,
manifest and index JSON, and the archive that `ctr images import` and `docker load` accept
(oci-layout, index.json, blobs/sha256/...).

Same entries and config in, same bytes out: entries are sorted, every mtime is EPOCH, owners
are root, gzip carries no name or time, JSON is canonical (sorted keys, no spaces).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import Iterable, Mapping

EPOCH = 0  # every mtime in a layer, so a rebuild from the same files has the same digest

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
# containerd keeps an imported image under this annotation's full name; the OCI one is its tag
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Entry:
    """One path in a layer: a regular file (data), a symlink (link) or a directory."""
    path: str                 # absolute, as the container sees it
    mode: int = 0o644         # permission bits
    data: bytes | None = None
    link: str | None = None
    is_dir: bool = False


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass(frozen=True)
class Layer:
    diff_id: str              # the uncompressed tar's digest, as the image config lists it
    gzipped: bytes

    @property
    def blob(self) -> Blob:
        return Blob(MEDIA_LAYER_GZIP, self.gzipped)


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config (what `docker inspect` shows under Config)."""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = "/"
    exposed_ports: tuple[str, ...] = ()   # "8080/tcp"
    labels: Mapping[str, str] = field(default_factory=dict)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """An uncompressed layer: entries sorted by path, each parent directory present (0755), a
    later entry for the same path replacing an earlier one."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        for parent in _parents(entry.path):
            by_path.setdefault(parent, Entry(parent, 0o755, is_dir=True))
        by_path[entry.path] = entry
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(by_path):
            entry = by_path[path]
            info = tarfile.TarInfo(path.lstrip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
            info.mode = entry.mode & 0o7777
            if entry.is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            else:
                data = entry.data or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def gzip_layer(tar: bytes) -> bytes:
    """gzip with no file name and mtime 0, so the compressed digest depends on the tar only."""
    return gzip.compress(tar, compresslevel=6, mtime=0)


def make_layer(entries: Iterable[Entry]) -> Layer:
    tar = layer_tar(entries)
    return Layer(sha256_digest(tar), gzip_layer(tar))


def config_blob(config: ImageConfig, diff_ids: list[str], architecture: str, history: list[str]) -> Blob:
    """The image config JSON: no creation time, so it depends on its inputs only."""
    runtime: dict = {"Env": list(config.env), "WorkingDir": config.working_dir}
    if config.entrypoint:
        runtime["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        runtime["Cmd"] = list(config.cmd)
    if config.exposed_ports:
        runtime["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.labels:
        runtime["Labels"] = dict(config.labels)
    doc = {
        "architecture": architecture, "os": "linux", "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": line} for line in history],
    }
    return Blob(MEDIA_CONFIG, canonical_json(doc))


def manifest_blob(config: Blob, layers: list[Layer]) -> Blob:
    doc = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config.descriptor(),
           "layers": [layer.blob.descriptor() for layer in layers]}
    return Blob(MEDIA_MANIFEST, canonical_json(doc))


def index_json(manifest: Blob, name: str, architecture: str) -> bytes:
    """index.json naming the one manifest: `name` is "registry/repo:tag"."""
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    annotations = {ANNOTATION_CONTAINERD_NAME: name, ANNOTATION_REF_NAME: tag}
    doc = {"schemaVersion": 2, "mediaType": MEDIA_INDEX,
           "manifests": [manifest.descriptor(annotations=annotations,
                                             platform={"architecture": architecture, "os": "linux"})]}
    return canonical_json(doc)


@dataclass(frozen=True)
class Image:
    name: str                 # "kproxy.local/echo:latest"
    architecture: str
    config: Blob
    manifest: Blob
    layers: tuple[Layer, ...]

    @property
    def digest(self) -> str:
        """The manifest digest: what containerd lists as the image's digest."""
        return self.manifest.digest


def make_image(name: str, architecture: str, config: ImageConfig, layers: list[Layer],
               history: list[str]) -> Image:
    cfg = config_blob(config, [layer.diff_id for layer in layers], architecture, history)
    return Image(name, architecture, cfg, manifest_blob(cfg, layers), tuple(layers))


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def docker_manifest_json(image: Image) -> bytes:
    """manifest.json, what `docker load` before Docker 25 reads (as `docker save` writes it
    beside index.json): the config, the tag and the layers, by their paths in the archive."""
    return canonical_json([{"Config": _blob_path(image.config.digest), "RepoTags": [image.name],
                            "Layers": [_blob_path(layer.blob.digest) for layer in image.layers]}])


def archive(image: Image) -> bytes:
    """The OCI image layout as one tar, entries sorted, blobs stored once; with the
    manifest.json of `docker save` so older docker loads it too."""
    blobs = {blob.digest: blob.data for blob in (image.config, image.manifest, *(l.blob for l in image.layers))}
    entries = [Entry("/oci-layout", data=canonical_json({"imageLayoutVersion": "1.0.0"})),
               Entry("/index.json", data=index_json(image.manifest, image.name, image.architecture)),
               Entry("/manifest.json", data=docker_manifest_json(image))]
    entries += [Entry("/" + _blob_path(digest), data=data) for digest, data in blobs.items()]
    return layer_tar(entries)
