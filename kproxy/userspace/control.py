"""The agent's handle on the userspace proxy process of its namespace (daemon.py).

ProxyControl connects to the daemon's abstract control socket from inside the namespace and
starts the daemon first when none runs there. Every call is one JSON request line and one
answer line; a daemon error or a lost daemon raises ProxyControlError (the agent turns it into
ApplyError, and the next sync, a full one, starts a new daemon when needed).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Mapping

from kproxy.agent.protocols import Namespace
from kproxy.userspace.daemon import CONTROL_NAME, spec_to_json
from kproxy.userspace.plan import ListenerSpec
from kproxy.userspace.proxy import ListenerInfo

START_TIMEOUT = 20.0
CALL_TIMEOUT = 60.0
LOG_DIR = "/run/kproxy"


class ProxyControlError(Exception):
    pass


def _connect() -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(CONTROL_NAME)
    except OSError:
        s.close()
        raise
    return s


class ProxyControl:
    def __init__(self, netns: Namespace, balancer: str = "maglev", udp_idle_timeout: float = 60.0) -> None:
        self.netns = netns
        self.balancer = balancer
        self.udp_idle_timeout = udp_idle_timeout
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._lock = threading.Lock()
        self._child: subprocess.Popen | None = None

    # -- connection

    def _ensure(self, start: bool) -> bool:
        if self._sock is not None:
            return True
        try:
            sock = self.netns.run(_connect)
        except OSError:
            if not start:
                return False
            sock = self._start()
        sock.settimeout(CALL_TIMEOUT)
        self._sock, self._file = sock, sock.makefile("rwb")
        return True

    def _start(self) -> socket.socket:
        argv = [sys.executable, "-m", "kproxy.userspace.daemon", "--balancer", self.balancer,
                "--udp-idle-timeout", str(self.udp_idle_timeout)]
        if self.netns.name:
            argv += ["--netns", self.netns.name]
        os.makedirs(LOG_DIR, exist_ok=True)
        log_path = os.path.join(LOG_DIR, f"userspace-{self.netns.name or 'host'}.log")
        with open(log_path, "ab") as log:
            # Own session: the proxy outlives the agent (a restarted agent reattaches to it).
            self._child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                           start_new_session=True, close_fds=True, cwd="/")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return self.netns.run(_connect)
            except OSError:
                if self._child.poll() not in (None, 0) or time.monotonic() > deadline:
                    raise ProxyControlError(f"the userspace proxy did not start (see {log_path})") from None
                time.sleep(0.05)

    def _drop(self) -> None:
        for closable in (self._file, self._sock):
            if closable is not None:
                try:
                    closable.close()
                except OSError:
                    pass
        self._sock = self._file = None

    def call(self, op: str, start: bool = True, **fields: Any) -> dict[str, Any] | None:
        """One request; None when no daemon runs and `start` is false."""
        with self._lock:
            if not self._ensure(start):
                return None
            try:
                self._file.write(json.dumps({"op": op, **fields}).encode() + b"\n")
                self._file.flush()
                line = self._file.readline()
            except OSError as exc:
                self._drop()
                raise ProxyControlError(f"userspace proxy connection: {exc}") from None
            if not line:
                self._drop()
                raise ProxyControlError("the userspace proxy went away")
            answer = json.loads(line)
            if "error" in answer:
                raise ProxyControlError(f"userspace proxy: {answer['error']}")
            return answer

    # -- operations

    def update(self, listeners: Mapping[str, ListenerSpec], bind_ip: str | None,
               skipped: tuple[tuple[str, str], ...] = ()) -> dict[str, int]:
        """Opens/updates the listeners; returns their ports. `skipped` ((ServicePort key, reason)
        the plan does not program) is kept by the proxy process for listeners_and_skipped()."""
        answer = self.call("update", listeners=[spec_to_json(s) for s in listeners.values()], bind=bind_ip,
                           balancer=self.balancer, udp_idle_timeout=self.udp_idle_timeout,
                           skipped=[list(s) for s in skipped])
        return {k: int(v) for k, v in answer["ports"].items()}  # type: ignore[index]

    def retire(self, keep: set[str]) -> list[str]:
        return list(self.call("retire", keep=sorted(keep))["closed"])  # type: ignore[index]

    def listeners(self) -> list[ListenerInfo]:
        return self.listeners_and_skipped()[0]

    def listeners_and_skipped(self) -> tuple[list[ListenerInfo], list[tuple[str, str]]]:
        """The open listeners, and the ServicePorts the last update did not program (with why)."""
        answer = self.call("listeners", start=False)
        if answer is None:
            return [], []
        listeners = [ListenerInfo(**(d | {"endpoints": tuple(d["endpoints"])})) for d in answer["listeners"]]
        return listeners, [(str(k), str(why)) for k, why in answer.get("skipped", ())]

    def stop_daemon(self) -> bool:
        """Stops the namespace's proxy (if one runs); True when one was stopped."""
        try:
            answer = self.call("stop", start=False)
        except ProxyControlError:
            return False
        self.close()
        deadline = time.monotonic() + 10
        while answer is not None and time.monotonic() < deadline:  # gone once its name is free
            try:
                self.netns.run(_connect).close()
            except OSError:
                break
            time.sleep(0.05)
        if self._child is not None:
            self._child.poll()
        return answer is not None

    def close(self) -> None:
        """Closes our connection; the daemon keeps running."""
        with self._lock:
            self._drop()
        if self._child is not None:
            self._child.poll()  # reap it if it already exited
