"""pods/log and pods/exec errors the apiserver answers itself, with the real kubectl: a
kubelet that cannot be reached, a pod without a node, discovery and RBAC of the subresources.
(Logs and exec through a real kubelet: tests/kubelet/test_kubelet_server.py.)"""
from __future__ import annotations

import os
import socket
import subprocess

import pytest

from kproxy.api.resources import NODES, PODS
from kproxy.client.sync import Client
from tests.apiserver.fixtures import apiserver_and_client

POD_SPEC = {"containers": [{"name": "main", "image": "kproxy.local/base"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # --no-scheduler: a pod without nodeName stays so
    with apiserver_and_client(tmp_path_factory.mktemp("podproxy"), ["--no-scheduler"]) as pair:
        yield pair


def _kubectl(server, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": server.kubeconfig, "HOME": str(server.data_dir)}
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=60)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pod_on_ghost_node(client: Client, name: str) -> None:
    """A pod bound to node `ghost`, whose kubelet port nobody listens on."""
    if client.get_or_none(NODES, "ghost") is None:
        client.create(NODES, {"metadata": {"name": "ghost"}})
        client.patch(NODES, "ghost", {"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": _closed_port()}}}}, subresource="status")
    client.create(PODS, {"metadata": {"name": name}, "spec": {**POD_SPEC, "nodeName": "ghost"}}, "default")


def test_unreachable_kubelet_is_service_unavailable(server):
    server, client = server
    _pod_on_ghost_node(client, "p")
    for args in (("logs", "p"), ("exec", "p", "--", "true")):
        done = _kubectl(server, *args)
        assert done.returncode != 0, done
        assert "error dialing backend: the kubelet of node ghost" in done.stderr, done.stderr
    done = _kubectl(server, "logs", "p", "-c", "other")
    assert done.returncode != 0 and "container other is not valid for pod p" in done.stderr
    assert "Traceback" not in server.log_tail(200)


def test_pod_without_a_node(server):
    server, client = server
    client.create(PODS, {"metadata": {"name": "pending"}, "spec": POD_SPEC}, "default")
    done = _kubectl(server, "exec", "pending", "--", "true")
    assert done.returncode != 0 and "pod pending does not have a host assigned" in done.stderr, done.stderr
    done = _kubectl(server, "logs", "pending")
    assert (done.returncode, done.stdout) == (0, ""), done.stderr


def test_discovery_lists_log_and_exec(server):
    server, _ = server
    out = _kubectl(server, "get", "--raw", "/api/v1").stdout
    assert '"name":"pods/log"' in out and '"name":"pods/exec"' in out and '"name":"pods/portforward"' in out
    # a GET pods/exec (WebSocket) needs create, as kube-apiserver authorises it
    done = _kubectl(server, "auth", "can-i", "create", "pods/exec", "--as", "someone")
    assert done.stdout.strip() == "no"


def test_view_reads_logs_and_edit_execs(server):
    server, client = server
    _pod_on_ghost_node(client, "rbac")
    for name, role, user in (("v", "view", "viewer"), ("e", "edit", "editor")):
        done = _kubectl(server, "create", "rolebinding", name, f"--clusterrole={role}", f"--user={user}")
        assert done.returncode == 0, done.stderr

    def can(user: str, verb: str, resource: str) -> str:
        return _kubectl(server, "auth", "can-i", verb, resource, "--as", user).stdout.strip()
    assert (can("viewer", "get", "pods/log"), can("viewer", "create", "pods/exec"), can("viewer", "get", "secrets")) \
        == ("yes", "no", "no")
    assert (can("editor", "create", "pods/exec"), can("editor", "get", "pods/log")) == ("yes", "yes")
    assert (can("viewer", "create", "pods/portforward"), can("editor", "create", "pods/portforward")) == ("no", "yes")
    # through the real requests: a viewer's exec is refused before any kubelet is dialled, an
    # editor's gets as far as the (unreachable) kubelet (GET authorised as create: the units test)
    done = _kubectl(server, "exec", "rbac", "--as", "viewer", "--", "true")
    assert done.returncode != 0 and 'cannot create resource "pods/exec"' in done.stderr, done.stderr
    done = _kubectl(server, "exec", "rbac", "--as", "editor", "--", "true")
    assert done.returncode != 0 and "error dialing backend" in done.stderr, done.stderr
    done = _kubectl(server, "logs", "rbac", "--as", "viewer")
    assert done.returncode != 0 and "error dialing backend" in done.stderr, done.stderr
