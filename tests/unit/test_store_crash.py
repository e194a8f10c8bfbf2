"""kill -9 while writing: every write the store acknowledged survives, with its revision, and
revisions keep increasing after the restart. A real writer process (store_crash_writer.py)
prints each acknowledged (key, revision); the test SIGKILLs it at a random point."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest

from kproxy.store.base import ADDED
from kproxy.store.sqlite import SQLiteStore

WRITER = os.path.join(os.path.dirname(__file__), "store_crash_writer.py")
KEYS_PER_ROUND = 1000
ROUNDS = 3


def run_and_kill(path: str, prefix: str, threads: int, kill_after: int) -> dict[str, int]:
    """Starts the writer, SIGKILLs it after `kill_after` acks (or lets it finish), and returns
    every acknowledged key -> revision, including acks already in the pipe at the kill."""
    proc = subprocess.Popen(
        [sys.executable, WRITER, path, prefix, str(KEYS_PER_ROUND), str(threads)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    acked: dict[str, int] = {}
    try:
        while len(acked) < kill_after:
            line = proc.stdout.readline()
            if not line:
                break  # finished (or died) before the kill point
            key, revision = line.split()
            acked[key] = int(revision)
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in rest.splitlines(keepends=True):
        if line.endswith("\n"):  # a torn last line was never a complete ack
            key, revision = line.split()
            acked[key] = int(revision)
    assert "Traceback" not in err, err
    return acked


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 4], ids=["serial", "group-commit"])
def test_acknowledged_writes_survive_sigkill(tmp_path, threads):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = str(tmp_path / "store.db")
    all_acked: dict[str, int] = {}
    probe_revisions: list[int] = []  # revisions of the test's own create+delete probes
    for round_ in range(ROUNDS):
        kill_after = rng.randrange(20, KEYS_PER_ROUND - 50)
        acked = run_and_kill(path, f"/crash/{round_}/", threads, kill_after)
        context = f"seed={seed} round={round_} kill_after={kill_after}"
        assert len(acked) >= min(20, kill_after), context
        assert not set(acked) & set(all_acked), context
        # Acks of this round all come after everything acknowledged before.
        assert min(acked.values()) > max(all_acked.values(), default=0), context
        all_acked.update(acked)

        with SQLiteStore(path) as store:
            items, revision = store.list("/crash/")
            stored = {kv.key: kv for kv in items}
            for key, rev in all_acked.items():
                assert key in stored, f"{context}: acknowledged {key}@{rev} is lost"
                assert stored[key].mod_revision == stored[key].create_revision == rev, context
                assert stored[key].value["metadata"]["name"] == key, context
            # One revision per stored key plus the probes: no holes, none reused.
            assert sorted([kv.mod_revision for kv in items] + probe_revisions) == list(range(1, revision + 1)), context
            # The event log agrees with the table after the crash.
            events = []
            store.watch("/crash/", 0, events.append)()
            assert [(e.type, e.key, e.revision) for e in events] == sorted(
                ((ADDED, kv.key, kv.mod_revision) for kv in items), key=lambda t: t[2]), context
            # New writes continue above every revision ever acknowledged.
            probe = store.create(f"/probe/{round_}", {})
            assert probe.mod_revision == revision + 1 > max(all_acked.values()), context
            probe_revisions += [probe.mod_revision, store.delete(f"/probe/{round_}").mod_revision]
