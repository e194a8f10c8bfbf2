"""`kproxy image`: the built-in images as OCI archives, and their import into containerd.

    kproxy image build NAME [--out F] [--cache-dir DIR]
    kproxy image import F|NAME [--containerd-socket S] [--namespace k8s.io]
    kproxy image list [--containerd-socket S [--namespace k8s.io]]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from kproxy.cli.main import CLIError
from kproxy.images import containerd
from kproxy.images.build import CACHE_DIR, build
from kproxy.images.debian import PackageError
from kproxy.images.provision import ensure_builtin_images
from kproxy.images.recipes import RECIPES, recipe_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="image_command", metavar="ACTION")
    names = ", ".join(sorted(RECIPES))
    b = sub.add_parser("build", help="build a built-in image as an OCI archive (cached)")
    b.add_argument("name", metavar="NAME", help=f"one of {names}")
    b.add_argument("--out", help="write the archive here (default: print the cached archive's path)")
    b.add_argument("--cache-dir", default=str(CACHE_DIR), help=f"build cache (default {CACHE_DIR})")
    i = sub.add_parser("import", help="import an archive, or a built-in image (built first), into containerd")
    i.add_argument("source", metavar="F|NAME", help=f"an OCI/docker archive file, or one of {names}")
    i.add_argument("--containerd-socket", default=containerd.DEFAULT_SOCKET)
    i.add_argument("--namespace", default=containerd.DEFAULT_NAMESPACE,
                   help="containerd namespace (default k8s.io, where the kubelet's images live)")
    i.add_argument("--cache-dir", default=str(CACHE_DIR), help=f"build cache (default {CACHE_DIR})")
    ls = sub.add_parser("list", help="the built-in images, or with --containerd-socket what containerd holds")
    ls.add_argument("--containerd-socket", help="list this containerd's images instead")
    ls.add_argument("--namespace", default=containerd.DEFAULT_NAMESPACE)


def _build(name: str, out: str | None, cache_dir: str):
    try:
        recipe = recipe_for(name)
    except KeyError as exc:
        raise CLIError(exc.args[0], code=2) from None
    try:
        return build(recipe, Path(out) if out else None, Path(cache_dir))
    except PackageError as exc:
        raise CLIError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "image_command", None)
    if command == "build":
        built = _build(args.name, args.out, args.cache_dir)
        print(f"{built.reference} {built.digest} {built.path}" + (" (cached)" if built.cached else ""))
        return 0
    if command == "import":
        where = f"{args.containerd_socket} namespace {args.namespace}"
        try:
            if os.path.isfile(args.source):
                containerd.import_archive(Path(args.source), args.containerd_socket, args.namespace)
                print(f"imported {args.source} into {where}")
                return 0
            recipe_for(args.source)
        except KeyError:
            raise CLIError(f"{args.source}: no such file, and not a built-in image "
                           f"({', '.join(sorted(RECIPES))})", code=2) from None
        except containerd.ContainerdError as exc:
            raise CLIError(str(exc)) from None
        try:
            imported = ensure_builtin_images(args.containerd_socket, args.namespace, [args.source],
                                             Path(args.cache_dir))
        except (containerd.ContainerdError, PackageError) as exc:
            raise CLIError(str(exc)) from None
        print(f"imported {args.source} into {where}" if imported
              else f"{args.source} is already in {where} (same digest)")
        return 0
    if command == "list":
        if args.containerd_socket:
            try:
                stored = containerd.list_images(args.containerd_socket, args.namespace)
            except containerd.ContainerdError as exc:
                raise CLIError(str(exc)) from None
            for image in stored:
                print(f"{image.reference}\t{image.digest}\t{image.size}")
            return 0
        for _name, recipe in sorted(RECIPES.items()):
            print(f"{recipe.reference}\t{' + '.join(layer.name for layer in recipe.layers)}")
        return 0
    raise CLIError("give an action: build, import or list", code=2)
