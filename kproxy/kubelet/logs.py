"""Container log files as kubelet serves them (`kubectl logs`).

Each container's output goes to `<root>/pods/<uid>/<container>.log`; when the container
restarts, that file becomes `<container>.previous.log` (kubelet keeps one previous run, for
`--previous`) and the new run starts an empty file.

Guarantees:
- `select` is pure: the last `tail_lines` lines (a last line without newline counts), then
  the first `limit_bytes` of those, as the kubelet's log options apply them;
- `follow` yields what is appended to a file until the writer is gone, then what is left,
  and ends; it never yields an empty chunk.
"""
from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator, Callable

PREVIOUS_SUFFIX = ".previous.log"
FOLLOW_POLL = 0.2  # how often a followed file is looked at for new output
READ_CHUNK = 64 * 1024


def log_path(root_dir: str, uid: str, container: str, previous: bool = False) -> str:
    """The file of a container's current run, or of its previous one."""
    return os.path.join(root_dir, "pods", uid, container + (PREVIOUS_SUFFIX if previous else ".log"))


def keep_previous(current: str) -> None:
    """Makes the current run's file the previous one (replacing an older one); the next run
    then writes a new file. Nothing happens when there is no current file."""
    if current.endswith(".log") and os.path.exists(current):
        os.replace(current, current[: -len(".log")] + PREVIOUS_SUFFIX)


def select(data: bytes, tail_lines: int | None = None, limit_bytes: int | None = None) -> bytes:
    """The part of `data` a request with tailLines / limitBytes gets."""
    if tail_lines is not None:
        if tail_lines <= 0:
            return b""
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail_lines:])
    if limit_bytes is not None and len(data) > limit_bytes:
        data = data[:limit_bytes]
    return data


async def follow(path: str, offset: int, running: Callable[[], bool]) -> AsyncIterator[bytes]:
    """What is written to `path` after `offset`, as it comes, while `running()` holds;
    then the rest, and the end. A missing file ends it at once."""
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        f.seek(offset)
        while True:
            alive = running()  # looked at before reading: output written before an exit is not lost
            chunk = f.read(READ_CHUNK)
            if chunk:
                yield chunk
                continue
            if not alive:
                return
            await asyncio.sleep(FOLLOW_POLL)
