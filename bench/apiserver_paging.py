"""The cost of paged lists (kproxy/apiserver/paging.py) against the unpaged list, in the same
run on the same SQLite store: the store's own list (the baseline every list pays), a full
list, a first page of --limit, and a later page served at the first page's revision after
--writes updates (the store rewinds its history: Store.list_at).

    python -m bench.apiserver_paging [--objects 5000] [--limit 500] [--writes 500] [--rounds 15]

Prints the median and best milliseconds of each, the rounds interleaved so load on the
machine hits them alike.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kproxy.api import resources as R  # noqa: E402
from kproxy.apiserver import paging  # noqa: E402
from kproxy.store.sqlite import SQLiteStore  # noqa: E402

NS = "default"


def secret(i: int, value: str) -> dict:
    name = f"s{i:06d}"
    return {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "bench", "n": str(i % 10)}},
            "data": {"value": value}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(os.path.join(tmp, "store.db"),
                                                           history=args.writes + 1000) as store:
        for i in range(args.objects):
            store.create(R.SECRETS.store_key(f"s{i:06d}", NS), secret(i, "YQ=="))
        first = paging.list_page(store, R.SECRETS, NS, None, None, paging.ListOptions(limit=args.limit))
        token = first["metadata"]["continue"]
        for i in range(args.writes):  # spread over the keys, before and after the next page
            n = (i * 7919) % args.objects
            store.update(R.SECRETS.store_key(f"s{n:06d}", NS), secret(n, "Yg=="))
        later = paging.parse_list_options({"limit": str(args.limit), "continue": token})
        cases: dict[str, Callable[[], object]] = {
            "store list (baseline)": lambda: store.list(R.SECRETS.store_prefix(NS)),
            "full list": lambda: paging.list_page(store, R.SECRETS, NS, None, None, paging.ListOptions()),
            f"first page of {args.limit}": lambda: paging.list_page(
                store, R.SECRETS, NS, None, None, paging.ListOptions(limit=args.limit)),
            f"next page, {args.writes} writes later": lambda: paging.list_page(
                store, R.SECRETS, NS, None, None, later),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000)
    print(f"{args.objects} Secrets, {args.rounds} rounds")
    print(f"{'case':40} {'median ms':>10} {'best ms':>9}")
    for name, values in times.items():
        print(f"{name:40} {statistics.median(values):10.1f} {min(values):9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
