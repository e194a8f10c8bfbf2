"""`kubectl port-forward` end to end: kubectl 1.32 speaks SPDY/3.1 tunnelled in a WebSocket
(KEP-4006) to the apiserver's pods/portforward, relayed to the kubelet, which dials into the
pod's network namespace. kubectl listens on 127.0.0.1 only (--address)."""
from __future__ import annotations

import socket
import subprocess
import time

import pytest

from tests.kubelet.test_kubelet_e2e import WAIT
from tests.kubelet.test_kubelet_server import KUBECTL, cluster  # noqa: F401  (the module's cluster fixture)
from tests.kubelet.test_python_client_pods import PORT_SERVER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WEBSOCKETS_SWITCH = "KUBECTL_PORT_FORWARD_WEBSOCKETS"  # false: kubectl speaks only the SPDY/3.1 upgrade


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortForward:
    """A running `kubectl port-forward` on 127.0.0.1."""

    def __init__(self, cluster, pod: str, remote: int, websockets: bool = True):  # noqa: F811
        self.local = _free_port()
        env = {**cluster.env, WEBSOCKETS_SWITCH: "true" if websockets else "false"}
        self.proc = subprocess.Popen([KUBECTL, "port-forward", "-v=6", "--address", "127.0.0.1", f"pod/{pod}",
                                      f"{self.local}:{remote}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(f"Forwarding from 127.0.0.1:{self.local} -> {remote}"), \
            (line, self.stop())

    def echo(self, payload: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.local), timeout=WAIT) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)  # the pod's echo server answers, then sees EOF and closes
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        return reply

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-tunnel", "spdy-upgrade"])
def test_kubectl_port_forward_carries_connections_both_ways(cluster, websockets):  # noqa: F811
    pod = f"pf-echo-{'ws' if websockets else 'spdy'}"
    cluster.pod(pod, f"exec python3 -c '{PORT_SERVER}' 8080")
    _wait_listening(cluster, pod, 8080)
    pf = PortForward(cluster, pod, 8080, websockets)
    try:
        assert pf.echo(b"hello through kubectl") == b"hello through kubectl"
        big = bytes(range(256)) * 4096  # 1 MiB: many DATA frames each way
        assert pf.echo(big) == big
        # several connections at once, each its own stream pair
        socks = [socket.create_connection(("127.0.0.1", pf.local), timeout=WAIT) for _ in range(4)]
        for i, s in enumerate(socks):
            s.sendall(b"connection %d" % i)
        for i, s in enumerate(socks):
            assert s.recv(100) == b"connection %d" % i
            s.close()
        assert pf.proc.poll() is None
    finally:
        err = pf.stop()
    # kubectl's log (-v=6) names the transport it used
    upgrades = [line for line in err.splitlines() if "/portforward" in line and " 101 " in line]
    assert upgrades and all(("GET" in line) == websockets for line in upgrades), err
    assert "error" not in err.lower() and "unhandled" not in err.lower(), err
    cluster.ok("delete", "pod", pod, "--wait=false")


def test_kubectl_port_forward_to_a_closed_port_reports_the_error(cluster):  # noqa: F811
    cluster.pod("pf-closed", "sleep 3600")
    pf = PortForward(cluster, "pf-closed", 9999)
    try:
        with socket.create_connection(("127.0.0.1", pf.local), timeout=WAIT) as s:
            s.sendall(b"nobody listens")
            s.settimeout(WAIT)
            try:
                assert s.recv(100) == b""  # closed, never a hang
            except ConnectionResetError:
                pass
        pf.proc.wait(WAIT)  # kubectl 1.32 gives up the whole forward on a stream error
    finally:
        err = pf.stop()
    assert f"an error occurred forwarding {pf.local} -> 9999: error forwarding port 9999 to pod " in err, err
    # (klog quotes the message: its own quotes come escaped)
    assert 'failed to connect to localhost:9999 inside namespace \\"' in err and "connection refused" in err, err
    assert "error: lost connection to pod" in err, err
    cluster.ok("delete", "pod", "pf-closed", "--wait=false")


def _wait_listening(cluster, pod: str, port: int) -> None:  # noqa: F811
    """Until the pod's server accepts connections (exec'd in the pod: a loopback check)."""
    check = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5).close()"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if cluster.kubectl("exec", pod, "--", "python3", "-c", check).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"nothing listens on {pod}:{port}")
