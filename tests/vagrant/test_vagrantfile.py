"""The Vagrantfile as vagrant reads it (no VM): every mode validates, a wrong mode or node count
is refused with a message naming it (KPROXY_NODES=two was a Ruby backtrace). Seconds; skipped where vagrant is not installed
(scripts/install-vagrant-deps.sh)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from tests.vagrant.lab import RUN_SH

VAGRANT_DIR = RUN_SH.parent

pytestmark = pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed")


def _validate(**env: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as home:
        return subprocess.run(
            ["vagrant", "validate"], capture_output=True, text=True, timeout=300,
            env={**os.environ, "VAGRANT_CWD": str(VAGRANT_DIR), "VAGRANT_DOTFILE_PATH": f"{home}/dot",
                 "VAGRANT_CHECKPOINT_DISABLE": "1", "KPROXY_VAGRANT_SHARE": home, **env})


@pytest.mark.parametrize("mode", ["iptables", "ipvs"])
def test_vagrantfile_validates(mode):
    r = _validate(KPROXY_MODE=mode, KPROXY_NODES="3")
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_mode_is_refused_by_name():
    r = _validate(KPROXY_MODE="ipchains")
    assert r.returncode != 0
    assert "KPROXY_MODE=ipchains" in r.stdout + r.stderr


@pytest.mark.parametrize("nodes", ["two", "0"])
def test_bad_node_count_is_refused_by_name(nodes):
    r = _validate(KPROXY_NODES=nodes)
    assert r.returncode != 0
    assert f"KPROXY_NODES={nodes}:" in r.stdout + r.stderr


def test_run_sh_without_a_command_prints_its_usage():
    r = subprocess.run([str(RUN_SH)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "run.sh up" in r.stdout and "run.sh down" in r.stdout
