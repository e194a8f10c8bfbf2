"""The real kubectl's server-side apply against the apiserver: apply --server-side, conflicts
and --force-conflicts, the move from client-side apply, --show-managed-fields, diff
--server-side (dryRun=All), and the managers kubectl's other writes are recorded as."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.apiserver.fixtures import start_apiserver
from tests.apiserver.test_kubectl import KUBECTL, Kubectl

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine"),
]

SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  labels: {{app: web}}
spec:
  selector: {{app: web}}
  ports:
  - name: http
    port: 80
    targetPort: {target}
"""


@pytest.fixture
def kubectl(tmp_path):
    server = start_apiserver(tmp_path)
    try:
        yield Kubectl(server.kubeconfig)
    finally:
        server.stop()


def run(kubectl: Kubectl, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=kubectl.env,
                          timeout=120, check=False)


def managers(kubectl: Kubectl) -> dict[tuple[str, str], dict]:
    obj = yaml.safe_load(kubectl("get", "svc", "web", "-o", "yaml", "--show-managed-fields"))
    return {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}


def port_fields(entry: dict) -> dict:
    return entry["fieldsV1"]["f:spec"]["f:ports"]['k:{"port":80,"protocol":"TCP"}']


def test_server_side_apply_conflicts_and_force(kubectl):
    out = kubectl("apply", "--server-side", "-f", "-", stdin=SERVICE.format(target=8080))
    assert "service/web serverside-applied" in out
    assert "managedFields" not in kubectl("get", "svc", "web", "-o", "yaml")
    owners = managers(kubectl)
    assert "f:targetPort" in port_fields(owners[("kubectl", "Apply")])

    proc = run(kubectl, "apply", "--server-side", "--field-manager=ci", "-f", "-", stdin=SERVICE.format(target=9090))
    assert proc.returncode != 0
    assert 'conflict with "kubectl"' in proc.stderr, proc.stderr
    assert '.spec.ports[port=80,protocol="TCP"].targetPort' in proc.stderr, proc.stderr
    assert kubectl.json("get", "svc", "web")["spec"]["ports"][0]["targetPort"] == 8080

    kubectl("apply", "--server-side", "--field-manager=ci", "--force-conflicts", "-f", "-",
            stdin=SERVICE.format(target=9090))
    assert kubectl.json("get", "svc", "web")["spec"]["ports"][0]["targetPort"] == 9090
    owners = managers(kubectl)
    assert "f:targetPort" in port_fields(owners[("ci", "Apply")])
    assert "f:targetPort" not in port_fields(owners[("kubectl", "Apply")])


def test_server_side_apply_takes_over_from_client_side_apply(kubectl):
    kubectl("apply", "-f", "-", stdin=SERVICE.format(target=8080))
    assert ("kubectl-client-side-apply", "Update") in managers(kubectl)
    # the first server-side apply by kubectl changes a field client-side apply set: no conflict
    out = kubectl("apply", "--server-side", "-f", "-", stdin=SERVICE.format(target=9090))
    assert "serverside-applied" in out
    assert kubectl.json("get", "svc", "web")["spec"]["ports"][0]["targetPort"] == 9090
    owners = managers(kubectl)
    assert "f:targetPort" in port_fields(owners[("kubectl", "Apply")])
    csa = owners.get(("kubectl-client-side-apply", "Update"))
    assert csa is None or "f:spec" not in csa["fieldsV1"] or "f:ports" not in csa["fieldsV1"]["f:spec"]


def test_diff_server_side_is_a_dry_run(kubectl):
    kubectl("apply", "--server-side", "-f", "-", stdin=SERVICE.format(target=8080))
    before = kubectl.json("get", "svc", "web")["metadata"]["resourceVersion"]
    proc = run(kubectl, "diff", "--server-side", "-f", "-", stdin=SERVICE.format(target=9090))
    assert proc.returncode == 1, proc.stderr  # 1: differences found
    assert "-    targetPort: 8080" in proc.stdout and "+    targetPort: 9090" in proc.stdout, proc.stdout
    after = kubectl.json("get", "svc", "web")
    assert after["metadata"]["resourceVersion"] == before and after["spec"]["ports"][0]["targetPort"] == 8080


def test_kubectl_writes_are_recorded_by_their_manager(kubectl):
    kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
    kubectl("label", "svc", "web", "tier=front")
    owners = managers(kubectl)
    assert owners[("kubectl-create", "Update")]["fieldsV1"]["f:spec"]["f:ports"]
    assert owners[("kubectl-label", "Update")]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:tier": {}}}}
