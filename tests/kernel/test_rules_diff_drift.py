"""`kproxy rules diff` after the agent's way of syncing (issue 14 item 8), every mode the kernel
offers (ipvs in the test VM: `python -m kproxy.vm -- pytest tests/kernel/test_rules_diff_drift.py`): Services created one sync at a time, some deleted, others added
and changed, all applied incrementally to a real kernel in a namespace; then the kernel is
compared with a from-scratch render of the final state, as the CLI does. Allocation details
(nftables' slot ranges and shard maps, userspace's listener ports) must not show as drift; a
real drift (an endpoint or a dispatch rule deleted by hand) must."""
from __future__ import annotations

import shlex
from dataclasses import replace

import pytest

from kproxy import modes
from kproxy.agent.state import Endpoint, ProxyState, ServicePort
from kproxy.rules.adapter import adapter_for, read
from kproxy.rules.diff import diff
from tests.kernel.backends import render
from tests.kernel.topology import NODE_IP, POD_PORT, single_node

pytestmark = pytest.mark.kernel

MODES = modes.names()


@pytest.fixture(scope="module")
def topo():
    with single_node(["a", "b", "c"], tag="drift") as topology:
        yield topology


@pytest.fixture(params=MODES)
def mode(request):
    return request.param  # the backend fixture (tests/kernel/conftest.py), skipped where unavailable


def ep(topo, pod: str, local: bool = True) -> Endpoint:
    return Endpoint(topo.pods[pod].ip, POD_PORT, is_local=local, node_name="n1" if local else "n2")


def service(topo, i: int, pods: str = "ab", **kw) -> ServicePort:
    return ServicePort("default", f"s{i}", "", "TCP", 80, cluster_ips=(f"10.96.1.{i}",),
                       endpoints=tuple(sorted(ep(topo, p) for p in pods)), **kw)


def node_state(services, revision: int) -> ProxyState:
    return ProxyState("n1", node_ips=(NODE_IP,), cluster_cidr="10.244.0.0/16", service_cidrs=("10.96.0.0/12",),
                      services={s.key: s for s in services}, revision=revision)


def sync_incrementally(backend, steps: list[list[ServicePort]]):
    """One render + apply per step, each from the previous ruleset (the agent's partial syncs)."""
    previous = None
    for revision, services in enumerate(steps, 1):
        ruleset = render(backend, node_state(services, revision), previous)
        backend.apply(ruleset, previous)
        previous = ruleset
    return previous


def test_incremental_syncs_show_no_drift_and_real_drift_still_shows(topo, mode, backend):
    adapter = adapter_for(mode)
    created: list[ServicePort] = []
    steps = []
    for i in range(1, 13):  # 12 Services, one sync each, some with affinity or a node port
        kw = {"session_affinity_timeout": 60} if i % 5 == 0 else {"node_port": 30000 + i} if i % 4 == 0 else {}
        created.append(service(topo, i, "abc"[: 1 + i % 3], **kw))
        steps.append(list(created))
    kept = [s for s in created if s.name not in ("s2", "s3", "s6", "s9")]  # delete 4
    steps.append(kept)
    # two new ones take the freed slots; one kept Service grows
    grown = replace(kept[0], endpoints=tuple(sorted(ep(topo, p) for p in "abc")))
    final = [grown, *kept[1:], service(topo, 20, "c"), service(topo, 21, "abc")]
    steps.append(final)
    sync_incrementally(backend, steps)

    def kernel():
        return adapter.from_inspection(backend.netns.run(read, adapter, backend), topo.node)

    scratch = backend.render(node_state(final, 1))  # what `kproxy rules diff` renders
    desired = adapter.from_ruleset(scratch, topo.node)
    assert diff(desired, kernel()) == []
    assert len(desired.services) == len(final)

    # a real drift: one endpoint of s21 (userspace: its ClusterIP redirect) taken out by hand
    victim = f"{topo.pods['b'].ip}:{POD_PORT}"
    lost = HAND_EDITS[mode](backend, kernel().service("default/s21:"), victim)
    found = diff(desired, kernel())
    behaviour = [(d.kind, d.scope, d.object.text.split()[:2]) for d in found if d.object.kind == "behaviour"]
    assert behaviour == [("missing", "default/s21:", lost)], found
    assert [d.kind for d in found if d.object.kind != "behaviour"] == ["missing"], found  # the object itself
    backend.apply(scratch, None)  # a full sync repairs it
    assert diff(desired, kernel()) == []


def _delete_nft_slot(backend, svc, address: str) -> None:
    element = next(o for o in svc.objects if o.kind == "map-element" and o.container.startswith("nft/endpoints-")
                   and o.text.endswith(address.replace(":", " . ")))
    slot = element.text.split(" : ")[0]
    backend.netns.command(["nft", "delete", "element", "ip", "kproxy", element.container[4:], "{", slot, "}"])
    return ["endpoint", address]


def _delete_iptables_dnat(backend, svc, address: str) -> None:
    rule = next(o for o in svc.objects if o.kind == "rule" and o.container.startswith("nat/KUBE-SEP-")
                and f"--to-destination {address}" in o.text)
    backend.netns.command(["iptables-nft", "-t", "nat", "-D", rule.container[4:], *shlex.split(rule.text)])
    return ["endpoint", address]


def _delete_userspace_redirect(backend, svc, address: str) -> list[str]:
    # the proxy process balances over its listener's endpoints (no kernel object to edit);
    # the kernel's part is the redirect to the listener
    rule = next(o for o in svc.objects if o.kind == "rule" and o.entry and "cluster IP" in o.text)
    backend.netns.command(["iptables-nft", "-t", "nat", "-D", rule.container[4:], *shlex.split(rule.text)])
    return ["frontend", "10.96.1.21:80/tcp"]


def _delete_ipvs_real_server(backend, svc, address: str) -> list[str]:
    backend.netns.command(["ipvsadm", "-d", "-t", "10.96.1.21:80", "-r", address])
    return ["endpoint", address]


HAND_EDITS = {"nftables": _delete_nft_slot, "iptables": _delete_iptables_dnat, "userspace": _delete_userspace_redirect,
              "ipvs": _delete_ipvs_real_server}
