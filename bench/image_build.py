"""`kproxy image build` time: each built-in image from an empty cache (read the packages' files,
tar, gzip, archive) and again from the warm cache, against GNU tar packing the same host files
into a gzip tar (`tar -czf`, the obvious way to make a layer) in the same run.

    python -m bench.image_build [--runs 3]

No kernel, no network; the caches are temporary directories.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kproxy.images import debian
from kproxy.images.build import build
from kproxy.images.recipes import RECIPES


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def host_files(recipe) -> list[str]:
    """The host paths the image's package layers are read from (what tar is given)."""
    python = debian.python_version()
    paths: list[str] = []
    for layer in recipe.layers:
        for package in layer.packages:
            paths += debian.package_files(package.format(python=python))
    paths += sorted(debian.shared_libraries(paths))
    return [p for p in paths if not os.path.isdir(p) or os.path.islink(p)]


def gnu_tar_seconds(paths: list[str], out: Path) -> float:
    listing = out.with_suffix(".list")
    listing.write_text("\n".join(paths) + "\n")
    t = time.perf_counter()
    subprocess.run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
                    "-czf", str(out), "--no-recursion", "-T", str(listing)], check=True,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.image_build", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs (default 3)")
    args = parser.parse_args(argv)
    print(f"{'image':<20} {'cold s':>8} {'cached s':>9} {'tar -czf s':>11} {'archive MB':>11}")
    with tempfile.TemporaryDirectory(prefix="kproxy-bench-images-") as tmp:
        for name, recipe in sorted(RECIPES.items()):
            cold = cached = baseline = float("inf")
            size = 0
            for run in range(args.runs):
                cache = Path(tmp) / f"{name.rsplit('/', 1)[1]}-{run}"
                seconds, built = timed(lambda: build(recipe, cache_dir=cache))
                cold = min(cold, seconds)
                size = built.path.stat().st_size  # type: ignore[attr-defined]
                seconds, again = timed(lambda: build(recipe, cache_dir=cache))
                assert again.cached and again.digest == built.digest  # type: ignore[attr-defined]
                cached = min(cached, seconds)
                baseline = min(baseline, gnu_tar_seconds(host_files(recipe), cache / "gnu.tar.gz"))
            print(f"{name:<20} {cold:>8.2f} {cached:>9.2f} {baseline:>11.2f} {size / 1e6:>11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
