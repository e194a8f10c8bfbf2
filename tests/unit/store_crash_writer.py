"""Crash-test writer: creates COUNT keys in the SQLite store at PATH from THREADS threads and
prints "<key> <revision>" for each acknowledged create, flushed at once, so the test that
SIGKILLs this process knows exactly which writes the store acknowledged.

Usage: python store_crash_writer.py PATH KEY_PREFIX COUNT THREADS
"""
from __future__ import annotations

import sys
import threading

from kproxy.store.sqlite import SQLiteStore


def main() -> int:
    path, prefix, count, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = SQLiteStore(path)
    out_lock = threading.Lock()

    def write(worker: int) -> None:
        for i in range(worker, count, threads):
            key = f"{prefix}{i:05d}"
            kv = store.create(key, {"metadata": {"name": key}, "i": i, "pad": "x" * 200})
            with out_lock:  # one whole line per write(2), printed only after create returned
                sys.stdout.write(f"{key} {kv.mod_revision}\n")
                sys.stdout.flush()

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
