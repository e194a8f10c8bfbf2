"""pods/log, pods/exec and pods/portforward: the apiserver finds the pod's node and proxies the
request to that node's kubelet (kproxy.kubelet.server) with its kubelet-client certificate.

    GET /api/v1/namespaces/NS/pods/NAME/log?container=&follow=&previous=&tailLines=&limitBytes=&timestamps=
        &sinceSeconds=&sinceTime=
    GET /api/v1/namespaces/NS/pods/NAME/exec?container=&command=..&stdin=&stdout=&stderr=&tty=
        (Upgrade: websocket, v5.channel.k8s.io or v4.channel.k8s.io)
    GET /api/v1/namespaces/NS/pods/NAME/portforward?ports=..
        (Upgrade: websocket, v4.channel.k8s.io or SPDY/3.1+portforward.k8s.io: kproxy.kubelet.portforward)

Guarantees:
- the checks kube-apiserver makes come first, with its messages: a container that is not the
  pod's is 400 "container X is not valid for pod Y", a pod with several containers needs one
  named, exec on a pod without a node is 400; logs of a pod without a node are empty;
- the kubelet is reached at the node's InternalIP (then ExternalIP, Hostname) and
  status.daemonEndpoints.kubeletEndpoint.Port, over TLS checked against the cluster CA;
  one it cannot reach is 503 ServiceUnavailable "error dialing backend: ...";
- exec is WebSocket only: kubectl 1.32 speaks it first; its SPDY fallback gets a 400 Status
  saying so; portforward takes WebSocket and kubectl's SPDY/3.1 upgrade (bridged to the
  kubelet's tunnel: kproxy.apiserver.spdyupgrade); what the kubelet sends (the error channel's
  Status too) reaches the client as is; portforward to a pod that is not Running is 400;
- with `netns_dial` (`--kubelet-netns-dial`: the lab, whose nodes are network namespaces of
  this machine) the connection is opened inside the namespace the Node's kproxy.io/node-netns
  annotation names, as if the apiserver had a route to the node.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from typing import Any, Awaitable, Callable, Mapping

import aiohttp
from aiohttp import web

from kproxy.api import status as st
from kproxy.api.resources import NODES, PODS, Resource
from kproxy.apiserver import spdyupgrade
from kproxy.kubelet import portforward
from kproxy.kubelet.execstream import PROTOCOLS, STREAM_FLAGS, choose_protocol
from kproxy.kubelet.node import NETNS_ANNOTATION
from kproxy.netns import NETNS_RUN_DIR, NetNS, NetNSError

log = logging.getLogger(__name__)

SUBRESOURCES = ("log", "exec", "portforward")
LOG_FLAGS = ("follow", "previous")
LOG_NUMBERS = (("tailLines", 0), ("limitBytes", 1), ("sinceSeconds", 1))
ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")
CONNECT_TIMEOUT = 10.0

# reads an object: (resource, namespace, name) -> object; raises ApiError (404)
GetObject = Callable[[Resource, "str | None", str], Awaitable[dict]]


def _names(pod: Mapping[str, Any], field: str) -> list[str]:
    return [str(c.get("name")) for c in (pod.get("spec") or {}).get(field) or () if isinstance(c, dict)]


def pick_container(pod: Mapping[str, Any], requested: str | None) -> str:
    """The container a request is for, checked as kube-apiserver does."""
    name = str((pod.get("metadata") or {}).get("name") or "")
    containers = _names(pod, "containers")
    init = _names(pod, "initContainers")
    if not requested:
        if len(containers) == 1:
            return containers[0]
        message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise st.bad_request(message)
    if requested not in containers + init + _names(pod, "ephemeralContainers"):
        raise st.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def kubelet_endpoint(node: Mapping[str, Any]) -> tuple[str, int]:
    """(address, port) of a node's kubelet server."""
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or () if isinstance(a, dict)}
    host = next((str(addresses[t]) for t in ADDRESS_TYPES if addresses.get(t)), None)
    if host is None:
        raise st.ApiError(st.status(503, "ServiceUnavailable", "error dialing backend: no preferred addresses "
                                    f"found; known addresses: {list(addresses.values())}"))
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise st.ApiError(st.status(503, "ServiceUnavailable", f"error dialing backend: the kubelet of node "
                                    f"{(node.get('metadata') or {}).get('name')} serves no port"))
    return host, port


def _flag(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if value.lower() not in ("true", "false", "1", "0", ""):
        raise st.bad_request(f"{name}: invalid value {value!r}: must be true or false")
    return "true" if value.lower() in ("true", "1") else "false"


def log_query(query: Mapping[str, str]) -> dict[str, str]:
    """The kubelet's containerLogs query for a pods/log request (400 for a bad option)."""
    out = {name: v for name in LOG_FLAGS if (v := _flag(query, name)) is not None}
    for name, minimum in LOG_NUMBERS:
        raw = query.get(name)
        if raw is None:
            continue
        try:
            value = int(raw)
        except ValueError:
            raise st.bad_request(f"{name}: invalid value {raw!r}: must be an integer") from None
        if value < minimum:
            raise st.bad_request(f"{name}: Invalid value: {value}: must be greater than or equal to {minimum}")
        out[name] = str(value)
    if (timestamps := _flag(query, "timestamps")) is not None:
        out["timestamps"] = timestamps
    if query.get("sinceSeconds") and query.get("sinceTime"):
        raise st.bad_request("at most one of sinceTime or sinceSeconds may be specified")
    if query.get("sinceTime"):
        out["sinceTime"] = str(query["sinceTime"])
    return out


def exec_query(query: Any) -> list[tuple[str, str]]:
    """The kubelet's exec query for a pods/exec request: the commands and the stream flags."""
    commands = query.getall("command", [])
    if not commands:
        raise st.bad_request("you must specify at least 1 command")
    return [("command", c) for c in commands] + [(n, v) for n in STREAM_FLAGS if (v := _flag(query, n)) is not None]


def port_forward_query(query: Any, protocol: str) -> list[tuple[str, str]]:
    """The kubelet's portForward query: `ports` (repeated or a comma list) as `port` values;
    the SPDY tunnel names its ports per stream instead."""
    values = query.getall("ports", [])
    if protocol != portforward.V4 and not values:
        return []
    return [(portforward.PORT_QUERY, str(p)) for p in portforward.parse_ports(values)]


def client_tls(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS toward kubelets: their serving certificates chain to the cluster CA; ours is the
    kubelet-client identity."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def _dial_error(node: str, exc: BaseException) -> st.ApiError:
    return st.ApiError(st.status(503, "ServiceUnavailable", f"error dialing backend: the kubelet of node {node}: "
                                 f"{exc or type(exc).__name__}"))


class PodProxy:
    def __init__(self, get: GetObject, tls: ssl.SSLContext, netns_dial: bool = False):
        self.get = get
        self.tls = tls
        self.netns_dial = netns_dial
        # one session per node namespace (name, inode: a namespace made again under the same
        # name is another one), and None for kubelets reached directly
        self._sessions: dict[tuple[str, int] | None, aiohttp.ClientSession] = {}
        self._netns: dict[tuple[str, int], NetNS] = {}

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        for ns in self._netns.values():
            ns.close()
        self._netns.clear()

    def _session(self, node: Mapping[str, Any]) -> aiohttp.ClientSession:
        meta = node.get("metadata") or {}
        netns = (meta.get("annotations") or {}).get(NETNS_ANNOTATION) if self.netns_dial else None
        key = None
        if netns:
            try:
                key = (str(netns), os.stat(os.path.join(NETNS_RUN_DIR, str(netns))).st_ino)
            except (OSError, ValueError) as exc:
                raise _dial_error(str(meta.get("name")), exc) from None
        session = self._sessions.get(key)
        if session is None:
            factory = self._socket_factory(key, str(meta.get("name"))) if key else None
            connector = aiohttp.TCPConnector(ssl=self.tls, socket_factory=factory)
            session = self._sessions[key] = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT))
        return session

    def _socket_factory(self, key: tuple[str, int], node_name: str) -> Callable[[Any], socket.socket]:
        """Makes aiohttp's sockets in the node's namespace (a socket keeps the namespace it was
        created in, so connecting it from the event loop reaches the node)."""
        for old in [k for k in self._netns if k[0] == key[0]]:  # that name's earlier namespace is gone
            self._netns.pop(old).close()
            stale = self._sessions.pop(old, None)
            if stale is not None:
                asyncio.ensure_future(stale.close())
        try:
            ns = self._netns[key] = NetNS(key[0])
        except NetNSError as exc:
            raise _dial_error(node_name, exc) from None

        def factory(addr_info: Any) -> socket.socket:
            family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
            return ns.run(socket.socket, family, type_, proto)
        return factory

    async def handle(self, request: web.Request, namespace: str, name: str, sub: str) -> web.StreamResponse:
        if sub == "log":
            if request.method != "GET":
                raise st.method_not_allowed(f"the server does not allow this method on the requested resource "
                                            f"({request.method})")
            return await self._logs(request, namespace, name)
        if request.method not in ("GET", "POST"):
            raise st.method_not_allowed(f"the server does not allow this method on the requested resource "
                                        f"({request.method})")
        if sub == "portforward":
            return await self._port_forward(request, namespace, name)
        return await self._exec(request, namespace, name)

    async def _target(self, namespace: str, name: str, requested: str | None) -> tuple[dict, str, dict | None]:
        """(pod, container, node or None when the pod has no node yet)."""
        pod = await self.get(PODS, namespace, name)
        container = pick_container(pod, requested)
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = await self.get(NODES, None, node_name) if node_name else None
        return pod, container, node

    async def _reachable(self, node: Mapping[str, Any], url: str) -> None:
        """Raises the dial error when the node's kubelet cannot be reached."""
        try:
            async with self._session(node).get(url) as answer:
                await answer.read()
        except (aiohttp.ClientConnectionError, aiohttp.ClientSSLError, asyncio.TimeoutError, OSError) as exc:
            raise _dial_error(str(node["metadata"]["name"]), exc) from None

    async def _logs(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        query = log_query(request.query)
        pod, container, node = await self._target(namespace, name, request.query.get("container"))
        if node is None:
            return web.Response(text="", content_type="text/plain")
        host, port = kubelet_endpoint(node)
        url = f"https://{_host(host)}:{port}/containerLogs/{namespace}/{name}/{container}"
        node_name = str(node["metadata"]["name"])
        try:
            async with self._session(node).get(url, params=query) as upstream:
                if upstream.status != 200:
                    raise await _kubelet_error(upstream)
                response = web.StreamResponse(headers={"Content-Type": "text/plain"})
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientConnectionError, aiohttp.ClientSSLError, asyncio.TimeoutError, OSError) as exc:
            if isinstance(exc, ConnectionResetError) and request.transport is None:
                raise  # our client went away
            raise _dial_error(node_name, exc) from None

    async def _exec(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        query = exec_query(request.query)
        pod, container, node = await self._target(namespace, name, request.query.get("container"))
        if node is None:
            raise st.bad_request(f"pod {name} does not have a host assigned")
        host, port = kubelet_endpoint(node)
        # after the pod's and the kubelet's checks: kubectl falls back to SPDY when the WebSocket
        # upgrade fails, and the user should see why it failed, not that SPDY is not spoken
        if request.headers.get("Upgrade", "").lower() != "websocket":
            await self._reachable(node, f"https://{_host(host)}:{port}/healthz")
            raise st.bad_request(f"pods/exec is served over WebSocket only ({', '.join(PROTOCOLS)}); "
                                 f"this server does not speak SPDY")
        protocol = choose_protocol(request.headers.get("Sec-WebSocket-Protocol", ""))
        if protocol is None:
            raise st.bad_request(f"pods/exec needs one of the subprotocols {', '.join(PROTOCOLS)}")
        url = f"https://{_host(host)}:{port}/exec/{namespace}/{name}/{container}"
        return await self._websocket(request, node, url, query, protocol, "exec")

    async def _port_forward(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        pod = await self.get(PODS, namespace, name)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise st.bad_request(f"pod {name} does not have a host assigned")
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if phase != "Running":
            raise st.bad_request(f"unable to forward port because pod is not running. Current status={phase}")
        node = await self.get(NODES, None, node_name)
        host, port = kubelet_endpoint(node)
        url = f"https://{_host(host)}:{port}/portForward/{namespace}/{name}"
        if spdyupgrade.is_spdy_upgrade(request):
            spdyupgrade.check_protocol(request)
            kubelet = await self._open_websocket(node, url, [], portforward.TUNNEL, "port-forward")
            try:
                return await spdyupgrade.bridge(request, kubelet)
            finally:
                await kubelet.close()
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise st.bad_request(f"pods/portforward needs an upgrade to WebSocket "
                                 f"({', '.join(portforward.PROTOCOLS)}) or to {spdyupgrade.UPGRADE}")
        protocol = portforward.choose_protocol(request.headers.get("Sec-WebSocket-Protocol", ""))
        if protocol is None:
            raise st.bad_request(f"pods/portforward needs one of the subprotocols {', '.join(portforward.PROTOCOLS)}")
        query = port_forward_query(request.query, protocol)
        return await self._websocket(request, node, url, query, protocol, "port-forward")

    async def _websocket(self, request: web.Request, node: Mapping[str, Any], url: str,
                         query: list[tuple[str, str]], protocol: str, what: str) -> web.StreamResponse:
        """Opens the WebSocket to the kubelet, then answers the client's upgrade with the
        subprotocol the kubelet chose and relays messages both ways."""
        kubelet = await self._open_websocket(node, url, query, protocol, what)
        client = web.WebSocketResponse(protocols=[kubelet.protocol or protocol], autoping=True)
        try:
            await client.prepare(request)
            await _relay(client, kubelet)
        finally:
            await kubelet.close()
            await client.close()
        return client

    async def _open_websocket(self, node: Mapping[str, Any], url: str, query: list[tuple[str, str]],
                              protocol: str, what: str) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self._session(node).ws_connect(url, params=query, protocols=[protocol], autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            raise st.ApiError(st.status(exc.status if exc.status >= 400 else 502, "BadRequest" if exc.status == 400
                                        else "InternalError", f"the kubelet refused {what}: {exc.message}")) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientSSLError, asyncio.TimeoutError, OSError) as exc:
            raise _dial_error(str(node["metadata"]["name"]), exc) from None


async def _kubelet_error(upstream: aiohttp.ClientResponse) -> st.ApiError:
    """The kubelet's Status as this server's error (its code and message)."""
    try:
        body = await upstream.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return st.ApiError(body)
    return st.ApiError(st.status(502 if upstream.status < 400 else upstream.status, "InternalError",
                                 f"the kubelet answered {upstream.status}"))


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _relay(client: web.WebSocketResponse, kubelet: aiohttp.ClientWebSocketResponse) -> None:
    """Copies binary messages both ways until either side closes."""
    async def copy(source: Any, sink: Any) -> None:
        async for msg in source:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(msg.data)
    tasks = [asyncio.create_task(copy(client, kubelet)), asyncio.create_task(copy(kubelet, client))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
