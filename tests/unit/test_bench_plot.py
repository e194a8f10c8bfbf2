"""bench/results.py records only when asked, and bench/plot.py turns the records into one PNG
per figure (real matplotlib, real files); a broken results file is a one-line error."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import plot, results

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_nothing_is_recorded_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(results.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    results.point("f", "s", 100, 1.0, "s")
    assert list(tmp_path.iterdir()) == []


def test_points_and_distributions_become_one_png_per_figure(tmp_path, monkeypatch):
    out = tmp_path / "results.jsonl"
    monkeypatch.setenv(results.ENV, str(out))
    for n, ours, theirs in ((100, 0.01, 0.02), (1000, 0.1, 0.2), (10000, 1.0, 1.9)):
        results.point("nftables mode full sync", "kproxy", n, ours, "s")
        results.point("nftables mode full sync", "nft -f", n, theirs, "s")
    results.distribution("delivery", "kproxy", [1.0, 2.0, 3.0], "ms")
    results.distribution("delivery", "kproxy", [4.0], "ms")  # pooled with the first sample
    results.distribution("delivery", "etcd", [2.0, 5.0], "ms")

    figures = plot.load(str(out))
    assert list(figures) == ["nftables mode full sync", "delivery"]
    assert figures["nftables mode full sync"].points["nft -f"] == {100: 0.02, 1000: 0.2, 10000: 1.9}
    assert figures["delivery"].samples["kproxy"] == [1.0, 2.0, 3.0, 4.0]

    paths = plot.plot(str(out), str(tmp_path / "png"))
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["delivery.png", "nftables-mode-full-sync.png"]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC


def test_a_record_of_the_wrong_shape_names_the_line(tmp_path):
    bad = tmp_path / "results.jsonl"
    bad.write_text('{"kind":"point","figure":"f","series":"s","size":1,"value":1,"unit":"s"}\n'
                   '{"kind":"distribution","figure":"f","series":"s","values":[1],"unit":"s"}\n')
    with pytest.raises(ValueError, match=r"results.jsonl:2: .*mixes point and distribution"):
        plot.load(str(bad))
    proc = subprocess.run([sys.executable, "-m", "bench.plot", str(bad), str(tmp_path / "out")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "results.jsonl:2" in proc.stderr and "Traceback" not in proc.stderr
