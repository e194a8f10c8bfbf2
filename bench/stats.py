"""Summary statistics the benchmarks share."""
from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1) of a non-empty sample."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
