#!/usr/bin/env bash
# Python only, no root: a virtualenv in .venv with the project installed in editable mode (builds
# the Cython extension) and its test and lint extras. Enough for `make test-fast` and `make lint`;
# the kernel, e2e and VM tiers also need the Debian packages of scripts/install-deps.sh. Safe to
# run again: it skips the install when nothing it depends on changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Cython fast path needs a C compiler and Python's headers; without them kproxy installs with
# its pure-Python twin (kproxy.fastpath falls back to it at run time).
include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if ! command -v cc >/dev/null || [[ ! -f $include/Python.h ]]; then
    echo "no C compiler or Python headers: installing without the Cython fast path" >&2
    export KPROXY_NO_CYTHON=1
fi

stamp=.venv/.kproxy-deps
if [[ ! -f $stamp || setup.py -nt $stamp || pyproject.toml -nt $stamp || kproxy/modes.py -nt $stamp || kproxy/_fastpath.pyx -nt $stamp || kproxy/_fastpath_netlink.pxi -nt $stamp || scripts/install-deps-py.sh -nt $stamp ]]; then
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -U pip setuptools wheel cython
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test,fast,vm,lint,bench]'
    touch "$stamp"
fi
# the CRI gRPC stubs (kproxy/containerd/protogen.py), regenerated when the .proto changed
.venv/bin/python -m kproxy.containerd.protogen >/dev/null
