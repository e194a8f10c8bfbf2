"""Server-side apply through the official `kubernetes` Python client, unchanged: the patch
call with field_manager, force and the apply content type, and managedFields read back as
the client's own model."""
from __future__ import annotations

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

APPLY = "application/apply-patch+yaml"


@pytest.fixture
def core(bare_apiserver):
    c = config.new_client_from_config(config_file=bare_apiserver.kubeconfig)
    try:
        yield client.CoreV1Api(c)
    finally:
        c.close()


def config_of(target_port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": target_port}]}}


def test_apply_with_the_python_client(core):
    created = core.patch_namespaced_service("web", "default", config_of(8080), field_manager="py",
                                            _content_type=APPLY)
    entry = created.metadata.managed_fields[0]
    assert (entry.manager, entry.operation, entry.api_version, entry.fields_type) == ("py", "Apply", "v1", "FieldsV1")
    assert "f:selector" in entry.fields_v1["f:spec"]

    with pytest.raises(ApiException) as conflict:
        core.patch_namespaced_service("web", "default", config_of(9090), field_manager="other", _content_type=APPLY)
    assert conflict.value.status == 409 and 'conflict with \\"py\\"' in conflict.value.body

    forced = core.patch_namespaced_service("web", "default", config_of(9090), field_manager="other", force=True,
                                           _content_type=APPLY)
    assert forced.spec.ports[0].target_port == 9090
    assert {e.manager for e in forced.metadata.managed_fields} == {"py", "other"}

    with pytest.raises(ApiException) as missing:
        core.patch_namespaced_service("web", "default", config_of(9090), _content_type=APPLY)
    assert missing.value.status == 422 and "fieldManager" in missing.value.body
