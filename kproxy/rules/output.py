"""Output of `kproxy rules`: text tables that fit the terminal, JSON and YAML (pure: every
function returns a string; the CLI prints it).

Text: one block per Service port with its frontends, endpoints and kernel objects (an entry
object, whose counters make the Service port's totals, is marked with "*" after its kind). Columns are
sized to their content; the last column (an object's text) is cut with "…" so that no line
is wider than `width`. Colours (ANSI) only when asked (the CLI asks when stdout is a terminal
and NO_COLOR is unset).
"""
from __future__ import annotations

import json
from typing import Sequence

import yaml

from .diff import Difference
from .model import NodeRules
from .trace import TraceReport

MIN_WIDTH = 60
_COLOURS = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


class Style:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, *styles: str) -> str:
        if not self.colour or not styles:
            return text
        return "\x1b[" + ";".join(_COLOURS[s] for s in styles) + "m" + text + "\x1b[0m"


def fit(text: str, width: int) -> str:
    """`text` cut to at most `width` characters ("…" marks a cut)."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int, indent: int, style: Style) -> list[str]:
    """Aligned columns; the last column takes what is left of `width` (cut if needed)."""
    cols = len(header)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(cols - 1)]
    fixed = indent + sum(widths) + 2 * (cols - 1)
    last = max(width - fixed, 8)
    lines = []
    for n, row in enumerate([header, *rows]):
        cells = [str(row[i]).ljust(widths[i]) for i in range(cols - 1)] + [fit(str(row[-1]), last)]
        line = fit((" " * indent + "  ".join(cells)).rstrip(), width)  # narrow terminals cut every column
        lines.append(style(line, "dim") if n == 0 else line)
    return lines


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def _count(value: int) -> str:
    for unit, size in (("G", 10 ** 9), ("M", 10 ** 6), ("K", 10 ** 3)):
        if value >= 10 * size:
            return f"{value // size}{unit}"
    return str(value)


def rules_text(rules: NodeRules, width: int = 100, colour: bool = False, objects: bool = True) -> str:
    width = max(width, MIN_WIDTH)
    st = Style(colour)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(rules.detail.items()))
    out = [st(fit(f"node {rules.node or '(this host)'}  mode {rules.mode}" + (f" ({detail})" if detail else "")
                  + f"  {len(rules.services)} service ports", width), "bold")]
    for svc in rules.services:
        out.append("")
        counters = f"{_count(svc.packets)} pkts {_count(svc.bytes)} bytes"
        head = fit(f"{svc.key}  {svc.protocol}", width - len(counters) - 2)
        pad = max(width - len(head) - len(counters), 2)
        out.append(st(head, "bold", "cyan") + " " * pad + counters)
        fronts = ", ".join(str(f) for f in svc.frontends) or "none"
        out.append(fit(f"  frontends: {fronts}", width))
        if svc.endpoints:
            rows = []
            for e in svc.endpoints:
                ready = _yes_no(e.ready)
                if e.ready is False and e.serving and e.terminating:
                    ready = "terminating"
                rows.append([e.address, ready, _yes_no(e.local), "yes" if e.programmed else "NO", _count(e.packets),
                             e.node or ""])
            lines = table(["ENDPOINT", "READY", "LOCAL", "PROGRAMMED", "PKTS", "NODE"], rows, width, 2, st)
            out += [lines[0]] + [st(l, "red") if " NO " in l or l.endswith(" NO") else l for l in lines[1:]]
        else:
            out.append(st("  endpoints: none", "yellow"))
        if objects and svc.objects:
            rows = [[o.kind + ("*" if o.entry else ""), o.container, _count(o.packets), _count(o.bytes), o.text]
                    for o in svc.objects]
            out += table(["KIND", "WHERE", "PKTS", "BYTES", "OBJECT"], rows, width, 2, st)
    if rules.unowned:
        out.append("")
        out.append(st(fit(f"not reached from any Service ({len(rules.unowned)} objects: stale or hand-made)", width),
                      "bold", "red"))
        rows = [[o.kind, o.container, _count(o.packets), _count(o.bytes), o.text] for o in rules.unowned]
        out += table(["KIND", "WHERE", "PKTS", "BYTES", "OBJECT"], rows, width, 2, st)
    return "\n".join(out) + "\n"


def trace_text(report: TraceReport, width: int = 100, colour: bool = False) -> str:
    width = max(width, MIN_WIDTH)
    st = Style(colour)
    p = report.probe
    src = f"{p.src}:{p.sport}" if p.sport else p.src
    out = [st(fit(f"{p.proto} {src} -> {p.dst}:{p.dport}  (mode {report.mode})", width), "bold")]
    if report.service:
        out.append(fit(f"service:  {report.service}", width))
        out.append(fit(f"frontend: {report.frontend if report.frontend else '?'}", width))
    if report.note:
        out.append(st(fit(report.note, width), "yellow"))
    for c in report.candidates:
        out.append("")
        colour = "green" if c.is_endpoint else ("red" if c.outcome in ("DROP", "REJECT") else "yellow")
        masq = "masqueraded" if c.masquerade else "source kept"
        out.append(st(f"{c.probability * 100:6.2f}%  {c.outcome}", "bold", colour) + f"  ({masq})")
        rows = [[str(i + 1), f"{s.container}#{s.index}", s.text] for i, s in enumerate(c.path)]
        if rows:
            out += table(["STEP", "WHERE", "RULE"], rows, width, 4, st)
    return "\n".join(out) + "\n"


def diff_text(differences: Sequence[Difference], width: int = 100, colour: bool = False) -> str:
    width = max(width, MIN_WIDTH)
    st = Style(colour)
    if not differences:
        return "kernel matches the desired state\n"
    out = [st(fit(f"{len(differences)} differences between the desired state and the kernel", width), "bold", "red")]
    rows = [[d.kind, d.scope, d.object.container, d.object.text] for d in differences]
    lines = table(["DIFF", "SCOPE", "WHERE", "OBJECT"], rows, width, 0, st)
    out.append(lines[0])
    for d, line in zip(differences, lines[1:]):
        out.append(st(line, "red" if d.kind == "missing" else "yellow"))
    return "\n".join(out) + "\n"


def as_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def as_yaml(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=1000)


def diff_doc(differences: Sequence[Difference], mode: str, node: str) -> dict:
    return {"apiVersion": "kproxy.io/v1alpha1", "kind": "RulesDiff", "mode": mode, "node": node,
            "inSync": not differences, "differences": [d.to_dict() for d in differences]}
