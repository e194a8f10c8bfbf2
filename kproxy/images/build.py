"""Builds a built-in image's OCI archive from its recipe, with a cache.

A layer's files are read from this machine (debian.py); the digest of their tar is the
layer's cache key (CACHE_DIR/layers/<key>.gz and .diff_id), so what is derived from them
(bytecode, gzip) is made once. The archive is cached under CACHE_DIR/archives/<key>.tar, keyed
by the image's name and manifest digest. A rebuild from unchanged packages reads the files and
compiles and compresses nothing.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kproxy.images import bytecode, debian
from kproxy.images.layout import Entry, Image, Layer, archive, canonical_json, layer_tar, make_image, make_layer
from kproxy.images.recipes import SKELETON, ImageRecipe, LayerRecipe

CACHE_DIR = Path("/var/cache/kproxy/images")
FORMAT_VERSION = 3  # bump when the builder's output changes for the same inputs
SHEBANG = b"#!/usr/bin/python3\n"


@dataclass(frozen=True)
class Built:
    reference: str            # "kproxy.local/echo:latest"
    path: Path                # the archive
    digest: str               # the manifest digest containerd reports
    cached: bool              # the archive came from the cache


def kproxy_file(module: str) -> bytes:
    """A kproxy module's source as a standalone script (it must import only the standard
    library: the image has no kproxy package)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise FileNotFoundError(f"kproxy module {module} not found")
    source = Path(spec.origin).read_bytes()
    return source if source.startswith(b"#!") else SHEBANG + source


def layer_entries(recipe: LayerRecipe, python: str) -> list[Entry]:
    """Every entry of a layer, read from this machine."""
    paths: list[str] = []
    for package in recipe.packages:
        paths += debian.package_files(package.format(python=python))
    paths += sorted(debian.shared_libraries(paths))
    entries = debian.host_entries(paths)
    if recipe.merged_usr:
        entries += debian.merged_usr_links()
    if recipe.busybox_applets:
        have = {e.path for e in entries}
        entries += [link for link in debian.busybox_applet_links(shutil.which("busybox") or "/bin/busybox")
                    if link.path not in have]
    if recipe.skeleton:
        entries += SKELETON
    entries += [Entry(path, mode, data=kproxy_file(module)) for path, module, mode in recipe.kproxy_files]
    return entries


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def cached_layer(recipe: LayerRecipe, python: str, cache_dir: Path) -> Layer:
    """The layer from the cache when its inputs (the files read from this machine) are
    unchanged; else built (bytecode compiled, tar gzipped) and cached."""
    inputs = layer_entries(recipe, python)
    key = hashlib.sha256(canonical_json({"format": FORMAT_VERSION, "bytecode": recipe.python_bytecode})
                         + hashlib.sha256(layer_tar(inputs)).digest()).hexdigest()
    gz_path, diff_id_path = cache_dir / "layers" / f"{key}.gz", cache_dir / "layers" / f"{key}.diff_id"
    if gz_path.exists() and diff_id_path.exists():
        return Layer(diff_id_path.read_text().strip(), gz_path.read_bytes())
    derived = bytecode.stdlib_bytecode(inputs, python) if recipe.python_bytecode else []
    layer = make_layer(inputs + derived)
    _write_atomic(diff_id_path, layer.diff_id.encode())
    _write_atomic(gz_path, layer.gzipped)
    return layer


def build_image(recipe: ImageRecipe, cache_dir: Path = CACHE_DIR) -> Image:
    """The image in memory (layers from the cache where it has them)."""
    python = debian.python_version()
    layers = [cached_layer(lr, python, cache_dir) for lr in recipe.layers]
    history = [f"kproxy image build: layer {lr.name}" for lr in recipe.layers]
    return make_image(recipe.reference, debian.architecture(), recipe.config, layers, history)


def archive_key(image: Image) -> str:
    """The archive's cache key: what its bytes depend on."""
    return hashlib.sha256(canonical_json({"format": FORMAT_VERSION, "name": image.name,
                                          "manifest": image.digest})).hexdigest()


def build(recipe: ImageRecipe, out: Path | None = None, cache_dir: Path = CACHE_DIR) -> Built:
    """Builds the image's archive into the cache (and copies it to `out` when given)."""
    image = build_image(recipe, cache_dir)
    path = cache_dir / "archives" / f"{archive_key(image)}.tar"
    cached = path.exists()
    if not cached:
        _write_atomic(path, archive(image))
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
        path = out
    return Built(recipe.reference, path, image.digest, cached)
