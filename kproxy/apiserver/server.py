"""The apiserver process: aiohttp application, PKI and RBAC bootstrap, TLS serving,
authentication/authorization/audit middleware, background sweeper, kubeconfigs per identity,
optional in-process controllers, graceful shutdown."""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import signal
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver import datadir, discovery, health, openapi_pb, paths
from kproxy.apiserver.allocators import NodePortAllocator
from kproxy.apiserver.auth import policy
from kproxy.apiserver.auth.audit import AUDIT_LOG_NAME, DEFAULT_POLICY, AuditLog, AuditPolicy
from kproxy.apiserver.auth import endpoints as auth_endpoints
from kproxy.apiserver.auth.authn import TokenAuthenticator
from kproxy.apiserver.auth.escalation import EscalationGuard
from kproxy.apiserver.auth.middleware import AuthMiddleware, loopback_host
from kproxy.apiserver.auth.rbac import RBACAuthorizer
from kproxy.apiserver.auth.sa_admission import ServiceAccountTokenAdmission
from kproxy.apiserver.auth.sa_pod_admission import ServiceAccountPodAdmission
from kproxy.apiserver.toleration_admission import DefaultTolerationSeconds
from kproxy.apiserver.auth.token_controller import TokenController
from kproxy.apiserver.auth.tokenrequest import TokenIssuer
from kproxy.apiserver.auth.tokens import TokenSigner
from kproxy.apiserver.deps import Deps, open_store
from kproxy.apiserver.endpoint_reconciler import EndpointReconciler, advertised_address
from kproxy.apiserver.fieldcheck import FieldChecker
from kproxy.apiserver.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from kproxy.apiserver.metrics import ApiserverMetrics
from kproxy.apiserver.openapi import OpenAPI
from kproxy.apiserver.podproxy import PodProxy
from kproxy.apiserver.podproxy import client_tls as podproxy_tls
from kproxy.apiserver.registry import Registry
from kproxy.apiserver.rest import RestHandler, RestSettings, dumps, json_response, object_response
from kproxy.apiserver.service_alloc import ServiceAllocations
from kproxy.apiserver.service_families import ServiceIPAllocators
from kproxy.apiserver.tables import TableRenderer
from kproxy.listener import ConnectionLimits, GatedListener, listen_socket, server_options
from kproxy.pki import bootstrap as pki_bootstrap
from kproxy.pki.bootstrap import KUBELET_CLIENT
from kproxy.store import base as sb

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024  # Kubernetes' request size limit
BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
KUBECONFIG_NAME = "admin.kubeconfig"
WRITE_THREADS = 8


@dataclass(frozen=True)
class ServerConfig:
    data_dir: str
    host: str = "127.0.0.1"
    port: int = 6443
    service_cluster_ip_range: str = "10.96.0.0/12"
    service_node_port_range: str = "30000-32767"
    run_controllers: bool = True
    run_scheduler: bool = True  # with the controllers only
    scheduler_retry: float = 60.0
    store_history: int = 10000
    sweep_interval: float = 1.0
    rest: RestSettings = field(default_factory=RestSettings)
    # HTTPS with client-certificate/token authentication and RBAC on host:port (the default);
    # False makes host:port plain HTTP with full rights (for embedding in tests only)
    tls: bool = True
    # an additional plain-HTTP listener (loopback only; full rights), e.g. for tests
    insecure_host: str | None = None
    insecure_port: int = 0
    tls_sans: tuple[str, ...] = ()  # extra serving-certificate names/addresses
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)  # of the TLS listener
    audit_policy: AuditPolicy = DEFAULT_POLICY
    audit_max_bytes: int = 100 * 1024 * 1024  # the audit log rotates at this size
    audit_max_backups: int = 10  # rotated audit logs kept
    # the address published in the kubernetes Service's endpoints (default: host when publishable)
    advertise_address: str | None = None
    endpoint_reconcile_interval: float = 10.0
    # dial kubelets inside the network namespace their Node's annotation names (the lab's
    # nodes are namespaces of this machine; kproxy.apiserver.podproxy)
    kubelet_netns_dial: bool = False


class ApiServer:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.deps = Deps()
        datadir.make_private(config.data_dir)
        self.store: sb.Store = open_store(config.data_dir, config.store_history)
        self.services = ServiceAllocations(ServiceIPAllocators.from_cidrs(config.service_cluster_ip_range),
                                           NodePortAllocator(config.service_node_port_range))
        self.registry = Registry(self.store, self.deps, self.services)
        self.pki = pki_bootstrap.ensure_pki(config.data_dir, pki_bootstrap.serving_hosts_for(
            config.host, self.services.ips.reserved, config.tls_sans))
        with open(self.pki.sa_key, "rb") as f:
            signer = TokenSigner.from_pem(f.read())
        with open(self.pki.ca_cert, "rb") as f:
            ca_pem = f.read()
        self.registry.admission.append(ServiceAccountTokenAdmission(self.store))
        self.registry.admission.append(ServiceAccountPodAdmission(self.store))
        self.registry.admission.append(DefaultTolerationSeconds())
        self.tokens = TokenController(self.registry, signer, ca_pem)
        self.audit = AuditLog(os.path.join(config.data_dir, AUDIT_LOG_NAME), config.audit_policy,
                              config.audit_max_bytes, config.audit_max_backups)
        self.reads = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="apiserver-read")
        # Writers run concurrently so the store can group-commit them; the registry serialises
        # the few kinds of write that need it.
        self.writes = concurrent.futures.ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="apiserver-write")
        self.openapi = OpenAPI()
        self._openapi_v2_protobuf: bytes | None = None  # encoded on first request
        self.rest = RestHandler(self.registry, self.deps, self.reads, self.writes, config.rest,
                                FieldChecker(), TableRenderer())
        authorizer = RBACAuthorizer(self.store)
        self.rest.write_guards.append(EscalationGuard(authorizer))
        self.rest.authorize = authorizer.authorize
        self.rest.pod_proxy = PodProxy(
            self._get_object, podproxy_tls(self.pki.ca_cert, self.pki.path(f"{KUBELET_CLIENT.name}.crt"),
                         self.pki.path(f"{KUBELET_CLIENT.name}.key")), config.kubelet_netns_dial)
        authenticator = TokenAuthenticator(self.store, signer)
        self.auth = AuthMiddleware(authorizer, authenticator, self.audit, self.reads)
        self.auth_endpoints = auth_endpoints.AuthEndpoints(authorizer, authenticator, TokenIssuer(self.store, signer),
                                                           self.rest.bodies, self.reads)
        self.metrics = ApiserverMetrics(self._storage_counts)
        self.url = ""
        self.insecure_url = ""
        self._shutting_down = False
        self._endpoints: EndpointReconciler | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self._tls: ssl.SSLContext | None = None
        self._gate: GatedListener | None = None
        self._controllers: list[_ControllerThread] = []

    # ------------------------------------------------------------------ startup
    def bootstrap(self) -> None:
        """Rebuilds the allocators from the stored Services, then makes sure the system
        namespaces and the `kubernetes` Service exist. Runs before serving."""
        services, _ = self.store.list(R.SERVICES.store_prefix())
        outside = self.services.rebuild([kv.value for kv in services])
        if outside:
            log.warning("stored Services hold addresses outside the configured ranges (kept, not "
                        "managed by the allocators): %s", ", ".join(map(str, outside[:10])))
        for ns in BOOTSTRAP_NAMESPACES:
            try:
                self.registry.create(R.NAMESPACES, None, {"metadata": {"name": ns}})
            except st.ApiError as exc:
                if exc.code != 409:
                    raise
        for resource, objs in ((R.CLUSTER_ROLES, policy.cluster_roles()),
                               (R.CLUSTER_ROLE_BINDINGS, policy.cluster_role_bindings())):
            for obj in objs:
                try:
                    self.registry.create(resource, None, obj)
                except st.ApiError as exc:
                    if exc.code != 409:  # existing (maybe operator-edited) objects are kept
                        raise
        try:
            self.registry.create(R.SERVICES, "default", {
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": self.services.ips.reserved, "sessionAffinity": "None",
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.config.port or 6443}]},
            })
        except st.ApiError as exc:
            if exc.code != 409:
                log.warning("cannot create the kubernetes Service: %s", exc)

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self.metrics.middleware, self.auth.middleware, self._errors],
                              client_max_size=MAX_BODY_BYTES)
        app.router.add_route("GET", "/version", self._version)
        app.router.add_route("GET", "/version/", self._version)
        for probe in ("/healthz", "/livez", "/readyz"):
            app.router.add_route("GET", probe, self._health)
            app.router.add_route("GET", probe + "/{check:.*}", self._health)
        app.router.add_route("GET", "/metrics", self._metrics)
        app.router.add_route("GET", "/openapi/v2", self._openapi_v2)
        app.router.add_route("GET", "/openapi/v3", self._openapi_v3_index)
        app.router.add_route("GET", "/openapi/v3/{path:.*}", self._openapi_v3)
        app.router.add_route("*", "/api", self._api_root)
        app.router.add_route("*", "/api/", self._api_root)
        app.router.add_route("*", "/apis", self._apis_root)
        app.router.add_route("*", "/apis/", self._apis_root)
        app.router.add_route("*", "/api/{tail:.*}", self._api)
        app.router.add_route("*", "/apis/{tail:.*}", self._api)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.writes, self.bootstrap)
        # Every request is logged with -vv (debug); quiet otherwise.
        access_log = logging.getLogger("kproxy.apiserver.access") if log.isEnabledFor(logging.DEBUG) else None
        self._tls = self._ssl_context() if self.config.tls else None
        self._runner = web.AppRunner(self.build_app(), handle_signals=False, access_log=access_log,
                                     shutdown_timeout=2.0, **server_options(self.config.limits))
        await self._runner.setup()
        if self._tls is not None:
            self._gate = GatedListener(self._new_connection, self._tls, self.config.limits)
            self.url = _url("https", *self._gate.start(self._listen_socket(self.config.host, self.config.port)))
        else:
            self.url = await self._listen(self.config.host, self.config.port)
        if self.config.insecure_host is not None:
            if not loopback_host(self.config.insecure_host):
                raise ValueError(f"the plain-HTTP listener is only served on loopback, not {self.config.insecure_host}")
            self.insecure_url = await self._listen(self.config.insecure_host, self.config.insecure_port)
            log.warning("plain-HTTP listener on %s: every request there has full rights", self.insecure_url)
        if not self.config.tls:
            log.warning("serving plain HTTP on %s without authentication (give --tls for HTTPS)", self.url)
        self._tasks.append(asyncio.create_task(self._sweeper()))
        # the kubernetes Service's endpoints are in place before the server says it is ready
        self._endpoints = self._endpoint_reconciler()
        try:
            await asyncio.get_running_loop().run_in_executor(self.writes, self._endpoints.reconcile)
        except Exception:  # serve anyway; the periodic pass retries
            log.exception("reconciling the kubernetes Service's endpoints failed")
        self._tasks.append(asyncio.create_task(self._reconcile_endpoints(self._endpoints)))
        self._tasks.append(asyncio.create_task(self.tokens.run(self.writes)))
        if self._tls is not None:
            self._tasks.append(asyncio.create_task(self._reload_serving_cert(self._tls)))
        # kubeconfigs before the controllers: they read theirs; admin.kubeconfig is written
        # last and tells waiting callers the server is ready
        pki_bootstrap.write_kubeconfigs(self.pki, self.url)
        if self.config.run_controllers:
            self._start_controllers()
        log.info("apiserver listening on %s (data dir %s)", self.url, self.config.data_dir)

    @staticmethod
    def _listen_socket(host: str, port: int) -> Any:
        try:
            return listen_socket(host, port)
        except OSError as exc:  # the CLI shows strerror: name the address in it
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()}") from None

    def _new_connection(self) -> Any:
        """aiohttp's protocol for one connection the TLS gate accepted."""
        assert self._runner is not None and self._runner.server is not None
        return self._runner.server()

    async def _listen(self, host: str, port: int) -> str:
        """Starts one plain-HTTP listener; returns its URL (the wildcard address shown as
        loopback). Its socket has listen_socket's backlog, not aiohttp's 128: thousands of
        watchers connecting at once would otherwise wait out SYN retransmissions."""
        assert self._runner is not None
        sock = self._listen_socket(host, port)
        site = web.SockSite(self._runner, sock)
        await site.start()
        return _url("http", host, sock.getsockname()[1])

    def _ssl_context(self) -> ssl.SSLContext:
        """TLS 1.2+; a client certificate is optional, but one that is presented must chain
        to the cluster CA and be valid now, or the handshake fails."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pki.serving_cert, self.pki.serving_key)
        ctx.load_verify_locations(cafile=self.pki.ca_cert)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def _start_controllers(self) -> None:
        """The controllers and (unless turned off) the scheduler, each in its own thread with
        its own identity, as kube-controller-manager and kube-scheduler would run."""
        from kproxy.controllers.manager import run_controllers
        self._controllers = [_ControllerThread("controllers", self.pki.kubeconfig(pki_bootstrap.CONTROLLERS),
                                               run_controllers)]
        if self.config.run_scheduler:
            from kproxy.scheduler.loop import run_scheduler
            self._controllers.append(_ControllerThread(
                "scheduler", self.pki.kubeconfig(pki_bootstrap.SCHEDULER),
                functools.partial(run_scheduler, retry_unschedulable=self.config.scheduler_retry)))
        for thread in self._controllers:
            thread.start()

    async def stop(self) -> None:
        self._shutting_down = True  # /readyz fails from now on
        for thread in self._controllers:
            await asyncio.get_running_loop().run_in_executor(None, thread.stop)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._endpoints is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self.writes, self._endpoints.remove_own_address)
            except Exception:  # stopping goes on; the next start repairs the endpoints
                log.exception("cannot remove this apiserver from the kubernetes Service's endpoints")
        self.rest.close()
        await self.rest.pod_proxy.close()
        if self._gate is not None:
            await self._gate.close()
        if self._runner:
            await self._runner.cleanup()
        self.writes.shutdown(wait=True)
        self.reads.shutdown(wait=True)
        self.store.close()
        self.audit.close()

    async def _get_object(self, resource: R.Resource, namespace: str | None, name: str) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(
            self.reads, functools.partial(self.registry.get, resource, namespace, name))

    async def _on_shutdown(self, app: web.Application) -> None:
        self.rest.close_watches()

    async def _reload_serving_cert(self, ctx: ssl.SSLContext) -> None:
        """Loads a rotated serving certificate (`kproxy pki rotate-serving`) into the live TLS
        context: new connections get it, open ones keep theirs; no restart needed."""
        def stamp() -> tuple[float, float]:
            return (os.stat(self.pki.serving_cert).st_mtime, os.stat(self.pki.serving_key).st_mtime)
        seen = stamp()
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            try:
                now = stamp()
                if now != seen:
                    ctx.load_cert_chain(self.pki.serving_cert, self.pki.serving_key)
                    seen = now
                    log.info("loaded the rotated serving certificate")
            except (OSError, ssl.SSLError) as exc:  # half-written pair: retry on the next tick
                log.warning("cannot load the serving certificate yet: %s", exc)

    def _endpoint_reconciler(self) -> EndpointReconciler:
        ip = advertised_address(self.config.advertise_address, self.config.host)
        if ip is None:
            log.info("bound to %s: not publishing it in the kubernetes Service's endpoints "
                     "(give --advertise-address)", self.config.host)
        return EndpointReconciler(self.registry, ip, int(self.url.rsplit(":", 1)[1]))

    async def _reconcile_endpoints(self, reconciler: EndpointReconciler) -> None:
        """Keeps this server's address in the kubernetes Service's endpoints, repairing drift."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.endpoint_reconcile_interval)
            try:
                await loop.run_in_executor(self.writes, reconciler.reconcile)
            except Exception:  # keep trying; one failed pass must not stop the repairs
                log.exception("reconciling the kubernetes Service's endpoints failed")

    async def _sweeper(self) -> None:
        """Removes pods whose graceful-deletion period has expired."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            try:
                await loop.run_in_executor(self.writes, self.registry.sweep_expired_deletions)
            except Exception:  # keep sweeping; one bad pass must not stop deletions forever
                log.exception("pod deletion sweep failed")

    # ------------------------------------------------------------------ middleware
    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except st.ApiError as exc:
            return object_response(request, exc.status, exc.code)
        except web.HTTPRequestEntityTooLarge:
            return object_response(request, st.status(413, "RequestEntityTooLarge", "the request body is too large"),
                                   413)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return object_response(request, st.status(exc.status, exc.reason or "Error", exc.text or exc.reason or ""),
                                   exc.status)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            return object_response(request, st.internal("an internal error occurred while serving the request").status,
                                   500)

    # ------------------------------------------------------------------ routes
    async def _version(self, request: web.Request) -> web.Response:
        return json_response(discovery.version_info())

    def _health_checks(self, endpoint: str) -> dict[str, health.Check]:
        checks: dict[str, health.Check] = {
            "ping": lambda: None,  # answering at all is the check
            "etcd": self._store_check,
        }
        if endpoint == "readyz":
            checks["shutdown"] = lambda: "shutting down" if self._shutting_down else None
        return checks

    def _store_check(self) -> str | None:
        # a real read (the revision alone is cached in memory); raises when the store fails
        self.store.list(R.NAMESPACES.store_key("default"))
        return None

    async def _health(self, request: web.Request) -> web.Response:
        endpoint = request.path.strip("/").split("/", 1)[0]
        checks = self._health_checks(endpoint)
        single = request.match_info.get("check")
        if single:
            if single not in checks:
                raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource"))
            checks = {single: checks[single]}
        excluded = request.query.getall("exclude", [])
        results = await asyncio.get_running_loop().run_in_executor(
            self.reads, health.run, checks, excluded)
        for name, error in results:
            if error is not None:
                log.warning("%s check %s failed: %s", endpoint, name, error)
        answer = health.render(endpoint, results, "verbose" in request.query and not single, excluded)
        return web.Response(status=answer.status, text=answer.text, content_type="text/plain")

    def _storage_counts(self) -> list[tuple[str, int]]:
        """(resource, stored objects) for apiserver_storage_objects, named as kube-apiserver
        names them (plural.group)."""
        out = []
        for r in R.ALL:
            items, _ = self.store.list(r.store_prefix())
            out.append((f"{r.plural}.{r.group}" if r.group else r.plural, len(items)))
        return out

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(self.reads, self.metrics.exposition)
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _not_found(self, request: web.Request) -> web.Response:
        raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource"))

    def _server_address(self, request: web.Request) -> str:
        return request.host or self.url.split("//", 1)[-1]

    async def _api_root(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise st.method_not_allowed(f"method {request.method} is not allowed on /api")
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            return _aggregated_response(discovery.aggregated(core=True))
        return json_response(discovery.api_versions(self._server_address(request)))

    async def _apis_root(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise st.method_not_allowed(f"method {request.method} is not allowed on /apis")
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            return _aggregated_response(discovery.aggregated(core=False))
        return json_response(discovery.api_group_list())

    async def _api(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        segs = [s for s in path.split("/") if s]
        if segs[0] == "apis" and len(segs) == 2:
            if request.method != "GET":
                raise st.method_not_allowed(f"method {request.method} is not allowed here")
            doc = discovery.api_group(segs[1])
            if doc is None:
                raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource"))
            return json_response(doc)
        try:
            api_path = paths.parse(path)
        except paths.PathNotFound:
            raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource")) from None
        if api_path.resource is None:
            if request.method != "GET":
                raise st.method_not_allowed(f"method {request.method} is not allowed here")
            doc = discovery.api_resource_list(api_path.group, api_path.version)
            if doc is None:
                raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource"))
            return json_response(doc)
        if auth_endpoints.handles(api_path):  # reviews and token requests: answered, not stored
            return await self.auth_endpoints.handle(request, api_path)
        return await self.rest.handle(request, api_path)

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        if openapi_pb.PROTOBUF_PREFIX in accept:  # kubectl validating a kind: List manifest
            if self._openapi_v2_protobuf is None:
                self._openapi_v2_protobuf = openapi_pb.encode(self.openapi.v2())
            return web.Response(body=self._openapi_v2_protobuf, headers={"Content-Type": openapi_pb.MEDIA_TYPE})
        if accept and "application/json" not in accept and "*/*" not in accept:
            raise st.ApiError(st.status(406, "NotAcceptable", "/openapi/v2 is served as application/json or "
                                        f"{openapi_pb.PROTOBUF_PREFIX}@v1.0+protobuf"))
        return json_response(self.openapi.v2())

    async def _openapi_v3_index(self, request: web.Request) -> web.Response:
        return json_response(self.openapi.v3_index())

    async def _openapi_v3(self, request: web.Request) -> web.Response:
        doc = self.openapi.v3(request.match_info["path"])
        if doc is None:
            raise st.ApiError(st.status(404, "NotFound", "the server could not find the requested resource"))
        return json_response(doc)


def _url(scheme: str, host: str, port: int) -> str:
    """A listener's URL, the wildcard address shown as loopback."""
    shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"{scheme}://{shown}:{port}" if ":" not in shown else f"{scheme}://[{shown}]:{port}"


def _aggregated_response(doc: dict[str, Any]) -> web.Response:
    resp = web.Response(text=dumps(doc))
    resp.headers["Content-Type"] = discovery.AGGREGATED_MEDIA_TYPE
    return resp


class _ControllerThread:
    """Runs `run(client, stop)` (the controllers, the scheduler) in its own thread and event
    loop, so a control loop that blocks cannot stall the apiserver's loop."""

    def __init__(self, name: str, kubeconfig: str, run: Callable[..., Any]):
        self.name = name
        self.kubeconfig = kubeconfig
        self.run = run
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception:
            log.exception("%s stopped with an error", self.name)

    async def _run(self) -> None:
        from kproxy.client.rest import ApiClient

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        while not os.path.exists(self.kubeconfig):
            await asyncio.sleep(0.05)
        client = ApiClient.from_kubeconfig(self.kubeconfig)
        try:
            await self.run(client, self._stop)
        finally:
            await client.close()

    def stop(self) -> None:
        self._ready.wait(5)
        if self._loop and self._stop:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        self._thread.join(10)


async def serve(config: ServerConfig) -> None:
    """Runs the apiserver until SIGTERM/SIGINT."""
    server = ApiServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        await stop.wait()
        log.info("apiserver shutting down")
    finally:
        await server.stop()
