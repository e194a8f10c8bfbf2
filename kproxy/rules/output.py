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
import re
import textwrap
from typing import Sequence

import yaml

from .diff import BEHAVIOUR, Difference
from .model import NodeRules
from .trace import TraceReport

MIN_WIDTH = 60
# The comment of an iptables rule names the Service the table is already about; dropping it in
# text output leaves room for the matches and the target (JSON keeps the full text).
_RULE_COMMENT = re.compile(r'\s*-m comment --comment (?:"(?:[^"\\]|\\.)*"|\S+)')
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


def _short(text: str) -> str:
    return _RULE_COMMENT.sub("", text).strip()


def _name(key: str) -> str:
    """A ServicePort key as people write it: "ns/name:port", or "ns/name" for an unnamed port."""
    return key[:-1] if key.endswith(":") else key


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _objects_block(objects, width: int, st: Style, all_chains: bool) -> list[str]:
    """Kernel objects grouped by where they live (a line naming the chain / map / virtual
    server, then its objects), so each object's text gets nearly the whole width. Rules are
    shown without their comment; a chain/map/set only as its group line ("(empty)" when it
    holds nothing)."""
    groups: dict[str, list] = {}
    for o in objects:
        if o.kind in ("chain", "map", "set"):  # a container: shown by its contents' group line
            if all_chains or not any(x.container == f"{o.container}/{o.text}" for x in objects):
                groups.setdefault(f"{o.container}/{o.text}", [])
            continue
        groups.setdefault(o.container, []).append(o)
    rows = [[_count(o.packets), _count(o.bytes), "*" if o.entry else "", _short(o.text) if o.kind == "rule" else o.text]
            for objs in groups.values() for o in objs]
    lines = table(["PKTS", "BYTES", " ", "OBJECT (*: entry, counted as the Service's traffic)"],
                  rows or [["", "", "", ""]], width, 4, st)
    out, i = [lines[0]], 1
    for container, objs in groups.items():
        out.append(st(fit(f"  {container}" + ("" if objs else "  (empty)"), width), "bold"))
        out += lines[i:i + len(objs)]
        i += len(objs)
    return out


def rules_text(rules: NodeRules, width: int = 100, colour: bool = False, objects: bool = True) -> str:
    width = max(width, MIN_WIDTH)
    st = Style(colour)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(rules.detail.items()))
    out = [st(fit(f"node {rules.node or '(this host)'}  mode {rules.mode}" + (f" ({detail})" if detail else "")
                  + f"  {_plural(len(rules.services), 'service port')}", width), "bold")]
    for svc in rules.services:
        out.append("")
        counters = f"{_count(svc.packets)} pkts {_count(svc.bytes)} bytes"
        head = fit(f"{_name(svc.key)}  {svc.protocol}", width - len(counters) - 2)
        pad = max(width - len(head) - len(counters), 2)
        out.append(st(head, "bold", "cyan") + " " * pad + counters)
        fronts = textwrap.wrap(", ".join(str(f) for f in svc.frontends) or "none", width - 13,
                               break_long_words=False, break_on_hyphens=False)
        out += [fit(("  frontends: " if i == 0 else " " * 13) + part, width) for i, part in enumerate(fronts)]
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
            out += _objects_block(svc.objects, width, st, all_chains=False)
    if rules.skipped:
        out.append("")
        out.append(st(fit(f"not programmed ({_plural(len(rules.skipped), 'service port')}):", width), "bold", "yellow"))
        out += [st(fit(f"  {_name(s.key)}  SKIPPED: {s.reason}", width), "yellow") for s in rules.skipped]
    if rules.unowned:
        out.append("")
        out.append(st(fit(f"not reached from any Service ({_plural(len(rules.unowned), 'object')}: stale or "
                          "hand-made)", width), "bold", "red"))
        out += _objects_block(rules.unowned, width, st, all_chains=True)
    return "\n".join(out) + "\n"


def trace_text(report: TraceReport, width: int = 100, colour: bool = False) -> str:
    width = max(width, MIN_WIDTH)
    st = Style(colour)
    p = report.probe
    src = f"{p.src}:{p.sport}" if p.sport else p.src
    out = [st(fit(f"{p.proto} {src} -> {p.dst}:{p.dport}  (mode {report.mode})", width), "bold")]
    if report.service:
        out.append(fit(f"service:  {_name(report.service)}", width))
        out.append(fit(f"frontend: {report.frontend if report.frontend else '?'}", width))
    if report.note:
        out.append(st(fit(report.note, width), "yellow"))
    for c in report.candidates:
        out.append("")
        tint = "green" if c.is_endpoint else ("red" if c.outcome in ("DROP", "REJECT") else "yellow")
        masq = "masqueraded" if c.masquerade else "source kept"
        out.append(st(f"{c.probability * 100:6.2f}%  {c.outcome}", "bold", tint) + f"  ({masq})")
        for i, step in enumerate(c.path):  # where (chain and rule number), then the rule on its own line
            out.append(fit(f"  {i + 1:>3}  {step.container} #{step.index + 1}", width))
            out.append(fit(f"       {_short(step.text)}", width))
    return "\n".join(out) + "\n"


def diff_text(differences: Sequence[Difference], width: int = 100, colour: bool = False,
              settings: str = "") -> str:
    """`settings` says what the desired state was rendered with (shown when there are
    differences: wrong settings are a common cause)."""
    width = max(width, MIN_WIDTH)
    st = Style(colour)
    if not differences:
        return "kernel matches the desired state\n"
    out = [st(fit(f"{_plural(len(differences), 'difference')} between the desired state and the kernel", width),
              "bold", "red")]
    rows = [[d.kind, _name(d.scope), "(behaviour)" if d.object.kind == BEHAVIOUR else d.object.container,
             _short(d.object.text) if d.object.kind == "rule" else d.object.text] for d in differences]
    lines = table(["DIFF", "SCOPE", "WHERE", "OBJECT"], rows, width, 0, st)
    out.append(lines[0])
    for d, line in zip(differences, lines[1:]):
        out.append(st(line, "red" if d.kind == "missing" else "yellow"))
    if settings:
        out.append(st(fit(f"(desired state rendered for {settings})", width), "dim"))
    return "\n".join(out) + "\n"


def as_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def as_yaml(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=1000)


def diff_doc(differences: Sequence[Difference], mode: str, node: str) -> dict:
    return {"apiVersion": "kproxy.io/v1alpha1", "kind": "RulesDiff", "mode": mode, "node": node,
            "inSync": not differences, "differences": [d.to_dict() for d in differences]}
