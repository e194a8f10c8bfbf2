"""/healthz, /livez and /readyz as kube-apiserver answers them (rendering is pure).

`GET /livez` is "ok" or a 500; `?verbose` lists each check as "[+]name ok" / "[-]name failed:
reason withheld"; `?exclude=name` skips a check; `/livez/NAME` runs one check (404 if unknown).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

# A check returns None when healthy, else the reason (logged, never shown to the client).
Check = Callable[[], "str | None"]


@dataclass(frozen=True)
class ProbeResult:
    status: int
    text: str


def render(endpoint: str, results: Sequence[tuple[str, str | None]], verbose: bool,
           excluded: Sequence[str] = ()) -> ProbeResult:
    """The answer for `endpoint` ("livez", "readyz", "healthz") from each check's result."""
    lines, failed = [], False
    for name, error in results:
        if name in excluded:
            lines.append(f"[+]{name} excluded: ok")
        elif error is None:
            lines.append(f"[+]{name} ok")
        else:
            lines.append(f"[-]{name} failed: reason withheld")
            failed = True
    unknown = [n for n in excluded if n not in {name for name, _ in results}]
    if unknown:
        lines.append("warn: some health checks cannot be excluded: no matches for " +
                     ",".join(f'"{n}"' for n in unknown))
    if failed:
        return ProbeResult(500, "\n".join(lines) + f"\n{endpoint} check failed\n")
    if verbose:
        return ProbeResult(200, "\n".join(lines) + f"\n{endpoint} check passed\n")
    return ProbeResult(200, "ok")


def run(checks: Mapping[str, Check], excluded: Sequence[str] = ()) -> list[tuple[str, str | None]]:
    """Runs each check not excluded (blocking: a check may touch the store)."""
    out: list[tuple[str, str | None]] = []
    for name, check in checks.items():
        if name in excluded:
            out.append((name, None))
            continue
        try:
            out.append((name, check()))
        except Exception as exc:  # a check that raises has failed
            out.append((name, f"{type(exc).__name__}: {exc}"))
    return out
