"""Concurrent writers: unconditional patches never lose an update, conditional updates with the
same resourceVersion have exactly one winner, and concurrent Service creates never share an
address."""
from __future__ import annotations

import threading

import pytest


SVCS = "/api/v1/namespaces/default/services"
EPS = "/api/v1/namespaces/default/endpoints"
THREADS = 8


@pytest.fixture
def api(bare_apiserver):
    return bare_apiserver.http()


def run_all(target, n=THREADS):
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)


def test_concurrent_patches_lose_nothing(api):
    api.ok("POST", EPS, {"metadata": {"name": "shared"}, "subsets": []})
    errors: list = []

    def patcher(t):
        client = api.clone()
        for i in range(10):
            status, body = client.call("PATCH", f"{EPS}/shared", {"metadata": {"labels": {f"k{t}-{i}": "v"}}},
                                       "application/merge-patch+json")
            if status != 200:
                errors.append(body)

    run_all(patcher)
    assert not errors
    labels = api.ok("GET", f"{EPS}/shared")["metadata"]["labels"]
    assert len(labels) == THREADS * 10


def test_conditional_updates_have_one_winner(api):
    obj = api.ok("POST", EPS, {"metadata": {"name": "race"}, "subsets": []})
    results: list[int] = []

    def updater(t):
        body = dict(obj, metadata=dict(obj["metadata"], labels={"winner": str(t)}))
        status, _ = api.clone().call("PUT", f"{EPS}/race", body)
        results.append(status)

    run_all(updater)
    assert sorted(results) == [200] + [409] * (THREADS - 1)


def test_concurrent_service_creates_get_distinct_addresses(api):
    made: list[dict] = []

    def creator(t):
        client = api.clone()
        for i in range(8):
            made.append(client.ok("POST", SVCS, {"apiVersion": "v1", "kind": "Service",
                                                 "metadata": {"name": f"s{t}-{i}"},
                                                 "spec": {"type": "NodePort", "ports": [{"port": 80}]}}))

    run_all(creator)
    ips = [s["spec"]["clusterIP"] for s in made]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in made]
    assert len(set(ips)) == len(ips) == THREADS * 8
    assert len(set(ports)) == len(ports)
