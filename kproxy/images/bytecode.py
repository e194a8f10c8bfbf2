"""Bytecode for an image's Python standard library, so a container does not compile the modules
it imports at every start (about 0.2 s of CPU for the echo server's imports).

The .pyc files are made by the image's own interpreter (the same Debian file, run here) in
PEP 552's unchecked-hash mode: they record no source mtime (the image's are all EPOCH) and
the same sources give the same bytes (hash seed fixed), so the layer stays reproducible. The
price: a source edited inside a container is not recompiled (the image is not meant for that).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile

from kproxy.images.layout import Entry

# Runs in the image's interpreter: reads [[source, cfile, dfile], ...] on stdin, compiles each
# (a source that does not compile, such as lib2to3's test data, is skipped).
_COMPILER = """
import json, py_compile, sys
for source, cfile, dfile in json.load(sys.stdin):
    try:
        py_compile.compile(source, cfile=cfile, dfile=dfile, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except (py_compile.PyCompileError, SyntaxError, ValueError):
        pass
"""


def pyc_path(source: str, cache_tag: str) -> str:
    """/usr/lib/python3.11/json/decoder.py -> /usr/lib/python3.11/json/__pycache__/decoder.cpython-311.pyc"""
    directory, name = os.path.split(source)
    return os.path.join(directory, "__pycache__", f"{name[:-3]}.{cache_tag}.pyc")


def stdlib_bytecode(entries: list[Entry], python: str) -> list[Entry]:
    """The .pyc entries for the .py files of `entries` under /usr/lib/python<python>/, compiled
    by /usr/bin/python<python> from the entries' own bytes."""
    prefix = f"/usr/lib/python{python}/"
    sources = [e for e in entries if e.path.startswith(prefix) and e.path.endswith(".py") and e.data is not None]
    if not sources:
        return []
    cache_tag = "cpython-" + python.replace(".", "")
    with tempfile.TemporaryDirectory(prefix="kproxy-pyc-") as tmp:
        jobs = []
        for i, entry in enumerate(sources):
            src = os.path.join(tmp, f"{i}.py")
            with open(src, "wb") as f:
                f.write(entry.data or b"")
            jobs.append([src, os.path.join(tmp, f"{i}.pyc"), entry.path])
        env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8"}
        subprocess.run([f"/usr/bin/python{python}", "-s", "-c", _COMPILER], input=json.dumps(jobs),
                       text=True, env=env, check=True, capture_output=True)
        out = []
        for (_, cfile, image_path) in jobs:
            if os.path.exists(cfile):
                with open(cfile, "rb") as f:
                    out.append(Entry(pyc_path(image_path, cache_tag), 0o644, data=f.read()))
    return out
