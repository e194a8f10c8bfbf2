"""A tiny blocking HTTP client for apiserver tests: raw requests and watch streams over real
sockets, independent of kproxy.client (so the apiserver is tested on its own)."""
from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from typing import Any, Iterator


class Http:
    def __init__(self, url: str, timeout: float = 30.0):
        parsed = urllib.parse.urlparse(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.timeout = timeout

    def raw(self, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """JSON in, JSON out: returns (HTTP status, decoded body)."""
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs["Content-Type"] = content_type
        status, _, raw = self.raw(method, path, data, hdrs)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        status, obj = self.call(method, path, body, content_type)
        if status >= 300:
            raise AssertionError(f"{method} {path} -> {status}: {obj}")
        return obj

    def watch(self, path: str, timeout: float = 30.0) -> "WatchStream":
        return WatchStream(self.host, self.port, path, timeout)


class WatchStream:
    """Reads newline-delimited watch events; `next()` raises TimeoutError after `timeout`."""

    def __init__(self, host: str, port: int, path: str, timeout: float):
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.conn.request("GET", path)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next(self) -> dict[str, Any] | None:
        """The next event, or None when the server ended the stream."""
        try:
            line = self.resp.readline()
        except socket.timeout:
            raise TimeoutError("no watch event in time") from None
        if not line:
            return None
        return json.loads(line)

    def events(self) -> Iterator[dict[str, Any]]:
        while True:
            ev = self.next()
            if ev is None:
                return
            yield ev

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "WatchStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
