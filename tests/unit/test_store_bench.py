"""bench.apiserver_vs_etcd runs end to end on a tiny workload: real apiserver, real etcd (when
installed), a table with a number in every cell, and nothing left behind."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_apiserver_vs_etcd_bench_runs_and_cleans_up(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))  # the bench's work dir lands in tmp_path
    proc = subprocess.run(
        [sys.executable, "-m", "bench.apiserver_vs_etcd", "--writes", "30", "--serial-writes", "5",
         "--concurrency", "4", "--watchers", "5", "--burst", "10"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("writes/s", "watch events/s"))]
    assert len(rows) == 5, proc.stdout
    cpu = next(line for line in proc.stdout.splitlines() if line.startswith("server CPU ms per write"))
    assert float(cpu.split(")", 1)[-1].split()[0]) > 0, cpu  # the apiserver spent CPU on the writes
    have_etcd = shutil.which("etcd") is not None or os.access("/usr/bin/etcd", os.X_OK)
    for row in rows:
        cells = re.findall(r"\s(n/a|[\d,]+)(?=\s|$)", row.split(")", 1)[-1])
        assert len(cells) >= 2, row
        ours, theirs = cells[0], cells[1]
        assert ours != "n/a" and int(ours.replace(",", "")) > 0, row
        if have_etcd:
            assert theirs != "n/a" and int(theirs.replace(",", "")) > 0, row
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("kproxy-bench-")]


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("etcd") or os.access("/usr/bin/etcd", os.X_OK)),
                    reason="the baseline is Debian's etcd (etcd-server)")
def test_watchers_bench_delivers_every_event_to_every_watcher(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.watchers", "--services", "20", "--watchers", "30",
         "--changes", "4", "--rate", "20", "--client-procs", "2", "--relist", "3"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    delivered = next(line for line in proc.stdout.splitlines() if line.startswith("events delivered"))
    assert delivered.split()[2:] == ["120", "120"], proc.stdout  # 30 watchers x 4 changes, both servers
    p99 = next(line for line in proc.stdout.splitlines() if line.startswith("delivery p99"))
    assert all(float(v) > 0 for v in p99.split()[3:]), proc.stdout
    # the relist storm: 3 lists of all 20 slices at once, on both servers
    # (times only parse: a 20-slice list can take less than the printed resolution on etcd)
    storm = next(line for line in proc.stdout.splitlines() if line.startswith("relist storm, 3 lists"))
    assert all(float(v) >= 0 for v in storm.split()[-2:]), proc.stdout
    answer = next(line for line in proc.stdout.splitlines() if line.startswith("relist: one answer"))
    assert all(float(v) > 0 for v in answer.split()[-2:]), proc.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("kproxy-bench-")]


def test_bench_runner_lists_and_rejects_unknown_names():
    listed = subprocess.run([sys.executable, "-m", "bench", "--list"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0
    assert "apiserver_vs_etcd" in listed.stdout.split()
    unknown = subprocess.run([sys.executable, "-m", "bench", "no_such_bench"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2
    assert "unknown benchmark(s) no_such_bench" in unknown.stderr
    assert "Traceback" not in unknown.stderr
