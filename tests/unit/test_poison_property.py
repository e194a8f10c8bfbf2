"""Property: for random states with one poisoned object (a Service or EndpointSlice with values
no backend can use, or a ServicePort that reaches a backend malformed), every other ServicePort
is in the ruleset each backend renders, as the proxier programs it (translate cleans the
objects; kproxy.agent.quarantine sets aside a ServicePort whose render raises)."""
from __future__ import annotations

import asyncio
import copy
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kproxy.agent import backend as backends
from kproxy.agent import quarantine as q
from kproxy.agent.config import AgentConfig
from kproxy.agent.state import ProxyState, ServicePort
from kproxy.agent.tracker import ProxyStateBuilder, StateSettings
from kproxy.netns import NetNS
from kproxy.rules.adapter import adapter_for

NODE = "node-1"
MODES = ("iptables", "nftables", "ipvs", "userspace")


def service(i: int, kind: str, affinity: bool, local: bool) -> dict:
    spec: dict[str, Any] = {"type": kind, "clusterIP": f"10.96.0.{i + 1}",
                            "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                      {"name": "dns", "port": 53, "protocol": "UDP"}]}
    status: dict[str, Any] = {}
    if kind in ("NodePort", "LoadBalancer"):
        for n, p in enumerate(spec["ports"]):
            p["nodePort"] = 30000 + 2 * i + n
        if local:
            spec["externalTrafficPolicy"] = "Local"
    if kind == "LoadBalancer":
        spec["loadBalancerSourceRanges"] = ["203.0.113.0/25"]
        status = {"loadBalancer": {"ingress": [{"ip": f"192.0.2.{i + 1}"}]}}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    return {"metadata": {"name": f"s{i}", "namespace": "default"}, "spec": spec, "status": status}


def endpoint_slice(i: int, count: int) -> dict:
    return {"metadata": {"name": f"s{i}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [{"addresses": [f"10.244.{i}.{j + 1}"], "nodeName": NODE} for j in range(count)]}


def _set(path: tuple, value: Any) -> Callable[[dict], None]:
    def poison(obj: dict) -> None:
        target = obj
        for part in path[:-1]:
            target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
        target[path[-1]] = value
    return poison


# (which object, how it is poisoned); "svc" poisons the Service, "slice" its EndpointSlice
POISONS: list[tuple[str, Callable[[dict], None]]] = [
    ("svc", _set(("spec", "loadBalancerSourceRanges"), [" 203.0.113.0/25", "junk", "10.0.0.0/33", 7])),
    ("svc", _set(("spec", "externalIPs"), ["1.2.3.4.5", " 10.1.2.3", None, "::zz"])),
    ("svc", _set(("spec", "clusterIP"), "10.96.0.999")),
    ("svc", _set(("spec", "clusterIPs"), ["bogus", 5])),
    ("svc", _set(("spec", "ports"), [{"port": 70000}, {"port": "eighty"}, {"port": 81, "protocol": "ICMP"}])),
    ("svc", _set(("spec", "ports"), "not a list")),
    ("svc", _set(("spec",), "not a dict")),
    ("svc", _set(("status", "loadBalancer"), {"ingress": [{"ip": "not-an-ip"}, {"ip": 17}]})),
    ("svc", _set(("spec", "sessionAffinityConfig"), {"clientIP": {"timeoutSeconds": 10 ** 12}})),
    ("svc", _set(("spec", "healthCheckNodePort"), -3)),
    ("svc", _set(("metadata", "name"), "n" * 300)),
    ("slice", _set(("endpoints",), [{"addresses": ["300.1.1.1"]}, {"addresses": ["::1"]}, {"addresses": [None]},
                                    {"addresses": "x"}])),
    ("slice", _set(("ports",), [{"name": "http", "port": 0}, {"name": "dns", "port": 5353, "protocol": "GRE"}])),
    ("slice", _set(("addressType",), "FQDN")),
]


@st.composite
def poisoned_states(draw) -> tuple[ProxyState, set[str]]:
    """A state from random Services (one of them poisoned through the API objects, or a
    malformed ServicePort added behind translate's back) and the keys that must be programmed."""
    count = draw(st.integers(2, 6))
    victim = draw(st.integers(0, count - 1))
    builder = ProxyStateBuilder(StateSettings(node_name=NODE, cluster_cidr="10.244.0.0/16"))
    poison = draw(st.sampled_from(range(len(POISONS) + 1)))
    for i in range(count):
        svc = service(i, draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"])), draw(st.booleans()),
                      draw(st.booleans()))
        slc = endpoint_slice(i, draw(st.integers(1, 3)))
        if i == victim and poison < len(POISONS):
            which, apply = POISONS[poison]
            apply(svc if which == "svc" else slc)
        builder.services.on_add(copy.deepcopy(svc))
        builder.slices.on_add(copy.deepcopy(slc))
    state = builder.build_state().state
    healthy = {k for k, sp in state.services.items() if sp.name != f"s{victim}" and sp.name.startswith("s")}
    if poison == len(POISONS):  # malformed values no API object can carry through translate
        bad = ServicePort("default", "raw", "", "TCP", 80, cluster_ips=("10.96.0.x",), external_ips=("nope",),
                          load_balancer_ips=("192.0.2.300",), load_balancer_source_ranges=(" 1.2.3.0/24",),
                          node_port=30999)
        state = q.with_services(state, {**state.services, bad.key: bad})
    return state, healthy


def program_by_render(backend: Any, state: ProxyState) -> Any:
    """What the proxier would apply: render, and on a render failure isolate the culprits."""
    rendered: list[Any] = []

    async def attempt(s: ProxyState) -> None:
        try:
            rendered.append(backend.render(s))
        except Exception as exc:
            raise q.Refused(q.RENDER, str(exc)) from exc

    async def run() -> Any:
        try:
            await attempt(state)
        except q.Refused as exc:
            await q.isolate(state, {}, attempt, exc)
        return rendered[-1]

    return asyncio.run(run())


@pytest.fixture(scope="module", params=MODES)
def mode(request):
    return request.param, backends.get(request.param)(NetNS(None), AgentConfig()), adapter_for(request.param)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=poisoned_states())
def test_every_other_service_port_is_rendered(mode, case):
    name, backend, adapter = mode
    state, healthy = case
    assert healthy  # the other Services are there to be checked
    model = adapter.from_ruleset(program_by_render(backend, state), NODE)
    for key in healthy:
        sp = state.services[key]
        rules = model.service(key)
        assert rules is not None, f"{name}: {key} missing"
        frontends = {(f.kind, f.ip, f.port) for f in rules.frontends}
        assert ("clusterIP", sp.cluster_ips[0], sp.port) in frontends, f"{name}: {key} has {frontends}"
