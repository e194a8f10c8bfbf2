"""kproxy's embedded Kubernetes-compatible apiserver (`kproxy apiserver`).

Request path: server.py (aiohttp app, TLS, startup, shutdown) -> auth/ (authentication by
client certificate or service-account token, RBAC authorization, audit log; see
auth/__init__.py) -> paths.py (REST path parsing) ->
rest.py (HTTP verbs, bodies, the watch pump) -> registry.py (Kubernetes' generic object
semantics over kproxy.store; it names no kind) with strategy.py (what each kind adds: status
reset, finalizers, graceful deletion, ClusterIP/NodePort allocation through service_alloc.py
and allocators.py), admission.py (namespace lifecycle, ResourceQuota with quota.py) and
auth/sa_admission.py (token Secrets). Object logic (selectors, defaults, validation,
patches) comes from kproxy.api through deps.py.

Wire formats: discovery.py (/api, /apis, aggregated discovery, /version), openapi.py and
schema.py (OpenAPI v2/v3), fieldcheck.py (fieldValidation Strict/Warn/Ignore), tables.py
(kubectl's Table printing), protobuf.py + pbschema.py (protobuf bodies and answers for every
served kind, built from one message table), openapi_pb.py (/openapi/v2 as gnostic protobuf),
watch.py (per-watcher bounded queues and event translation), watchframe.py (the sans-IO
framing of one watch stream).

Keys and certificates come from kproxy.pki (DATA_DIR/pki, created on first start).
"""
