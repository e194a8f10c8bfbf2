"""`exec` over WebSocket: the remotecommand stream protocol (v4/v5.channel.k8s.io) on one
side, a process in the pod's network namespace on the other.

The protocol (k8s.io/apimachinery util/remotecommand, client-go's WebSocket executor): every
message is binary, its first byte the channel: 0 stdin, 1 stdout, 2 stderr, 3 error (one v1
Status JSON, written once when the command ends: Success, or Failure with reason
NonZeroExitCode and the exit code as the message of a cause with reason ExitCode), 4 resize
(JSON {"Width": w, "Height": h}); v5 adds 255, "close the channel in the next byte" (the
client closes stdin with [255, 0]).

Guarantees:
- the error channel always gets one Status before the stream ends (also when the command
  cannot start);
- a client that goes away kills the command (its whole session);
- all output written before the command exits reaches the client before the Status.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import pty
import signal
import struct
import termios
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from aiohttp import WSMsgType, web

from kproxy.api import status as st
from kproxy.kubelet.runtime import exit_code, missing_program

log = logging.getLogger(__name__)

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)  # the ones served, preferred first
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5: close the channel named by the next byte
READ_CHUNK = 32 * 1024
EOT = b"\x04"  # what closing stdin means on a terminal
STREAM_FLAGS = ("stdin", "stdout", "stderr", "tty")
ALIVE_POLL = 0.5  # how often an exec looks whether its container still runs


@dataclass(frozen=True)
class ExecOptions:
    command: tuple[str, ...]
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> "ExecOptions":
        """The options of an exec request, with kubelet's checks (ApiError 400)."""
        getall = getattr(query, "getall", None)
        command = tuple(getall("command", []) if getall else ([query["command"]] if "command" in query else []))
        flags = {name: str(query.get(name, "")).lower() in ("1", "true") for name in STREAM_FLAGS}
        if not command:
            raise st.bad_request("you must specify at least 1 command")
        if not (flags["stdin"] or flags["stdout"] or flags["stderr"]):
            raise st.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        if flags["tty"] and flags["stderr"]:
            raise st.bad_request("tty and stderr cannot both be true")
        return cls(command, **flags)


@dataclass(frozen=True)
class Target:
    """Where an exec runs: the command prefix that enters the container's namespaces (its
    ContainerProcess.exec_prefix(): the pod's network, and its mounts when it has volumes), the
    container's environment and workingDir."""

    prefix: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str = "/"
    root: str = "/"  # where the command's program is looked up (the CRI runtime: the container's root)


def choose_protocol(offered: str) -> str | None:
    """The first subprotocol of the client's Sec-WebSocket-Protocol list that is served."""
    for name in (p.strip() for p in offered.split(",")):
        if name in PROTOCOLS:
            return name
    return None


def exit_status(rc: int, command: tuple[str, ...]) -> dict[str, Any]:
    """The error channel's Status for a command that exited with `rc`."""
    if rc == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {rc}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(rc)}]}}


def error_status(message: str) -> dict[str, Any]:
    """The error channel's Status for a command that could not run."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
            "details": {"causes": [{"message": message}]}, "code": 500}


def message_bytes(msg: Any) -> bytes | None:
    """A client message's bytes: binary messages as they are, text ones (the Python client
    writes str to a channel as a text message, channel byte first) UTF-8 encoded, as the
    apiserver's wsstream reads both; None for anything else."""
    if msg.type == WSMsgType.BINARY:
        return msg.data
    if msg.type == WSMsgType.TEXT:
        return msg.data.encode()
    return None


def terminal_size(payload: bytes) -> tuple[int, int] | None:
    """(columns, rows) of a resize message, None when it is not one."""
    try:
        size = json.loads(payload)
        width, height = int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return None
    return (width, height) if 0 <= width < 65536 and 0 <= height < 65536 else None


class _Session:
    """One running exec: the process, its streams and the pumps between them and the socket."""

    def __init__(self, ws: web.WebSocketResponse, options: ExecOptions):
        self.ws = ws
        self.options = options
        self.proc: asyncio.subprocess.Process | None = None
        self.master: int | None = None  # the pty's master side when tty
        self.stdin: asyncio.StreamWriter | None = None
        self.outputs: list[tuple[int, asyncio.StreamReader]] = []

    async def start(self, target: Target) -> None:
        argv = [*target.prefix, *self.options.command]
        env, cwd = dict(target.env), target.cwd if os.path.isdir(target.cwd) else "/"
        if self.options.tty:
            await self._start_tty(argv, env, cwd)
            return
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        self.proc = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=cwd, start_new_session=True, stdin=pipe if self.options.stdin else null,
            stdout=pipe if self.options.stdout else null, stderr=pipe if self.options.stderr else null)
        self.stdin = self.proc.stdin
        self.outputs = [(ch, r) for ch, r in ((STDOUT, self.proc.stdout), (STDERR, self.proc.stderr)) if r is not None]

    async def _start_tty(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        loop = asyncio.get_running_loop()
        master, slave = pty.openpty()
        self.master = master
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, env={"TERM": "xterm", **env}, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True, preexec_fn=_controlling_tty)
        finally:
            os.close(slave)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(master, "rb", 0))
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                            os.fdopen(os.dup(master), "wb", 0))
        self.stdin = asyncio.StreamWriter(transport, protocol, None, loop) if self.options.stdin else None
        if self.stdin is None:
            transport.close()
        self.outputs = [(STDOUT, reader)] if self.options.stdout else []

    async def pump_out(self, channel: int, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                chunk = await reader.read(READ_CHUNK)
            except OSError:  # a pty's master reads EIO once the command has exited
                return
            if not chunk:
                return
            await self.ws.send_bytes(bytes([channel]) + chunk)

    async def pump_in(self) -> None:
        """Reads the client's messages until it closes the socket."""
        async for msg in self.ws:
            data = message_bytes(msg)
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and self.stdin is not None:
                self.stdin.write(payload)
                try:
                    await self.stdin.drain()
                except (ConnectionError, OSError):
                    self.stdin = None  # the command closed its stdin
            elif channel == RESIZE and self.master is not None:
                size = terminal_size(payload)
                if size is not None:
                    fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
            elif channel == CLOSE and payload[:1] == bytes([STDIN]):
                self.close_stdin()

    def close_stdin(self) -> None:
        if self.stdin is None:
            return
        if self.options.tty:
            self.stdin.write(EOT)
        else:
            self.stdin.close()
        if not self.options.tty:
            self.stdin = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _controlling_tty() -> None:
    """In the child, after setsid: its terminal (stdin) becomes the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def serve(ws: web.WebSocketResponse, options: ExecOptions, target: Target | str,
                alive: Callable[[], bool] = lambda: True) -> None:
    """Runs one exec on an open WebSocket; `target` is a message when the container cannot
    take one. Returns when the command has ended and its Status is sent, or the client left,
    or the container stopped (`alive()` false: its exec processes die with it)."""
    if isinstance(target, str):
        await _send_status(ws, error_status(target))
        return
    missing = missing_program(options.command, target.env, target.root)
    if missing:
        await _send_status(ws, error_status(f"OCI runtime exec failed: exec failed: unable to start container "
                                            f"process: {missing}: unknown"))
        return
    session = _Session(ws, options)
    try:
        await session.start(target)
    except OSError as exc:
        await _send_status(ws, error_status(f"cannot start the command: {exc}"))
        return
    assert session.proc is not None
    client = asyncio.create_task(session.pump_in())
    command = asyncio.create_task(_run_to_end(session))
    container = asyncio.create_task(_until_false(alive))
    try:
        await asyncio.wait({client, command, container}, return_when=asyncio.FIRST_COMPLETED)
        if container.done() and not command.done():  # the container stopped: so does its exec
            session.kill()
        elif not command.done():  # the client went away: the command goes too
            session.kill()
            await asyncio.gather(command, return_exceptions=True)
            return
        await command
        await _send_status(ws, exit_status(exit_code(session.proc.returncode or 0), options.command))
    except (ConnectionError, RuntimeError) as exc:  # the socket closed under a send
        log.info("exec %s: client gone: %s", options.command[:1], exc)
        session.kill()
    finally:
        for task in (client, command, container):
            task.cancel()
        await asyncio.gather(client, command, container, return_exceptions=True)
        session.kill()


async def _until_false(check: Callable[[], bool]) -> None:
    while check():
        await asyncio.sleep(ALIVE_POLL)


async def _run_to_end(session: _Session) -> None:
    """The command's exit and the end of all its output."""
    assert session.proc is not None
    await asyncio.gather(session.proc.wait(), *(session.pump_out(ch, r) for ch, r in session.outputs))


async def _send_status(ws: web.WebSocketResponse, status: dict[str, Any]) -> None:
    try:
        await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
    except (ConnectionError, RuntimeError):
        pass
