"""The pure parts of logs and exec: log selection and rotation, the remotecommand Status and
options, and the apiserver's checks before it proxies to a kubelet."""
from __future__ import annotations

import asyncio
import datetime

import pytest
from multidict import MultiDict

from kproxy.api.status import ApiError
from kproxy.apiserver import podproxy
from kproxy.kubelet import execstream, logs, logshim


T1, T2, T3 = "2026-12-07T10:00:00.000000001Z", "2026-12-07T10:00:01.000000000Z", "2026-12-07T10:00:02.500000000Z"
CRI = (f"{T1} stdout F a\n{T2} stderr F b\n{T2} stdout P long \n{T3} stdout F line\n{T3} stdout F no newline yet"
       .encode())


def test_shim_records_and_parse_round_trip():
    out, pending = logshim.records("stdout", b"", b"one\ntw", T1, eof=False)
    assert (out, pending) == (f"{T1} stdout F one\n".encode(), b"tw")
    out, pending = logshim.records("stdout", pending, b"o", T2, eof=True)  # the last line has no newline
    assert (out, pending) == (f"{T2} stdout F two\n".encode(), b"")
    big, rest = logshim.records("stderr", b"", b"x" * (logshim.MAX_RECORD + 5), T1, eof=False)
    assert big.startswith(f"{T1} stderr P x".encode()) and rest == b"xxxxx"
    lines, used = logs.parse(big + logshim.records("stderr", rest, b"\n", T2, eof=False)[0])
    assert [(ln.time, ln.stream, ln.content) for ln in lines] == [(T1, "stderr", b"x" * (logshim.MAX_RECORD + 5))]
    assert logshim.timestamp(1_000_000_000 * 86400 + 5) == "1970-01-02T00:00:00.000000005Z"


def test_parse_then_select_as_kubelet():
    lines, used = logs.parse(CRI)
    assert [ln.content for ln in lines] == [b"a", b"b", b"long line"]  # the unfinished record waits
    assert CRI[used:] == f"{T3} stdout F no newline yet".encode()
    assert logs.select(lines) == b"a\nb\nlong line\n"
    assert logs.select(lines, tail_lines=2) == b"b\nlong line\n"
    assert logs.select(lines, tail_lines=0) == b""
    assert logs.select(lines, tail_lines=99) == b"a\nb\nlong line\n"
    assert logs.select(lines, tail_lines=2, limit_bytes=3) == b"b\nl"
    assert logs.select(lines, timestamps=True, tail_lines=1) == f"{T2} long line\n".encode()  # its first part's time
    assert logs.select(lines, since=T2) == b"b\nlong line\n"
    now = datetime.datetime(2026, 12, 7, 10, 0, 3, tzinfo=datetime.timezone.utc)
    assert logs.since_cutoff(2, None, now) == T2 and logs.since_cutoff(None, None, now) is None
    assert logs.since_cutoff(None, "2026-12-07T10:00:01Z", now) == T2
    with pytest.raises(ValueError):
        logs.since_cutoff(None, "yesterday", now)


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
    path.write_bytes(f"{T1} stdout F old\n".encode())
    state = {"running": True}
    start = path.stat().st_size

    async def go() -> list[bytes]:
        got = []
        async for lines in logs.follow(str(path), start, lambda: state["running"]):
            got.extend(ln.content for ln in lines)
            if got == [b"one"]:
                with open(path, "ab") as f:
                    f.write(b"o\n")  # the rest of the record being written
                state["running"] = False  # written before the exit: still delivered
        return got
    with open(path, "ab") as f:
        f.write(f"{T1} stdout F one\n{T2} stdout F tw".encode())  # a record still being written waits
    assert asyncio.run(go()) == [b"one", b"two"]


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
    assert podproxy.log_query(MultiDict(timestamps="true", sinceSeconds="10")) == {
        "timestamps": "true", "sinceSeconds": "10"}
    for bad in ({"tailLines": "-1"}, {"limitBytes": "0"}, {"tailLines": "x"}, {"follow": "maybe"},
                {"sinceSeconds": "0"}, {"sinceSeconds": "5", "sinceTime": "2026-12-07T10:00:00Z"}):
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
