"""Puts the built-in images into a containerd: what a node's runtime calls before it runs pods
(and `kproxy image import NAME`). An image already there with the same digest is left alone,
so calling it on every start costs a cached build and one `ctr images ls`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from kproxy.images import containerd
from kproxy.images.build import CACHE_DIR, build
from kproxy.images.recipes import RECIPES, recipe_for


def ensure_builtin_images(socket: str, namespace: str = containerd.DEFAULT_NAMESPACE,
                          names: Iterable[str] | None = None, cache_dir: Path = CACHE_DIR) -> list[str]:
    """Builds (from the cache) and imports each named built-in image (all by default) that the
    containerd lacks or holds with another digest; returns the references it imported.
    Raises KeyError for an unknown name, PackageError / ContainerdError on failure."""
    recipes = [recipe_for(n) for n in (names if names is not None else sorted(RECIPES))]
    stored = {image.reference: image.digest for image in containerd.list_images(socket, namespace)}
    imported = []
    for recipe in recipes:
        built = build(recipe, cache_dir=cache_dir)
        if stored.get(built.reference) != built.digest:
            containerd.import_archive(built.path, socket, namespace)
            imported.append(built.reference)
    return imported
