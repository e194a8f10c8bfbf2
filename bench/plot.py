"""Figures from benchmark results (bench/results.py's JSON lines): one PNG per figure.

    python -m bench.plot RESULTS.jsonl DIR

A figure of points is cost against size (log-log), one line per series: kproxy and its
baseline side by side. A figure of distributions is one empirical CDF per series (log x), with
p50 and p99 in the legend. `python -m bench --plot DIR` runs the benchmarks and then this.
"""
from __future__ import annotations

from bench.stats import percentile

import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    kind: str
    unit: str
    points: dict[str, dict[int, float]] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)


def load(path: str) -> dict[str, Figure]:
    """Figures by title, in the order they were first recorded; a later point at the same size
    replaces an earlier one, distributions of the same series are pooled."""
    figures: dict[str, Figure] = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec: dict[str, Any] = json.loads(line)
                fig = figures.setdefault(rec["figure"], Figure(rec["kind"], rec["unit"]))
                if rec["kind"] != fig.kind:
                    raise ValueError(f"figure {rec['figure']!r} mixes {fig.kind} and {rec['kind']}")
                if rec["kind"] == "point":
                    fig.points.setdefault(rec["series"], {})[int(rec["size"])] = float(rec["value"])
                else:
                    fig.samples.setdefault(rec["series"], []).extend(float(v) for v in rec["values"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{n}: not a benchmark result: {exc}") from None
    return figures


def filename(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") + ".png"


def draw(title: str, fig: Figure, out_dir: str) -> str:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    if fig.kind == "point":
        for series, by_size in fig.points.items():
            sizes = sorted(by_size)
            ax.plot(sizes, [by_size[s] for s in sizes], marker="o", label=series)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Services")
        ax.set_ylabel(fig.unit)
    else:
        for series, values in fig.samples.items():
            ordered = sorted(values)
            ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.step(ordered, ys, where="post", label=f"{series} (p50 {percentile(values, .5):.3g}, "
                                                     f"p99 {percentile(values, .99):.3g} {fig.unit})")
        ax.set_xscale("log")
        ax.set_xlabel(fig.unit)
        ax.set_ylabel("fraction of samples")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    figure.tight_layout()
    path = os.path.join(out_dir, filename(title))
    figure.savefig(path)
    plt.close(figure)
    return path


def plot(results: str, out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    return [draw(title, fig, out_dir) for title, fig in load(results).items()]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.plot RESULTS.jsonl DIR", file=sys.stderr)
        return 2
    try:
        for path in plot(*args):
            print(path)
    except (OSError, ValueError) as exc:
        print(f"bench.plot: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
