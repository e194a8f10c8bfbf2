"""Container log files as kubelet serves them (`kubectl logs`).

Each container's output is written by its log shim (kproxy.kubelet.logshim) to
`<root>/pods/<uid>/<container>.log` in the CRI format, a record per line: time, stream, P/F
(partial/full line), content. When the container restarts, that file becomes
`<container>.previous.log` (kubelet keeps one previous run, for `--previous`) and the new run
starts an empty file.

Guarantees:
- `parse` and `render` are pure: records are read only up to the last complete one (a shim
  may be writing the next), and partial records join the full one that ends their line;
- `select` applies the log options as kubelet does: lines since a time, the last
  `tail_lines` of those, rendered (with their times when `timestamps`), then the first
  `limit_bytes` of that;
- `follow` yields what is appended to a file until the writer is gone, then what is left,
  and ends; it never yields an empty chunk.
"""
from __future__ import annotations

import asyncio
import datetime
import os
from dataclasses import dataclass
from typing import AsyncIterator, Callable

PREVIOUS_SUFFIX = ".previous.log"
FOLLOW_POLL = 0.2  # how often a followed file is looked at for new output
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class LogLine:
    time: str  # RFC 3339 with nanoseconds, fixed width: the strings compare as the times
    stream: str  # stdout or stderr
    content: bytes  # without its newline


def log_path(root_dir: str, uid: str, container: str, previous: bool = False) -> str:
    """The file of a container's current run, or of its previous one."""
    return os.path.join(root_dir, "pods", uid, container + (PREVIOUS_SUFFIX if previous else ".log"))


def keep_previous(current: str) -> None:
    """Makes the current run's file the previous one (replacing an older one); the next run
    then writes a new file. Nothing happens when there is no current file."""
    if current.endswith(".log") and os.path.exists(current):
        os.replace(current, current[: -len(".log")] + PREVIOUS_SUFFIX)


def parse(data: bytes) -> tuple[list[LogLine], int]:
    """The lines of CRI log records in `data`, and how many bytes of it they used (a record
    without its newline yet is left for later; so is a line still made of partial records)."""
    lines: list[LogLine] = []
    used = 0
    start = 0
    parts: list[bytes] = []
    first_time = ""
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            break
        fields = data[start:end].split(b" ", 3)
        start = end + 1
        if len(fields) < 3:
            continue  # not a record: skipped
        stamp, stream, tag = (f.decode("ascii", "replace") for f in fields[:3])
        content = fields[3] if len(fields) > 3 else b""
        first_time = first_time or stamp
        parts.append(content)
        if tag == "P":
            continue
        lines.append(LogLine(first_time, stream, b"".join(parts)))
        parts, first_time, used = [], "", start
    return lines, used


def render(lines: list[LogLine], timestamps: bool = False) -> bytes:
    return b"".join((f"{ln.time} ".encode() if timestamps else b"") + ln.content + b"\n" for ln in lines)


def since_cutoff(since_seconds: int | None, since_time: str | None, now: datetime.datetime) -> str | None:
    """The earliest time (in the records' form) a request with sinceSeconds or sinceTime wants;
    raises ValueError for a sinceTime that is not RFC 3339."""
    if since_time:
        when = datetime.datetime.fromisoformat(since_time.replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise ValueError(f"sinceTime {since_time!r} has no time zone")
    elif since_seconds is not None:
        when = now - datetime.timedelta(seconds=since_seconds)
    else:
        return None
    utc = when.astimezone(datetime.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond * 1000:09d}Z"


def select(lines: list[LogLine], tail_lines: int | None = None, limit_bytes: int | None = None,
           timestamps: bool = False, since: str | None = None) -> bytes:
    """The part of a container's log lines a request gets."""
    if since is not None:
        lines = [ln for ln in lines if ln.time >= since]
    if tail_lines is not None:
        lines = lines[-tail_lines:] if tail_lines > 0 else []
    data = render(lines, timestamps)
    if limit_bytes is not None and len(data) > limit_bytes:
        data = data[:limit_bytes]
    return data


async def follow(path: str, offset: int, running: Callable[[], bool]) -> AsyncIterator[list[LogLine]]:
    """The lines written to `path` after `offset`, as they come, while `running()` holds;
    then the rest, and the end. A missing file ends it at once."""
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        f.seek(offset)
        buf = b""
        while True:
            alive = running()  # looked at before reading: output written before an exit is not lost
            chunk = f.read(READ_CHUNK)
            if chunk:
                buf += chunk
                lines, used = parse(buf)
                buf = buf[used:]
                if lines:
                    yield lines
                continue
            if not alive:
                return
            await asyncio.sleep(FOLLOW_POLL)
