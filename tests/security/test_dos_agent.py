"""Denial of service against the agent's listeners (issue 15, item 9): a flood of idle and of
malformed connections to the healthz port neither exhausts the agent's descriptors nor fills
its log, and the agent keeps programming Services meanwhile. A real agent (record backend) in
its own network namespace, with a low descriptor limit so the flood would reach it."""
from __future__ import annotations

import resource
import socket

import pytest

from kproxy.api.resources import SERVICES
from kproxy.netns import NetNS
from tests.agent.agentproc import HEALTHZ_PORT, AgentProcess, wait_until
from tests.agent.conftest import agent_ns, apiserver, client  # noqa: F401  (fixtures)

pytestmark = pytest.mark.kernel  # needs root for the network namespace

AGENT_NOFILE = 256  # the agent's soft descriptor limit in this test
IDLE_CONNECTIONS = 400
MALFORMED_REQUESTS = 200


def service(name, cluster_ip):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": cluster_ip, "selector": {"app": name},
                     "ports": [{"name": "p", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}


def open_idle(count: int) -> list[socket.socket]:
    """`count` connections to the healthz port that never send (run inside the agent's netns)."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", HEALTHZ_PORT))
        socks.append(s)
    return socks


def send_malformed(count: int) -> int:
    """Sends `count` malformed requests; returns how many connections the agent accepted."""
    accepted = 0
    for i in range(count):
        try:
            with socket.create_connection(("127.0.0.1", HEALTHZ_PORT), timeout=1) as s:
                s.sendall(b"GARBAGE %d\r\n\r\n" % i)
                s.recv(4096)
                accepted += 1
        except OSError:  # refused or timed out: the flood goes on
            pass
    return accepted


def start_with_nofile(agent: AgentProcess, soft: int) -> None:
    """Starts the agent with RLIMIT_NOFILE lowered to `soft` (it inherits the limit)."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        agent.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def test_agent_keeps_programming_while_its_listeners_are_flooded(tmp_path, apiserver, client, agent_ns):  # noqa: F811
    client.create(SERVICES, service("before", "10.96.0.60"))
    agent = AgentProcess(tmp_path, apiserver.kubeconfig, agent_ns)
    ns = NetNS(agent_ns)
    socks: list[socket.socket] = []
    try:
        start_with_nofile(agent, AGENT_NOFILE)
        agent.wait_record(lambda r: "default/before:p" in r["ruleset"]["services"], what="first sync")
        wait_until(lambda: agent.http_ready(HEALTHZ_PORT, "/healthz"), what="healthz")
        log_before = len(agent.log())

        socks = ns.run(open_idle, IDLE_CONNECTIONS)  # more than the agent has descriptors for
        ns.run(send_malformed, MALFORMED_REQUESTS)

        # a new Service is programmed while the idle flood is still open
        client.create(SERVICES, service("during", "10.96.0.61"))
        agent.wait_record(lambda r: "default/during:p" in r["ruleset"]["services"],
                          what="the Service created during the flood")
        # healthz answers under the flood, and turns 200 once that sync is marked done
        wait_until(lambda: (agent.http_ready(HEALTHZ_PORT, "/healthz") or (0,))[0] == 200,
                   what="healthz 200 under flood")

        grown = agent.log()[log_before:]
        assert "Traceback" not in grown
        assert len(grown) < 50 * 1024, grown[-2000:]  # no line per malformed request at the default level
    finally:
        for s in socks:
            s.close()
        agent.stop()
        ns.close()
