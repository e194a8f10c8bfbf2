"""Run the real `kproxy agent` process for tests, with the test-only "record" backend.

    with AgentProcess(tmp_path, kubeconfig, netns_name, extra_args=[...]) as agent:
        agent.wait_record(lambda r: ...)   # bounded poll over the applies it recorded
        agent.http("healthz", "/healthz")  # HTTP request made from inside the agent's netns

stop() sends SIGTERM and waits; the context manager always stops (then kills) the process.
"""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Callable, Sequence

from kproxy.netns import NetNS

REPO = pathlib.Path(__file__).resolve().parents[2]
HEALTHZ_PORT = 10256
METRICS_PORT = 10249


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Polls `predicate` until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class AgentProcess:
    def __init__(self, tmp_path: pathlib.Path, kubeconfig: str, netns: str | None, *,
                 node_name: str = "node-1", extra_args: Sequence[str] = (),
                 min_sync: str = "100ms", sync: str = "30s") -> None:
        self.dir = pathlib.Path(tmp_path) / f"agent-{node_name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record_file = self.dir / "record.jsonl"
        self.fail_file = self.dir / "fail"
        self.log_path = self.dir / "agent.log"
        self.netns_name = netns
        self.argv = [
            sys.executable, "-m", "kproxy", "agent", "--kubeconfig", kubeconfig, "--node-name", node_name,
            "--backend-module", "tests.agent.recording_backend", "--mode", "record",
            "--healthz-bind-address", f"127.0.0.1:{HEALTHZ_PORT}",
            "--metrics-bind-address", f"127.0.0.1:{METRICS_PORT}",
            "--min-sync-period", min_sync, "--sync-period", sync, "--cluster-cidr", "10.244.0.0/16",
            *(["--netns", netns] if netns else []), *extra_args,
        ]
        self.proc: subprocess.Popen | None = None
        self._ns = NetNS(netns)

    def start(self) -> "AgentProcess":
        env = dict(os.environ, KPROXY_TEST_RECORD_FILE=str(self.record_file),
                   KPROXY_TEST_FAIL_FILE=str(self.fail_file),
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def records(self, op: str = "apply") -> list[dict]:
        try:
            lines = self.record_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [r for r in map(json.loads, lines) if r.get("op") == op]

    def wait_record(self, predicate: Callable[[dict], bool], timeout: float = 30.0, what: str = "a record") -> dict:
        def find():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            for r in reversed(self.records()):
                if predicate(r):
                    return r
            return None
        try:
            return wait_until(find, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nagent log:\n{self.log()[-3000:]}") from None

    def fail_next(self, n: int) -> None:
        self.fail_file.write_text(str(n))

    def http(self, port: int, path: str) -> tuple[int, str]:
        """GET http://127.0.0.1:port/path from inside the agent's netns: (status, body)."""
        def get() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as err:
                return err.code, err.read().decode()
        return self._ns.run(get)

    def http_ready(self, port: int, path: str) -> tuple[int, str] | None:
        try:
            return self.http(port, path)
        except (urllib.error.URLError, ConnectionError, OSError):
            return None

    def netns_inode(self) -> int:
        return self._ns.run(lambda: os.stat("/proc/thread-self/ns/net").st_ino)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, SIGKILL if it does not exit in time; returns the exit code. Idempotent."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def __enter__(self) -> "AgentProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self._ns.close()
