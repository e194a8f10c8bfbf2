"""The log shim: holds a container's stdout and stderr pipes and writes what comes out of them
to the container's log file in the CRI logging format kubelet reads, one record a line:

    2026-12-07T23:47:54.225123456Z stdout F the line
    2026-12-07T23:47:54.225130001Z stderr P a long line's first part, continued in the next record

It is its own process (`python -I -S logshim.py LOG_FD OUT_FD ERR_FD`, started by the process
runtime beside each container, like a container runtime's shim), so output keeps its times
and keeps flowing while the kubelet restarts. It imports nothing of kproxy: it starts fast.
It ends when both pipes are closed (the container and everything it started have exited).
"""
from __future__ import annotations

import os
import selectors
import sys
import time

MAX_RECORD = 16 * 1024  # a longer line is cut into partial (P) records, as containerd does
READ_CHUNK = 64 * 1024


def timestamp(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds, fixed width (so the strings sort as the times do)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def records(stream: str, pending: bytes, data: bytes, stamp: str, eof: bool) -> tuple[bytes, bytes]:
    """(records to write, bytes still waiting for their newline) after `data` arrived on a
    stream that had `pending` bytes of an unfinished line."""
    buf = pending + data
    out = []
    prefix = f"{stamp} {stream} ".encode()
    while True:
        nl = buf.find(b"\n")
        if nl < 0 or nl > MAX_RECORD:
            if len(buf) > MAX_RECORD:
                out.append(prefix + b"P " + buf[:MAX_RECORD] + b"\n")
                buf = buf[MAX_RECORD:]
                continue
            break
        out.append(prefix + b"F " + buf[:nl] + b"\n")
        buf = buf[nl + 1:]
    if eof and buf:  # the last line without its newline: a full record, as containerd writes it
        out.append(prefix + b"F " + buf + b"\n")
        buf = b""
    return b"".join(out), buf


def run(log_fd: int, fds: dict[int, str]) -> None:
    """Copies the pipes `fds` (fd -> stream name) to the log file open (append) at `log_fd`."""
    pending = {fd: b"" for fd in fds}
    sel = selectors.DefaultSelector()
    for fd in fds:
        sel.register(fd, selectors.EVENT_READ)
    with open(log_fd, "ab", buffering=0) as log:
        while pending:
            for key, _ in sel.select():
                fd = int(key.fd)
                data = os.read(fd, READ_CHUNK)
                eof = not data
                out, pending[fd] = records(fds[fd], pending[fd], data, timestamp(time.time_ns()), eof)
                if out:
                    log.write(out)
                if eof:
                    sel.unregister(fd)
                    os.close(fd)
                    del pending[fd]


if __name__ == "__main__":
    run(int(sys.argv[1]), {int(sys.argv[2]): "stdout", int(sys.argv[3]): "stderr"})
