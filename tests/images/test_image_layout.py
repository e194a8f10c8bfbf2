"""The built-in images' OCI archives, read back: every blob's digest and size, the index's name
annotations, the config's entrypoint/env and diff_ids, the files the layers hold, and that a
rebuild from a fresh cache gives the same bytes."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from kproxy.cli.main import main as kproxy_main
from kproxy.images.build import build
from kproxy.images.containerd import StoredImage, parse_image_list
from kproxy.images.debian import parse_ldd, python_version
from kproxy.images.layout import (ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, MEDIA_CONFIG,
                                  MEDIA_LAYER_GZIP, MEDIA_MANIFEST, Entry, layer_tar)
from kproxy.images.recipes import ECHO_SCRIPT, PAUSE_SCRIPT, RECIPES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    cache = tmp_path_factory.mktemp("image-cache")
    return {name: build(recipe, cache_dir=cache).path for name, recipe in RECIPES.items()}


def read_layout(path: Path) -> dict:
    """index, manifest, config and the layers' tars (uncompressed) of an archive, each blob's
    digest and size checked against its name and descriptor."""
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1], name

    def blob(desc: dict) -> bytes:
        data = files["blobs/sha256/" + desc["digest"].split(":", 1)[1]]
        assert len(data) == desc["size"], desc
        return data

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    [entry] = index["manifests"]
    assert entry["mediaType"] == MEDIA_MANIFEST
    manifest = json.loads(blob(entry))
    assert manifest["config"]["mediaType"] == MEDIA_CONFIG
    config = json.loads(blob(manifest["config"]))
    layers = []
    for desc in manifest["layers"]:
        assert desc["mediaType"] == MEDIA_LAYER_GZIP
        layers.append(gzip.decompress(blob(desc)))
    [docker] = json.loads(files["manifest.json"])  # docker load's view of the same image
    assert docker["RepoTags"] == [entry["annotations"][ANNOTATION_CONTAINERD_NAME]]
    assert docker["Config"] == "blobs/sha256/" + manifest["config"]["digest"].split(":", 1)[1]
    assert docker["Layers"] == ["blobs/sha256/" + d["digest"].split(":", 1)[1] for d in manifest["layers"]]
    return {"index": index, "entry": entry, "manifest": manifest, "config": config, "layers": layers}


def layer_members(layer: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_layout_digests_name_and_diff_ids(archives, name):
    layout = read_layout(archives[name])
    assert layout["entry"]["annotations"] == {ANNOTATION_CONTAINERD_NAME: f"{name}:latest",
                                              ANNOTATION_REF_NAME: "latest"}
    assert layout["entry"]["platform"]["os"] == "linux"
    config = layout["config"]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(t).hexdigest() for t in layout["layers"]]
    assert config["architecture"] == layout["entry"]["platform"]["architecture"]
    assert "created" not in config  # no build time: the digest depends on the inputs only
    assert any(e.startswith("PATH=") for e in config["config"]["Env"])
    for layer in layout["layers"]:
        members = layer_members(layer)
        assert list(members) == sorted(members)
        assert {m.mtime for m in members.values()} == {0}
        assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


def test_runtime_config_of_each_image(archives):
    echo = read_layout(archives["kproxy.local/echo"])["config"]["config"]
    assert echo["Entrypoint"] == [ECHO_SCRIPT]
    assert "PORT=8080" in echo["Env"]
    assert echo["ExposedPorts"] == {"8080/tcp": {}, "8080/udp": {}}
    assert read_layout(archives["kproxy.local/base"])["config"]["config"]["Cmd"] == ["/bin/sh"]
    assert read_layout(archives["kproxy.local/pause"])["config"]["config"]["Entrypoint"] == \
        ["/bin/sh", "-c", PAUSE_SCRIPT]


def test_layers_hold_shell_python_and_the_echo_server(archives):
    busybox, python, echo = read_layout(archives["kproxy.local/echo"])["layers"]
    shell = layer_members(busybox)
    assert shell["usr/bin/busybox"].isfile() and shell["usr/bin/busybox"].mode & 0o111
    assert shell["bin"].issym() and shell["bin"].linkname == "usr/bin"
    assert shell["usr/bin/sh"].linkname == "/usr/bin/busybox"
    assert shell["tmp"].mode == 0o1777
    py = layer_members(python)
    assert "usr/lib/python3.11/asyncio/__init__.py" in py or any(n.endswith("/asyncio/__init__.py") for n in py)
    assert any(n.endswith("/libc.so.6") for n in py)  # a library ldd resolved for python3
    assert not any(n.startswith("usr/share/doc/") for n in py)
    # the standard library's bytecode, unchecked-hash (PEP 552 flags 0b01): no compile at start
    version = python_version()
    pyc = f"usr/lib/python{version}/asyncio/__pycache__/__init__.cpython-{version.replace('.', '')}.pyc"
    with tarfile.open(fileobj=io.BytesIO(python)) as tar:
        header = tar.extractfile(pyc).read(16)
    assert int.from_bytes(header[4:8], "little") == 1
    with tarfile.open(fileobj=io.BytesIO(echo)) as tar:
        script = tar.extractfile(ECHO_SCRIPT.lstrip("/")).read()
    # the echo server has one home: the image carries kproxy/lab/echo.py as it is
    source = (Path(__file__).parents[2] / "kproxy/lab/echo.py").read_bytes()
    assert script == b"#!/usr/bin/python3\n" + source


def test_echo_and_base_share_their_lower_layers(archives):
    base = read_layout(archives["kproxy.local/base"])["manifest"]["layers"]
    echo = read_layout(archives["kproxy.local/echo"])["manifest"]["layers"]
    pause = read_layout(archives["kproxy.local/pause"])["manifest"]["layers"]
    assert echo[:2] == base and pause == base[:1]


def test_rebuild_from_a_fresh_cache_is_byte_identical(archives, tmp_path):
    for name, recipe in RECIPES.items():
        again = build(recipe, cache_dir=tmp_path)
        assert not again.cached
        assert again.path.read_bytes() == archives[name].read_bytes(), name


def test_cached_rebuild_reports_the_cache(archives, tmp_path):
    recipe = RECIPES["kproxy.local/pause"]
    first = build(recipe, out=tmp_path / "out/pause.tar", cache_dir=tmp_path / "cache")
    second = build(recipe, cache_dir=tmp_path / "cache")
    assert (first.cached, second.cached) == (False, True)
    assert first.digest == second.digest
    assert (tmp_path / "out/pause.tar").read_bytes() == second.path.read_bytes()


def test_layer_tar_is_independent_of_entry_order_and_adds_parents():
    entries = [Entry("/a/b/c.txt", data=b"x"), Entry("/z", link="a"), Entry("/a/d", 0o755, data=b"")]
    tar = layer_tar(entries)
    assert tar == layer_tar(list(reversed(entries)))
    members = layer_members(tar)
    assert list(members) == ["a", "a/b", "a/b/c.txt", "a/d", "z"]
    assert members["a/b"].isdir() and members["a/b"].mode == 0o755
    assert members["a/d"].mode == 0o755 and members["z"].linkname == "a"


def test_cli_rejects_an_unknown_image_with_a_clear_error(capsys):
    assert kproxy_main(["image", "build", "kproxy.local/nope"]) == 2
    err = capsys.readouterr().err
    assert 'no built-in image "kproxy.local/nope"' in err and "kproxy.local/echo" in err
    assert kproxy_main(["image", "import", "/nonexistent.tar", "--containerd-socket", "/nonexistent.sock"]) == 2
    assert "no such file, and not a built-in image" in capsys.readouterr().err


def test_cli_import_reports_an_unreachable_containerd(archives, capsys):
    rc = kproxy_main(["image", "import", str(archives["kproxy.local/pause"]),
                      "--containerd-socket", "/nonexistent/containerd.sock"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "no containerd socket at /nonexistent/containerd.sock" in err and "Traceback" not in err


def test_parse_ldd_takes_resolved_libraries_and_the_loader_only():
    text = ("/usr/bin/python3.11:\n"
            "\tlinux-vdso.so.1 (0x00007f840ff6c000)\n"
            "\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f840fe7a000)\n"
            "\tlibgone.so.1 => not found\n"
            "\t/lib64/ld-linux-x86-64.so.2 (0x00007f840ff6e000)\n"
            "/usr/bin/busybox:\n"
            "\tnot a dynamic executable\n")
    assert parse_ldd(text) == {"/lib/x86_64-linux-gnu/libm.so.6", "/lib64/ld-linux-x86-64.so.2"}


def test_parse_image_list_reads_ctr_images_ls():
    text = ("REF                      TYPE                                    DIGEST      SIZE     PLATFORMS   LABELS\n"
            "kproxy.local/echo:latest application/vnd.oci.image.manifest.v1+json sha256:20f9 13.2 MiB "
            "linux/amd64 -\n")
    assert parse_image_list(text) == [StoredImage("kproxy.local/echo:latest", "sha256:20f9", "13.2 MiB")]
