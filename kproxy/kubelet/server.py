"""The kubelet's HTTPS server (port 10250): container logs, exec and port-forward, for the
apiserver's pods/log, pods/exec and pods/portforward.

    GET /containerLogs/{namespace}/{pod}/{container}?follow=&previous=&tailLines=&limitBytes=&timestamps=
        &sinceSeconds=&sinceTime=
    GET /exec/{namespace}/{pod}/{container}?command=..&stdin=&stdout=&stderr=&tty=   (WebSocket)
    GET /portForward/{namespace}/{pod}?port=..   (WebSocket: kproxy.kubelet.portforward)
    GET /healthz

Guarantees:
- TLS with the node's serving certificate; a client certificate is required and must chain
  to the client CA (the cluster CA). Only the apiserver's kubelet-client identity (CN
  kube-apiserver-kubelet-client, as kubeadm issues it) is authorised: kproxy's kubelet makes
  no SubjectAccessReview, so every other client gets 403 (401 without a certificate);
- errors are v1 Status objects (JSON), never a traceback; connections pass the same gate as
  the apiserver's (kproxy.listener), so silent or slow peers cannot use the kubelet up;
- exec speaks the WebSocket remotecommand protocol (kproxy.kubelet.execstream) and runs the
  command in the pod's network namespace with the container's environment, on a pty when
  tty=true; the process is killed when the client goes away.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from typing import Any, Callable, Protocol

from aiohttp import web

from kproxy.api import status as st
from kproxy.kubelet import execstream, logs, portforward
from kproxy.listener import ConnectionLimits, GatedSite, listen_socket
from kproxy.netns import NetNS

log = logging.getLogger(__name__)

APISERVER_CLIENT = "kube-apiserver-kubelet-client"
DEFAULT_PORT = 10250


class RunningContainer(Protocol):
    """What the server needs of one container of a pod worker (kproxy.kubelet.podworker)."""

    spec: dict
    record: Any  # its ContainerRecord: name, waiting reason
    process: Any  # a ContainerProcess while it runs, else None


class PodView(Protocol):
    """What the server needs of a pod worker."""

    uid: str
    name: str
    sandbox: Any  # a Sandbox (netns, ip) once the pod's network is up

    @property
    def every_container(self) -> list[Any]: ...  # RunningContainer each


# (namespace, name) -> the pod worker running that pod on this node, or None
PodLookup = Callable[[str, str], "PodView | None"]


def _status_response(status: dict) -> web.Response:
    return web.json_response(status, status=int(status.get("code") or 500))


def _query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true")


def _query_int(request: web.Request, name: str, minimum: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise st.bad_request(f"{name}: invalid value {raw!r}: must be an integer") from None
    if value < minimum:
        raise st.bad_request(f"{name}: invalid value {value}: must be at least {minimum}")
    return value


def peer_user(request: web.Request) -> str | None:
    """The CommonName of the client certificate the TLS handshake verified, None without one."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def _still_writing(process: Any, request: web.Request) -> Callable[[], bool]:
    """Whether a followed log still grows: its container runs and the client is still there."""
    def check() -> bool:
        transport = request.transport
        return process is not None and process.poll() is None and transport is not None \
            and not transport.is_closing()
    return check


class KubeletServer:
    def __init__(self, pods: PodLookup, root_dir: str, tls: ssl.SSLContext):
        self.pods = pods
        self.root_dir = root_dir
        self.tls = tls
        self.limits = ConnectionLimits()
        self._site: GatedSite | None = None
        self._sessions: set[asyncio.Task] = set()

    @staticmethod
    def tls_context(cert_file: str, key_file: str, client_ca_pem: bytes) -> ssl.SSLContext:
        """TLS 1.2+ with the serving pair; client certificates are required and checked
        against `client_ca_pem`."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert_file, key_file)
        ctx.load_verify_locations(cadata=client_ca_pem.decode("ascii", "replace"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._authorize])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", self._exec)
        app.router.add_route("*", "/portForward/{namespace}/{pod}", self._port_forward)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def start(self, netns: NetNS, host: str, port: int) -> None:
        """Listens on host:port inside `netns` (the node's namespace), behind the connection
        gate the apiserver's port has (kproxy.listener: silent and half-open peers are bounded)."""
        sock = await netns.arun(listen_socket, host, port)
        self._site = GatedSite(self.app(), sock, self.limits, self.tls)
        bound = await self._site.start()
        log.info("kubelet server listening on %s:%d", host, bound[1])

    async def stop(self) -> None:
        for task in list(self._sessions):
            task.cancel()
        if self._site is not None:
            await self._site.stop()
            self._site = None

    # -- middleware ----------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except st.ApiError as exc:
            return _status_response(exc.status)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("kubelet server: error serving %s", request.path)
            return _status_response(st.internal("an internal error occurred in the kubelet").status)

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Any) -> web.StreamResponse:
        user = peer_user(request)
        if user is None:
            raise st.ApiError(st.status(401, "Unauthorized", "Unauthorized"))
        if user != APISERVER_CLIENT:
            raise st.forbidden(f"Forbidden (user={user}, verb={request.method.lower()}, resource=nodes, "
                               f"subresource(s)=[proxy]): only the apiserver ({APISERVER_CLIENT}) may use "
                               f"the kubelet's API")
        return await handler(request)

    # -- lookups -------------------------------------------------------------------------

    def _container(self, request: web.Request) -> tuple[PodView, Any]:
        ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        pod = self.pods(ns, name)
        if pod is None:
            raise st.not_found("pods", name)
        for c in pod.every_container:
            if c.record.name == container:
                return pod, c
        raise st.bad_request(f"container {container} is not valid for pod {name}")

    # -- handlers ------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _not_found(self, request: web.Request) -> web.Response:
        raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource"))

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        pod, c = self._container(request)
        previous, follow = _query_bool(request, "previous"), _query_bool(request, "follow")
        timestamps = _query_bool(request, "timestamps")
        tail = _query_int(request, "tailLines", 0)
        limit = _query_int(request, "limitBytes", 1)
        try:
            since = logs.since_cutoff(_query_int(request, "sinceSeconds", 1), request.query.get("sinceTime"),
                                      datetime.datetime.now(datetime.timezone.utc))
        except ValueError as exc:
            raise st.bad_request(f"sinceTime: {exc}") from None
        path = logs.log_path(self.root_dir, pod.uid, c.record.name, previous=previous)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if previous:
                raise st.bad_request(f'previous terminated container "{c.record.name}" in pod "{pod.name}" '
                                     f"not found") from None
            raise st.bad_request(f'container "{c.record.name}" in pod "{pod.name}" is waiting to start: '
                                 f"{c.record.reason or 'ContainerCreating'}") from None
        lines, used = logs.parse(data)
        body = logs.select(lines, tail, limit, timestamps, since)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        if body:
            await response.write(body)
        if follow and not previous and (limit is None or len(body) < limit):
            budget = None if limit is None else limit - len(body)
            async for more in logs.follow(path, used, _still_writing(c.process, request)):
                chunk = logs.select(more, timestamps=timestamps, since=since)
                if budget is not None:
                    chunk = chunk[:budget]
                    budget -= len(chunk)
                if chunk:
                    await response.write(chunk)
                if budget == 0:
                    break
        await response.write_eof()
        return response

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        options = execstream.ExecOptions.from_query(request.query)
        protocol = execstream.choose_protocol(request.headers.get("Sec-WebSocket-Protocol", ""))
        if protocol is None:
            raise st.bad_request(f"exec needs a WebSocket upgrade with one of the subprotocols "
                                 f"{', '.join(execstream.PROTOCOLS)}")
        pod, c = self._container(request)
        ws = web.WebSocketResponse(protocols=execstream.PROTOCOLS, autoping=True, heartbeat=None)
        await ws.prepare(request)
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        process = c.process
        try:
            await execstream.serve(ws, options, self._exec_target(pod, c),
                                   alive=lambda: process is not None and process.poll() is None)
        finally:
            if task is not None:
                self._sessions.discard(task)
            await ws.close()
        return ws

    @staticmethod
    def _exec_target(pod: PodView, c: Any) -> execstream.Target | str:
        """Where the command runs, or why it cannot (the container is not running)."""
        process = c.process
        if pod.sandbox is None or process is None or process.poll() is not None:
            return f'container not found ("{c.record.name}")'
        return execstream.Target(prefix=tuple(process.exec_prefix()), env=dict(process.env),
                                 cwd=c.spec.get("workingDir") or "/", root=getattr(process, "exec_root", "/"))

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        protocol = portforward.choose_protocol(request.headers.get("Sec-WebSocket-Protocol", ""))
        if protocol is None:
            raise st.bad_request(f"port-forward needs a WebSocket upgrade with one of the subprotocols "
                                 f"{', '.join(portforward.PROTOCOLS)}")
        ports = portforward.parse_ports(request.query.getall(portforward.PORT_QUERY, [])) \
            if protocol == portforward.V4 else ()
        name = request.match_info["pod"]
        pod = self.pods(request.match_info["namespace"], name)
        if pod is None:
            raise st.not_found("pods", name)
        if pod.sandbox is None:
            raise st.bad_request(f"pod {name} is not running: its sandbox is not ready")
        ws = web.WebSocketResponse(protocols=portforward.PROTOCOLS, autoping=True, heartbeat=None)
        await ws.prepare(request)
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            await portforward.serve(ws, protocol, ports, portforward.netns_dialer(pod.sandbox.netns),
                                    pod.sandbox.netns)
        finally:
            if task is not None:
                self._sessions.discard(task)
            await ws.close()
        return ws
