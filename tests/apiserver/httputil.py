"""A tiny blocking HTTP(S) client for apiserver tests: raw requests and watch streams over real
sockets, independent of kproxy.client (so the apiserver is tested on its own).

For an https URL give `ssl_context` (see `client_tls_context`), e.g. the admin identity:
    Http(server.url, ssl_context=client_tls_context(server.data_dir, "admin"))
"""
from __future__ import annotations

import copy
import http.client
import json
import os
import socket
import ssl
import urllib.parse
from typing import Any, Iterator

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"  # Accept: a list or object as a meta.k8s.io Table


def named(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """A deep copy of a sample object with metadata.name set."""
    out = copy.deepcopy(obj)
    out["metadata"]["name"] = name
    return out



def client_tls_context(data_dir: Any, identity: str | None = "admin") -> ssl.SSLContext:
    """Trusts the apiserver's cluster CA (DATA_DIR/pki/ca.crt) and presents the client
    certificate of `identity` (DATA_DIR/pki/<identity>.crt/.key); None: no certificate."""
    pki = os.path.join(str(data_dir), "pki")
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    if identity is not None:
        ctx.load_cert_chain(os.path.join(pki, f"{identity}.crt"), os.path.join(pki, f"{identity}.key"))
    return ctx


def _connection(host: str, port: int, timeout: float, ssl_context: ssl.SSLContext | None) -> http.client.HTTPConnection:
    if ssl_context is not None:
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
    return http.client.HTTPConnection(host, port, timeout=timeout)


class Http:
    def __init__(self, url: str, timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "https" and ssl_context is None:
            raise ValueError(f"{url} is https: give ssl_context (client_tls_context(data_dir))")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.timeout = timeout
        self.ssl_context = ssl_context if parsed.scheme == "https" else None

    def clone(self) -> "Http":
        """Another client to the same server with the same TLS identity (e.g. one per thread)."""
        return Http(f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}", self.timeout,
                    self.ssl_context)

    def raw(self, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = _connection(self.host, self.port, self.timeout, self.ssl_context)
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
        return WatchStream(self.host, self.port, path, timeout, self.ssl_context)


class WatchStream:
    """Reads newline-delimited watch events; `next()` raises TimeoutError after `timeout`."""

    def __init__(self, host: str, port: int, path: str, timeout: float, ssl_context: ssl.SSLContext | None = None):
        self.conn = _connection(host, port, timeout, ssl_context)
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
