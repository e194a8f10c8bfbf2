"""What a benchmark measured, as data for `python -m bench --plot DIR` (bench/plot.py).

A benchmark calls `point(...)` for a cost at a size and `distribution(...)` for a latency
sample, next to what it prints. They append one JSON line each to the file named by
$KPROXY_BENCH_RESULTS and do nothing when it is unset, so a benchmark run by hand is unchanged.
The runner sets the variable for every benchmark it starts with --plot.
"""
from __future__ import annotations

import json
import os
from typing import Iterable

ENV = "KPROXY_BENCH_RESULTS"


def _append(record: dict) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps(record, separators=(",", ":")) + "\n")


def point(figure: str, series: str, size: int, value: float, unit: str) -> None:
    """One cost (`value` in `unit`) of `series` at `size` Services, for the figure `figure`."""
    _append({"kind": "point", "figure": figure, "series": series, "size": size, "value": value, "unit": unit})


def distribution(figure: str, series: str, values: Iterable[float], unit: str) -> None:
    """A latency sample of `series`, drawn as a distribution in the figure `figure`."""
    _append({"kind": "distribution", "figure": figure, "series": series, "values": list(values), "unit": unit})
