"""The pure parts of logs and exec: log selection and rotation, the remotecommand Status and
options, and the apiserver's checks before it proxies to a kubelet."""
from __future__ import annotations

import asyncio

import pytest
from multidict import MultiDict

from kproxy.api.status import ApiError
from kproxy.apiserver import podproxy
from kproxy.kubelet import execstream, logs


def test_select_tail_then_limit():
    data = b"a\nb\nc\nlast-without-newline"
    assert logs.select(data) == data
    assert logs.select(data, tail_lines=2) == b"c\nlast-without-newline"
    assert logs.select(data, tail_lines=0) == b""
    assert logs.select(data, tail_lines=99) == data
    assert logs.select(data, tail_lines=2, limit_bytes=3) == b"c\nl"
    assert logs.select(b"", tail_lines=3) == b""


def test_keep_previous_moves_the_current_run_aside(tmp_path):
    current = logs.log_path(str(tmp_path), "uid1", "web")
    previous = logs.log_path(str(tmp_path), "uid1", "web", previous=True)
    logs.keep_previous(current)  # nothing yet: nothing happens
    (tmp_path / "pods" / "uid1").mkdir(parents=True)
    for run in (b"first\n", b"second\n"):
        with open(current, "ab") as f:
            f.write(run)
        logs.keep_previous(current)
    assert open(previous, "rb").read() == b"second\n"  # one previous run is kept, the older one is gone


def test_follow_reads_until_the_writer_is_gone(tmp_path):
    path = tmp_path / "c.log"
    path.write_bytes(b"old\n")
    state = {"running": True}

    async def go() -> bytes:
        got = b""
        async for chunk in logs.follow(str(path), 4, lambda: state["running"]):
            got += chunk
            if got == b"one\n":
                with open(path, "ab") as f:
                    f.write(b"two\n")
                state["running"] = False  # written before the exit: still delivered
        return got
    with open(path, "ab") as f:
        f.write(b"one\n")
    assert asyncio.run(go()) == b"one\ntwo\n"


def test_exit_status_as_the_error_channel_carries_it():
    assert execstream.exit_status(0, ("true",)) == {"metadata": {}, "status": "Success"}
    failed = execstream.exit_status(3, ("sh", "-c", "exit 3"))
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_exec_options_and_protocol():
    opts = execstream.ExecOptions.from_query(MultiDict([("command", "sh"), ("command", "-c"), ("command", "id"),
                                                        ("stdout", "true"), ("stdin", "1")]))
    assert opts == execstream.ExecOptions(("sh", "-c", "id"), stdin=True, stdout=True, stderr=False, tty=False)
    for bad in ([("stdout", "true")], [("command", "x")], [("command", "x"), ("tty", "true"), ("stderr", "true")]):
        with pytest.raises(ApiError) as err:
            execstream.ExecOptions.from_query(MultiDict(bad))
        assert err.value.code == 400
    assert execstream.choose_protocol("v5.channel.k8s.io, v4.channel.k8s.io") == "v5.channel.k8s.io"
    assert execstream.choose_protocol("v4.channel.k8s.io,v5.channel.k8s.io") == "v4.channel.k8s.io"
    assert execstream.choose_protocol("channel.k8s.io, SPDY/3.1") is None
    assert execstream.terminal_size(b'{"Width": 80, "Height": 24}') == (80, 24)
    assert execstream.terminal_size(b"junk") is None


POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                           "initContainers": [{"name": "init"}]}}


def test_pick_container_as_kube_apiserver():
    assert podproxy.pick_container(POD, "b") == "b"
    assert podproxy.pick_container(POD, "init") == "init"
    assert podproxy.pick_container({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "only"}]}},
                                   None) == "only"
    with pytest.raises(ApiError) as err:
        podproxy.pick_container(POD, "nope")
    assert (err.value.code, err.value.status["message"]) == (400, "container nope is not valid for pod p")
    with pytest.raises(ApiError) as err:
        podproxy.pick_container(POD, None)
    assert err.value.status["message"] == ("a container name must be specified for pod p, choose one of: [a b] "
                                           "or one of the init containers: [init]")


def test_kubelet_endpoint_and_queries():
    node = {"metadata": {"name": "n1"}, "status": {
        "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    assert podproxy.kubelet_endpoint(node) == ("10.0.0.5", 10250)
    node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] = 0
    with pytest.raises(ApiError) as err:
        podproxy.kubelet_endpoint(node)
    assert err.value.code == 503
    assert podproxy.log_query(MultiDict(follow="true", tailLines="5", container="c")) == {
        "follow": "true", "tailLines": "5"}
    for bad in ({"tailLines": "-1"}, {"limitBytes": "0"}, {"tailLines": "x"}, {"follow": "maybe"},
                {"timestamps": "true"}, {"sinceSeconds": "10"}):
        with pytest.raises(ApiError) as err:
            podproxy.log_query(MultiDict(bad))
        assert err.value.code == 400, bad
    assert podproxy.exec_query(MultiDict([("command", "ls"), ("command", "/"), ("stdout", "1")])) == [
        ("command", "ls"), ("command", "/"), ("stdout", "true")]


def test_websocket_exec_is_authorised_as_create():
    from kproxy.apiserver.auth.attributes import request_attributes
    path = "/api/v1/namespaces/default/pods/p/exec"
    assert request_attributes("GET", path, {}).verb == "create"  # kube-apiserver: a WebSocket upgrade
    assert request_attributes("POST", path, {}).verb == "create"  # SPDY
    assert request_attributes("GET", "/api/v1/namespaces/default/pods/p/log", {}).verb == "get"
