"""Start a real `kproxy apiserver` subprocess for tests (other teams import this too).

    server = start_apiserver(tmp_path)            # controllers on (the default)
    server = start_apiserver(tmp_path, ["--no-controllers"])
    server.kubeconfig, server.url                 # ready to use when start_apiserver returns
    server.kill(); server.restart()               # SIGKILL, then the same data dir and port
    with apiserver_and_client(tmp_path, args) as (server, client): ...   # stopped and closed after

The server is ready when it has written DATA_DIR/admin.kubeconfig; start waits for that with a
deadline and raises with the server's log tail if it does not come up. Always call stop() (the
`apiserver` fixture in tests/apiserver/conftest.py does) so no process outlives the test.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any, Iterator, Sequence

import yaml

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ApiserverError(RuntimeError):
    pass


class ApiserverProcess:
    def __init__(self, data_dir: pathlib.Path, extra_args: Sequence[str] = ()):
        self.data_dir = pathlib.Path(data_dir)
        self.extra_args = list(extra_args)
        self.kubeconfig = str(self.data_dir / "admin.kubeconfig")
        self.log_path = self.data_dir / "apiserver.log"
        self.url = ""
        self.port = 0  # after the first start the same port is reused by restart()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ApiserverProcess":
        if self.proc is not None and self.proc.poll() is None:
            raise ApiserverError("apiserver already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.unlink(self.kubeconfig)
        except FileNotFoundError:
            pass
        argv = [sys.executable, "-m", "kproxy", "apiserver", "--data-dir", str(self.data_dir),
                "--bind", f"127.0.0.1:{self.port}", *self.extra_args]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if os.path.exists(self.kubeconfig):
                with open(self.kubeconfig) as f:
                    doc = yaml.safe_load(f)
                self.url = doc["clusters"][0]["cluster"]["server"]
                self.port = int(self.url.rsplit(":", 1)[1])
                return self
            if self.proc.poll() is not None:
                raise ApiserverError(f"apiserver exited with {self.proc.returncode} before it was ready:\n{self.log_tail()}")
            time.sleep(0.05)
        self.kill()
        raise ApiserverError(f"apiserver not ready within {START_TIMEOUT}s:\n{self.log_tail()}")

    def http(self, identity: str | None = "admin", timeout: float = 30.0):
        """A raw HTTP(S) client (tests.apiserver.httputil.Http) to this server; over https it
        trusts the cluster CA and presents `identity`'s client certificate (None: anonymous)."""
        from tests.apiserver.httputil import Http, client_tls_context
        if self.url.startswith("https://"):
            return Http(self.url, timeout, client_tls_context(self.data_dir, identity))
        return Http(self.url, timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it does not exit in time. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, like a crash. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, *, kill: bool = False) -> "ApiserverProcess":
        """Stops (or kills) and starts again on the same data dir and port."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def __enter__(self) -> "ApiserverProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_apiserver(tmp_path: pathlib.Path | str, extra_args: Sequence[str] = ()) -> ApiserverProcess:
    """Starts an apiserver with its data in tmp_path/apiserver and waits until it is ready."""
    server = ApiserverProcess(pathlib.Path(tmp_path) / "apiserver", extra_args)
    return server.start()


@contextlib.contextmanager
def apiserver_and_client(tmp_path: pathlib.Path | str,
                         extra_args: Sequence[str] = ()) -> Iterator[tuple[ApiserverProcess, Any]]:
    """start_apiserver plus a blocking kproxy.client.sync.Client to it; closes and stops both."""
    from kproxy.client.sync import Client
    server = start_apiserver(tmp_path, extra_args)
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()
