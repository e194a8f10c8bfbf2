"""The official `kubernetes` Python client, unchanged, against a real apiserver."""
from __future__ import annotations

import threading

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402


@pytest.fixture
def api_client(bare_apiserver):
    c = config.new_client_from_config(config_file=bare_apiserver.kubeconfig)
    try:
        yield c
    finally:
        c.close()


def service(name: str, port: int = 80) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1ServiceSpec(selector={"app": name}, ports=[client.V1ServicePort(port=port, target_port=8080)]))


def test_load_kube_config_and_version(bare_apiserver):
    config.load_kube_config(config_file=bare_apiserver.kubeconfig)
    info = client.VersionApi().get_code()
    assert info.git_version.startswith("v1.32")
    groups = {g.name for g in client.ApisApi().get_api_versions().groups}
    assert "discovery.k8s.io" in groups


def test_crud(api_client):
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    created = core.create_namespaced_service("py", service("web"))
    assert created.spec.cluster_ip and created.spec.ports[0].protocol == "TCP"
    got = core.read_namespaced_service("web", "py")
    assert got.metadata.uid == created.metadata.uid

    listed = core.list_namespaced_service("py", label_selector="app=web")
    assert [s.metadata.name for s in listed.items] == ["web"] and listed.metadata.resource_version

    patched = core.patch_namespaced_service("web", "py", {"metadata": {"labels": {"tier": "a"}}})
    assert patched.metadata.labels == {"app": "web", "tier": "a"}

    patched.spec.ports[0].port = 81
    replaced = core.replace_namespaced_service("web", "py", patched)
    assert replaced.spec.ports[0].port == 81 and replaced.spec.cluster_ip == created.spec.cluster_ip

    stale = got  # old resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_service("web", "py", stale)
    assert exc.value.status == 409

    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service("py", service("web"))
    assert exc.value.status == 409

    bad = service("bad")
    bad.spec.ports[0].port = 70000
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service("py", bad)
    assert exc.value.status == 422 and "spec.ports[0].port" in exc.value.body

    core.delete_namespaced_service("web", "py")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_service("web", "py")
    assert exc.value.status == 404


def test_pod_status_and_endpointslices(api_client):
    core = client.CoreV1Api(api_client)
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="p", labels={"app": "web"}),
                       spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")]))
    created = core.create_namespaced_pod("default", pod)
    assert created.status.phase == "Pending"
    core.patch_namespaced_pod_status("p", "default", {"status": {"podIP": "10.244.1.9", "phase": "Running"}})
    assert core.read_namespaced_pod("p", "default").status.pod_ip == "10.244.1.9"

    disc = client.DiscoveryV1Api(api_client)
    es = client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(name="web-abc", labels={"kubernetes.io/service-name": "web"}),
        address_type="IPv4",
        endpoints=[client.V1Endpoint(addresses=["10.244.1.9"], conditions=client.V1EndpointConditions(ready=True))],
        ports=[client.DiscoveryV1EndpointPort(name="http", port=8080, protocol="TCP")])
    disc.create_namespaced_endpoint_slice("default", es)
    slices = disc.list_namespaced_endpoint_slice("default", label_selector="kubernetes.io/service-name=web")
    assert slices.items[0].endpoints[0].addresses == ["10.244.1.9"]


def test_watch_stream(api_client):
    core = client.CoreV1Api(api_client)
    rv = core.list_namespaced_service("default").metadata.resource_version
    events: list[tuple[str, str]] = []
    w = watch.Watch()

    def consume():
        for ev in w.stream(core.list_namespaced_service, "default", resource_version=rv, timeout_seconds=20):
            events.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    core.create_namespaced_service("default", service("w1"))
    core.patch_namespaced_service("w1", "default", {"metadata": {"labels": {"x": "y"}}})
    core.delete_namespaced_service("w1", "default")
    t.join(30)
    assert not t.is_alive()
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
