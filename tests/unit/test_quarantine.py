"""One ServicePort the agent cannot program is found and set aside, the rest is programmed
(kproxy.agent.quarantine, and the proxier around it: skip metric, Warning Event, logged once)."""
from __future__ import annotations

import asyncio
import logging

import pytest

from kproxy.agent import quarantine as q
from kproxy.agent.backend import ApplyError
from kproxy.agent.proxier import Proxier
from kproxy.agent.state import ProxyState, ServicePort
from kproxy.api.resources import ENDPOINT_SLICES
from kproxy.netns import NetNS
from tests.unit.test_agent_proxier import CONFIG, FakeBackend, FakeClient, endpoint_slice, gauge, service, wait_for


def sp(name: str, port: int = 80) -> ServicePort:
    return ServicePort("default", name, "", "TCP", port, cluster_ips=("10.96.0.1",))


def state(*ports: ServicePort) -> ProxyState:
    return ProxyState("n", services={p.key: p for p in ports})


class Kernel:
    """Holds what the last successful attempt applied; refuses any state holding a bad name."""

    def __init__(self, bad: set[str], transient: int = 0) -> None:
        self.bad, self.transient = bad, transient
        self.held: dict[str, ServicePort] = {}
        self.attempts = 0

    async def attempt(self, s: ProxyState) -> None:
        self.attempts += 1
        if self.transient:
            self.transient -= 1
            raise q.Refused(q.KERNEL, "busy")
        names = sorted(p.name for p in s.services.values() if p.name in self.bad)
        if names:
            raise q.Refused(q.KERNEL, f"refused {names}")
        self.held = dict(s.services)


async def program(kernel: Kernel, target: ProxyState, base: dict) -> tuple[dict, dict]:
    try:
        await kernel.attempt(target)
        return dict(target.services), {}
    except q.Refused as exc:
        return await q.isolate(target, base, kernel.attempt, exc)


@pytest.mark.parametrize("bad", [{"s7"}, {"s0", "s31"}, {"s3", "s4", "s5"}])
def test_isolate_programs_everything_but_the_culprits(bad):
    ports = [sp(f"s{i}") for i in range(32)]
    kernel = Kernel(bad)
    held, culprits = asyncio.run(program(kernel, state(*ports), {}))
    assert set(culprits) == {f"default/{n}:" for n in bad}
    assert all(c.stage == q.KERNEL and "refused" in c.reason for c in culprits.values())
    assert held == kernel.held == {p.key: p for p in ports if p.name not in bad}
    assert kernel.attempts <= 1 + 2 * len(bad) * 6  # bisection, not one trial per ServicePort


def test_a_bad_update_keeps_the_previous_rules():
    good, bad_update, other = sp("a"), ServicePort("default", "a", "", "TCP", 80, cluster_ips=("10.96.0.2",)), sp("b")
    kernel = Kernel(set())
    kernel.held = {good.key: good}
    original = kernel.attempt

    async def refuse_new_ip(s):
        if any(p.cluster_ips == ("10.96.0.2",) for p in s.services.values()):
            kernel.attempts += 1
            raise q.Refused(q.KERNEL, "no")
        await original(s)

    kernel.attempt = refuse_new_ip
    held, culprits = asyncio.run(program(kernel, state(bad_update, other), {good.key: good}))
    assert list(culprits) == [good.key] and culprits[good.key].service_port == bad_update
    assert held == {good.key: good, other.key: other}  # the working version stays


def test_a_failure_no_trial_escapes_is_not_blamed_on_an_object():
    kernel = Kernel(set(), transient=10)
    with pytest.raises(q.Refused, match="busy"):
        asyncio.run(program(kernel, state(sp("a")), {}))
    # one change that fails, but the kernel takes the state without it: it is the culprit
    kernel = Kernel({"a"})
    held, culprits = asyncio.run(program(kernel, state(sp("a"), sp("b")), {"default/b:": sp("b")}))
    assert list(culprits) == ["default/a:"] and held == {"default/b:": sp("b")}


def test_quarantine_holds_while_the_value_is_unchanged():
    quarantine = q.Quarantine()
    old, bad = sp("a"), sp("a", 81)
    news = quarantine.add({bad.key: q.Skipped(bad, q.KERNEL, "no")})
    assert list(news) == [bad.key] and quarantine.counts() == {q.RENDER: 0, q.KERNEL: 1}
    eff, released = quarantine.effective(state(bad, sp("b")), {old.key: old})
    assert eff.services[bad.key] == old and released == set()
    eff, released = quarantine.effective(state(bad), {})
    assert bad.key not in eff.services
    assert quarantine.add({bad.key: q.Skipped(bad, q.KERNEL, "no")}) == {}  # already reported
    fixed = sp("a", 82)
    eff, released = quarantine.effective(state(fixed), {})
    assert eff.services[fixed.key] == fixed and released == {fixed.key} and not quarantine.skipped
    quarantine.add({bad.key: q.Skipped(bad, q.KERNEL, "no")})
    eff, released = quarantine.effective(state(bad), {}, retry=True)  # a full sync tries again
    assert eff.services[bad.key] == bad and released == {bad.key}


# ---------------------------------------------------------------- the proxier around it

class RefusingBackend(FakeBackend):
    """Refuses (like a kernel) any ruleset holding a Service named "poison"."""

    def apply(self, ruleset, previous):
        if any(p.name == "poison" for p in ruleset.services.values()):
            raise ApplyError("Invalid argument")
        return super().apply(ruleset, previous)


class EventClient(FakeClient):
    def __init__(self, objects, refuse_events=False):
        super().__init__(objects)
        self.events = []
        self.refuse_events = refuse_events

    async def create(self, resource, obj, namespace=None):
        if self.refuse_events:
            raise PermissionError("events is forbidden")
        self.events.append((resource.plural, namespace, obj))
        return obj


async def _poisoned_service_is_skipped(caplog, refuse_events):
    names = ("a", "poison", "z")
    client = EventClient({"services": [service(n) for n in names],
                          "endpointslices": [endpoint_slice(f"{n}-1", n, ["node-1"]) for n in names]},
                         refuse_events=refuse_events)
    backend = RefusingBackend()
    proxier = Proxier(CONFIG, "node-1", client, backend, NetNS(None))
    task = asyncio.create_task(proxier.run())
    try:
        await wait_for(lambda: proxier.sync_count == 1)
        final, _ = backend.applied[-1]
        assert sorted(final.services) == ["default/a:p", "default/z:p"]
        assert gauge(proxier, "kubeproxy_sync_proxy_rules_skipped_service_ports", stage="kernel") == 1
        assert gauge(proxier, "kubeproxy_sync_proxy_rules_skipped_objects_total", reason="KernelRefused") == 1
        await proxier.events.drain()
        if not refuse_events:
            ((plural, ns, event),) = client.events
            assert (plural, ns, event["reason"], event["type"]) == ("events", "default", "KernelRefused", "Warning")
            assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Service", "namespace": "default",
                                               "name": "poison"}
            assert event["reportingComponent"] == "kube-proxy" and event["source"] == {
                "component": "kube-proxy", "host": "node-1"}
            assert "Invalid argument" in event["message"]
        # another change: the poisoned Service stays skipped without a new trial, log or Event
        applies = len(backend.applied)
        client.send(ENDPOINT_SLICES, "MODIFIED", endpoint_slice("a-1", "a", ["node-1", "node-2"], rv="2"))
        await wait_for(lambda: proxier.sync_count == 2)
        assert len(backend.applied) == applies + 1
        assert len(backend.applied[-1][0].services["default/a:p"].endpoints) == 2
        await proxier.events.drain()
        assert len(client.events) == (0 if refuse_events else 1)
        skipped_logs = [r for r in caplog.records if "skipped" in r.getMessage()]
        assert len(skipped_logs) == 1 and "default/poison:p" in skipped_logs[0].getMessage()
        if refuse_events:
            assert len([r for r in caplog.records if "cannot write Events" in r.getMessage()]) == 1
    finally:
        proxier.stop()
        await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("refuse_events", [False, True])
def test_poisoned_service_is_skipped_and_reported_once(caplog, refuse_events):
    caplog.set_level(logging.INFO)
    asyncio.run(_poisoned_service_is_skipped(caplog, refuse_events))


async def _invalid_values_are_reported():
    bad = service("lb", type="LoadBalancer", loadBalancerSourceRanges=[" 203.0.113.0/25", "nonsense"])
    client = EventClient({"services": [bad], "endpointslices": [endpoint_slice("lb-1", "lb", ["node-1"])]})
    backend = FakeBackend()
    proxier = Proxier(CONFIG, "node-1", client, backend, NetNS(None))
    task = asyncio.create_task(proxier.run())
    try:
        await wait_for(lambda: proxier.sync_count == 1)
        state_, _ = backend.applied[-1]
        assert state_.services["default/lb:p"].load_balancer_source_ranges == ("203.0.113.0/25",)
        await proxier.events.drain()
        ((_, _, event),) = client.events
        assert event["reason"] == "InvalidValue" and "'nonsense' is not a CIDR" in event["message"]
        assert gauge(proxier, "kubeproxy_sync_proxy_rules_skipped_objects_total", reason="InvalidValue") == 1
    finally:
        proxier.stop()
        await asyncio.wait_for(task, 10)


def test_invalid_values_are_left_out_and_reported():
    asyncio.run(_invalid_values_are_reported())


@pytest.mark.parametrize("name", ["web", 'poison"' + "x" * 293, "UPPER_case"])
def test_warning_events_pass_the_apiservers_validation(name):
    from kproxy.agent.events import SERVICE_REF, warning_event
    from kproxy.api.resources import EVENTS
    from kproxy.api.validation import validate
    event = warning_event(SERVICE_REF, "default", name, "KernelRefused", "m" * 5000, "node-1", now=1.5e9)
    assert validate(EVENTS, event) == []
    assert event["involvedObject"]["name"] == name  # the object is named as it is
