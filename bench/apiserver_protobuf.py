"""What protobuf costs per request next to JSON, same server, same run.

Starts `kproxy apiserver --no-controllers` (plain HTTP on loopback, temporary data directory),
then, for a Role and a Pod, times N creates and N updates sent serially over one keep-alive
connection as JSON (body and Accept) and as protobuf (the typed clients' Content-Type and
Accept: application/vnd.kubernetes.protobuf, application/json), the two interleaved request
by request so both meet the same load. It also times the codec
alone in this process: protobuf encode+decode of the object against json.dumps+loads.
Timing is informational: no thresholds.

    python -m bench.apiserver_protobuf [--requests 300]
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import json
import tempfile
import time
from typing import Any

import aiohttp

from bench.apiserver_vs_etcd import running_apiserver
from kproxy.apiserver import protobuf

NAMESPACE = "bench-pb"
ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"labels": {"app": "bench"}},
        "rules": [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
                  {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}]}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": "bench"}}, "spec": {
    "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 8080}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}}}],
    "volumes": [{"name": "cache", "emptyDir": {}}], "nodeName": "node-1"}}
PATHS = {"Role": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles",
         "Pod": f"/api/v1/namespaces/{NAMESPACE}/pods"}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
PB_HEADERS = {"Content-Type": protobuf.MEDIA_TYPE, "Accept": f"{protobuf.MEDIA_TYPE}, application/json"}


def _named(template: dict[str, Any], name: str) -> dict[str, Any]:
    obj = copy.deepcopy(template)
    obj["metadata"]["name"] = name
    return obj


class _Client:
    """One encoding's requests: its headers, encoder, decoder and accumulated seconds."""

    def __init__(self, as_protobuf: bool):
        self.encode = protobuf.encode if as_protobuf else (lambda o: json.dumps(o).encode())
        self.decode = protobuf.decode if as_protobuf else json.loads
        self.headers = PB_HEADERS if as_protobuf else JSON_HEADERS
        self.prefix = "pb" if as_protobuf else "json"
        self.stored: list[dict[str, Any]] = []
        self.seconds = {"create": 0.0, "update": 0.0}

    async def send(self, session: aiohttp.ClientSession, verb: str, url: str, obj: dict[str, Any]) -> None:
        method, expected = ("POST", 201) if verb == "create" else ("PUT", 200)
        start = time.perf_counter()
        async with session.request(method, url, data=self.encode(obj), headers=self.headers) as resp:
            assert resp.status == expected, await resp.text()
            answer = self.decode(await resp.read())
        self.seconds[verb] += time.perf_counter() - start
        if verb == "create":
            self.stored.append(answer)


async def _timed(session: aiohttp.ClientSession, url: str, template: dict[str, Any], count: int) -> list[_Client]:
    """JSON and protobuf clients, their requests interleaved one by one so that both meet the
    same load on this shared machine: `count` creates, then `count` updates of those objects."""
    clients = [_Client(False), _Client(True)]
    for i in range(count):
        for c in clients:
            await c.send(session, "create", url, _named(template, f"{c.prefix}-{i}"))
    for i in range(count):
        for c in clients:
            obj = c.stored[i]
            obj["metadata"]["labels"]["round"] = "2"
            await c.send(session, "update", f"{url}/{obj['metadata']['name']}", obj)
    return clients


def codec_cost(obj: dict[str, Any], rounds: int = 2000) -> tuple[float, float]:
    """(protobuf encode+decode, JSON dumps+loads) seconds per object."""
    start = time.perf_counter()
    for _ in range(rounds):
        protobuf.decode(protobuf.encode(obj))
    pb = (time.perf_counter() - start) / rounds
    start = time.perf_counter()
    for _ in range(rounds):
        json.loads(json.dumps(obj))
    return pb, (time.perf_counter() - start) / rounds


async def run(url: str, count: int) -> list[tuple[str, float, float]]:
    rows = []
    async with aiohttp.ClientSession(url) as session:
        async with session.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}}) as resp:
            assert resp.status == 201, await resp.text()
        for kind, template in (("Role", ROLE), ("Pod", POD)):
            as_json, as_pb = await _timed(session, PATHS[kind], template, count)
            for verb in ("create", "update"):
                rows.append((f"{kind} {verb}", as_json.seconds[verb] / count, as_pb.seconds[verb] / count))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="creates (and updates) per kind and encoding")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kproxy-bench-pb-") as workdir, running_apiserver(workdir) as server:
        rows = asyncio.run(run(server.url, args.requests))
    print(f"per request, serial, {args.requests} each (same server, same run)")
    print(f"{'request':<16}{'JSON':>12}{'protobuf':>12}{'protobuf/JSON':>15}")
    for name, j, p in rows:
        print(f"{name:<16}{j * 1e6:>10.0f}us{p * 1e6:>10.0f}us{p / j:>14.2f}x")
    print("codec alone, one object (this process)")
    for name, obj in (("Role", _named(ROLE, "r")), ("Pod", _named(POD, "p"))):
        pb, js = codec_cost(obj)
        print(f"{name + ' enc+dec':<16}{js * 1e6:>10.1f}us{pb * 1e6:>10.1f}us{pb / js:>14.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
