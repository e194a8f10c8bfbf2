"""Fixtures of the end-to-end suite: one lab per test module and proxy mode, always torn down,
and a per-test scratch area whose pods and Services are removed after the test.

Every mode of kproxy/modes.py joins every scenario, looked at through its ModeSpec.e2e_probe;
modes the host kernel lacks (needs_vm) run only when named: KPROXY_E2E_MODES=mode1,mode2 runs
only those modes (the IPVS VM run uses it).
"""
from __future__ import annotations

import contextlib
import os

import pytest

from kproxy.lab.lab import Lab
from tests import nsutil
from tests.e2e.helpers import HOST_MODES


def _modes() -> list[str]:
    wanted = os.environ.get("KPROXY_E2E_MODES", "").strip()
    if wanted:
        return [m.strip() for m in wanted.split(",") if m.strip()]
    return sorted(HOST_MODES)


MODES = _modes()
SYNC_PERIOD_SECONDS = 5  # agents' periodic full sync in the lab: drift repair is bounded by it
# A node loss in seconds: a node silent for NODE_GRACE_SECONDS is NotReady, and its pods are
# evicted TOLERATION_SECONDS after it is tainted. Kubelets renew their Lease every quarter of
# NODE_LEASE_SECONDS: eight renewals per grace period, so a loaded machine can miss several.
# The emulated VM sets a longer grace period (tests/vm/test_vm.py).
NODE_GRACE_SECONDS = int(os.environ.get("KPROXY_E2E_NODE_GRACE", "8"))
NODE_LEASE_SECONDS = max(1, NODE_GRACE_SECONDS // 2)
TOLERATION_SECONDS = 2


@pytest.fixture(scope="module", params=MODES)
def lab(request, tmp_path_factory):
    mode = request.param
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:12].replace("_", "-")
    name = nsutil.unique_name(f"{module}-{mode[:4]}")
    lab = Lab(name, dir=str(tmp_path_factory.mktemp(f"lab-{mode}")))
    try:
        lab.up(nodes=2, mode=mode, sync_period=f"{SYNC_PERIOD_SECONDS}s", min_sync_period="0s",
               node_lease_seconds=NODE_LEASE_SECONDS, node_grace_period=f"{NODE_GRACE_SECONDS}s",
               toleration_seconds=TOLERATION_SECONDS)
        yield lab
    finally:
        lab.down()


class Scratch:
    """Pods and Services of one test, deleted when the test ends (even when it fails)."""

    def __init__(self, lab: Lab, prefix: str):
        self.lab = lab
        self.prefix = prefix
        self.services: list[tuple[str, str]] = []
        self.deployments: list[str] = []
        self.objects: list[tuple[object, str]] = []  # (resource, name) in default, deleted with their pods

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def pod(self, suffix: str, node: str, labels: dict | None = None, ready: bool = True):
        return self.lab.add_pod(self.name(suffix), node, labels=labels or {"app": self.prefix}, ready=ready)

    def service(self, suffix: str = "svc", **kwargs) -> dict:
        kwargs.setdefault("selector", {"app": self.prefix})
        svc = self.lab.create_service(self.name(suffix), **kwargs)
        self.services.append(("default", svc["metadata"]["name"]))
        return svc

    def deployment(self, suffix: str, replicas: int) -> dict:
        """A Deployment of echo pods labelled app=<prefix> (kproxy.lab.pods.echo_deployment:
        readiness probe, preStop sleep, maxSurge 1, maxUnavailable 0), run by the kubelets."""
        from kproxy.lab import pods

        dep = self.lab.apply(pods.echo_deployment(self.name(suffix), replicas, labels={"app": self.prefix}))
        self.deployments.append(dep["metadata"]["name"])
        return dep

    def apply(self, obj: dict) -> dict:
        """Creates `obj` (a workload: DaemonSet, Job, ...) in default; deleted at the end,
        its pods with it (background propagation)."""
        from kproxy.api import resources

        created = self.lab.apply(obj)
        self.objects.append((resources.by_kind(obj["apiVersion"], obj["kind"]), created["metadata"]["name"]))
        return created

    def cleanup(self) -> None:
        from kproxy.api.resources import DEPLOYMENTS, SERVICES

        for resource, name in self.objects:
            with contextlib.suppress(Exception):
                self.lab.client.delete(resource, name, "default", propagation_policy="Background")

        for name in self.deployments:  # the garbage collector deletes its ReplicaSets and pods
            with contextlib.suppress(Exception):
                self.lab.client.delete(DEPLOYMENTS, name, "default")
        for ns, name in self.services:
            with contextlib.suppress(Exception):
                self.lab.client.delete(SERVICES, name, ns)
        if self.lab.state is None:
            return
        for pod in list(self.lab.pods()):
            if pod.name.startswith(self.prefix + "-"):
                with contextlib.suppress(Exception):
                    self.lab.delete_pod(pod.name, pod.namespace)


@pytest.fixture
def scratch(lab, request):
    # Pod names are DNS labels: a short, unique, lowercase prefix per test.
    base = request.node.originalname.removeprefix("test_").replace("_", "-")[:20].strip("-")
    s = Scratch(lab, base)
    try:
        yield s
    finally:
        s.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed e2e test, attach what the nodes hold: each agent's liveness and last log
    lines, and the KUBE-SERVICES dispatch of every node, so a failure explains itself."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    lab = item.funcargs.get("lab")
    if not isinstance(lab, Lab) or lab.state is None:
        return
    from tests.e2e import helpers

    lines = []
    for node in lab.plan.nodes:
        rec = lab.state.agents.get(node.name)
        lines.append(f"== {node.name}: agent {'alive' if lab.agent_alive(node.name) else 'DEAD'}"
                     f" (log {rec.log if rec else '-'})")
        if rec:
            with contextlib.suppress(OSError):
                with open(rec.log, errors="replace") as f:
                    lines += ["   " + l for l in f.read().splitlines()[-15:]]
        for flavor in helpers.IPTABLES_FLAVORS:
            rules = [l for l in helpers.iptables_save(node.netns, flavor).splitlines()
                     if l.startswith("-A KUBE-SERVICES") or l.startswith("-A KUBE-NODEPORTS")]
            if rules:
                lines.append(f"   iptables-{flavor} nat KUBE-SERVICES/KUBE-NODEPORTS:")
                lines += ["     " + l for l in rules]
    lines += _slices_summary(lab)
    report.sections.append(("lab diagnostics", "\n".join(lines)))


def _slices_summary(lab: Lab) -> list[str]:
    """One line per EndpointSlice endpoint: address, node, ready/serving/terminating."""
    from kproxy.api.resources import ENDPOINT_SLICES

    lines = ["== EndpointSlices (address node ready/serving/terminating):"]
    try:
        slices = lab.client.list(ENDPOINT_SLICES, "default").get("items", [])
    except Exception as exc:  # diagnostics must never hide the real failure
        return lines + [f"   (cannot list: {exc})"]
    for sl in slices:
        service = (sl["metadata"].get("labels") or {}).get("kubernetes.io/service-name", "?")
        lines.append(f"   {sl['metadata']['name']} (service {service})")
        for ep in sl.get("endpoints") or []:
            c = ep.get("conditions") or {}
            lines.append(f"     {','.join(ep.get('addresses', []))} {ep.get('nodeName')} "
                         f"{c.get('ready')}/{c.get('serving')}/{c.get('terminating')}")
    return lines
