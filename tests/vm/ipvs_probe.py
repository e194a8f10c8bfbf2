"""The scenario suite's kernel probe for ipvs mode (how tests/e2e looks at and breaks a node).

IpvsProbe is ipvs's ModeSpec.e2e_probe (tests/e2e/helpers.py probe_for loads it). Loaded as a
pytest plugin (`-p tests.vm.ipvs_probe`) by the VM run of the scenario suite, this module, inside
the VM, lengthens the lab's readiness waits (see _slow_machine_timeouts), skips the scenarios IPVS
cannot satisfy with the kernel's reason (IPVS_LIMITS), checks after every scenario that each
node's ipvsadm -Ln, `kproxy rules` and the desired state agree, and attaches each node's IPVS
state to a failed scenario's report.
"""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import time

import pytest

# After a scenario its Services are being deleted: the agents converge within a few syncs.
AGREEMENT_TIMEOUT = 120.0
COUNTERS_TIMEOUT = 15.0


def _in(netns: str, argv: list[str], check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, check=check,
                          timeout=60)


class IpvsProbe:
    def rules_text(self, netns: str) -> str:
        """ipvsadm -Ln plus the dummy interface's addresses (both name every Service IP)."""
        return _in(netns, ["ipvsadm", "-Ln"]).stdout + _in(netns, ["ip", "-o", "addr", "show", "dev", "kube-ipvs0"]).stdout

    def break_dispatch(self, netns: str) -> None:
        """Clears every virtual server by hand (an admin's `ipvsadm -C`) and checks that it took:
        each virtual server that had counted connections is now gone or counts fewer (it was
        made again: the agent may repair it before we look, the kernel's counters say it was
        cleared)."""
        # the kernel sums its per-CPU counters into these stats every 2 s (the rate
        # estimator): a connection made just now may not show yet
        deadline = time.monotonic() + COUNTERS_TIMEOUT
        before = self._connection_counts(netns)
        while not any(before.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
            before = self._connection_counts(netns)
        assert any(before.values()), f"no virtual server has carried a connection yet: {before}"
        _in(netns, ["ipvsadm", "-C"], check=True)
        after = self._connection_counts(netns)
        kept = {vs: n for vs, n in after.items() if before.get(vs, 0) and n >= before[vs]}
        assert not kept, f"virtual servers survived ipvsadm -C: {kept} (before: {before})"

    @staticmethod
    def _connection_counts(netns: str) -> dict[str, int]:
        """"PROTO addr:port" -> the virtual server's Conns counter (`ipvsadm -Ln --stats`)."""
        out = _in(netns, ["ipvsadm", "-Ln", "--stats", "--exact"], check=True).stdout
        return {f"{w[0]} {w[1]}": int(w[2]) for w in (l.split() for l in out.splitlines())
                if len(w) > 2 and w[0] in ("TCP", "UDP", "SCTP") and w[2].isdigit()}

    def seed_user_rules(self, netns: str) -> None:
        from tests.e2e.helpers import IptablesProbe

        IptablesProbe().seed_user_rules(netns)

    def has_kproxy_rules(self, netns: str) -> bool:
        return _in(netns, ["ip", "link", "show", "kube-ipvs0"]).returncode == 0

    def snapshot(self, netns: str) -> object:
        from tests.e2e.helpers import normalized_ruleset

        services = sorted(l for l in _in(netns, ["ipvsadm", "-Ln"]).stdout.splitlines()
                          if l.startswith(("TCP", "UDP", "SCTP", "  ->")))
        return (normalized_ruleset(netns), services, sorted(_in(netns, ["ipset", "list", "-n"]).stdout.split()),
                self.has_kproxy_rules(netns))


def parse_ipvsadm(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """`ipvsadm -Ln` -> {"PROTO addr:port": (virtual server line, {"-> addr:port Masq weight"})},
    whitespace normalised, connection counters left out."""
    out: dict[str, tuple[str, set[str]]] = {}
    current = None
    for line in text.splitlines():
        words = line.split()
        if words[:1] and words[0] in ("TCP", "UDP", "SCTP"):
            current = f"{words[0]} {words[1]}"
            out[current] = (" ".join(words), set())
        elif words[:1] == ["->"] and current is not None and len(words) >= 4 and words[1] != "RemoteAddress:Port":
            out[current][1].add(" ".join(words[:4]))
    return {k: (head, frozenset(reals)) for k, (head, reals) in out.items()}


def rules_ipvs_objects(doc: dict) -> dict[str, tuple[str, frozenset[str]]]:
    """`kproxy rules -o json` (ipvs mode) -> the same shape as parse_ipvsadm; raises
    AssertionError for virtual servers without an owner (nothing in this lab makes them)."""
    assert not doc.get("unowned"), f"virtual servers no Service port owns: {doc['unowned']}"
    objects = [o for s in doc["services"] for o in s["objects"]]
    out: dict[str, tuple[str, set[str]]] = {}
    for o in objects:
        if o["kind"] == "virtual-server":
            words = o["text"].split()
            out.setdefault(f"{words[0]} {words[1]}", (" ".join(words), set()))
    for o in objects:
        if o["kind"] == "real-server":
            out[o["container"]][1].add(" ".join(o["text"].split()[:4]))
    return {k: (head, frozenset(reals)) for k, (head, reals) in out.items()}


def kproxy_cli(argv: list[str]) -> tuple[int, str, str]:
    """Runs `kproxy ARGV` in this process (a new Python costs tens of seconds in the
    emulated VM); same code path as the command line."""
    from kproxy.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def node_disagreement(lab, node) -> str:
    """"" when `ipvsadm -Ln` of the node equals `kproxy rules -o json --mode ipvs` and
    `kproxy rules diff` finds the kernel in sync with the desired state; else what differs."""
    common = ["--mode", "ipvs", "--netns", node.netns, "-o", "json"]
    kernel = parse_ipvsadm(_in(node.netns, ["ipvsadm", "-Ln"], check=True).stdout)
    code, out, err = kproxy_cli(["rules", *common])
    if code != 0:
        return f"kproxy rules exited {code}: {err.strip()}"
    try:
        shown = rules_ipvs_objects(json.loads(out))
    except AssertionError as exc:
        return str(exc)
    if shown != kernel:
        return f"ipvsadm -Ln {sorted(kernel.items())} != kproxy rules {sorted(shown.items())}"
    code, out, err = kproxy_cli(["rules", "diff", *common, "--kubeconfig", lab.kubeconfig,
                                 "--node-name", node.name, "--cluster-cidr", lab.plan.cluster_cidr])
    if code != 0:
        return f"kproxy rules diff exited {code}: {out.strip() or err.strip()}"
    return ""


@pytest.fixture(autouse=True)
def ipvs_agrees_with_rules_and_desired_state(request):
    """After every scenario in ipvs mode (and after its scratch objects were removed), each
    node's IPVS table as ipvsadm prints it equals what `kproxy rules` reports, and `kproxy
    rules diff` finds nothing between the kernel and the desired state (bounded poll: the
    agents are still removing the scenario's Services)."""
    yield
    lab = request.node.funcargs.get("lab")
    if lab is None or getattr(lab, "state", None) is None or lab.state.mode != "ipvs":
        return
    for node in lab.plan.nodes:
        deadline = time.monotonic() + AGREEMENT_TIMEOUT
        while (why := node_disagreement(lab, node)):
            if time.monotonic() >= deadline:
                pytest.fail(f"{node.name}: kernel, kproxy rules and desired state disagree "
                            f"after {AGREEMENT_TIMEOUT:g}s: {why}")
            time.sleep(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed scenario, attach each node's IPVS state: ipvsadm -Ln, kube-ipvs0's addresses,
    the ipsets and iptables-save (the e2e conftest's diagnostics only show iptables dispatch)."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    lab = item.funcargs.get("lab")
    if lab is None or getattr(lab, "state", None) is None or getattr(lab.state, "mode", None) != "ipvs":
        return
    lines = []
    for node in lab.plan.nodes:
        lines.append(f"== {node.name} ({node.netns})")
        for argv in (["ipvsadm", "-Ln"], ["ip", "-o", "-4", "addr", "show", "dev", "kube-ipvs0"],
                     ["ipset", "list"], ["iptables-save"]):
            try:
                res = _in(node.netns, argv)
                text = res.stdout + res.stderr
            except Exception as exc:  # diagnostics must never hide the real failure
                text = f"(failed: {exc})"
            lines.append(f"-- {' '.join(argv)}")
            lines += ["   " + l for l in text.splitlines() if l.strip()]
    report.sections.append(("ipvs diagnostics", "\n".join(lines)))


# Scenarios whose expectation the kernel's IPVS cannot meet, with the reason (reported as skips).
IPVS_LIMITS = {
    "test_session_affinity_times_out":
        "IPVS limit (kubernetes/kubernetes#89358, skipped in Kubernetes' IPVS e2e jobs): a persistence "
        "template outlives its timeout while any connection it chose is still in IPVS's table, and a "
        "closed TCP connection stays there in TIME_WAIT for 120 s (not settable), after which the "
        "template is re-armed for 60 s; affinity therefore lasts minutes, not the Service's 3 s",
}

# Scenarios left out of the emulated VM run for CI's time budget, with the reason (reported as
# skips). They pass there when run by hand without this plug-in (`python -m kproxy.vm -- env
# KPROXY_E2E_MODES=ipvs KPROXY_E2E_NODE_GRACE=40 pytest tests/e2e/test_scenarios.py -k lost_node`),
# and what they check of the data plane is covered in ipvs mode by other scenarios.
VM_TIME_BUDGET = {
    "test_a_lost_node_loses_its_pods_to_the_other_and_traffic_recovers":
        "CI time budget: ~6 min under emulation (a 40 s node grace period, evictions, a kubelet "
        "restart); its data-plane part, endpoints leaving and rejoining an IPVS service, is what "
        "the killed-process and rolling-update scenarios check in ipvs mode, and the node "
        "lifecycle itself runs in every host mode",
}

# helpers.poll waits in the scenarios that only wait for a new Python process to come up (lengthened
# in the VM like the lab's readiness waits; every other poll keeps its deadline).
READINESS_POLLS = ("the extra agent to be healthy",
                   # pods the kubelets start (a Python start each) and the rollouts made of them
                   "the Deployment's pods to be Ready", "the rollout to complete", "the old pods to be gone",
                   "every pod to be gone", "two new pods to be Ready", "the container to be restarted")


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = getattr(item, "originalname", "")
        reason = IPVS_LIMITS.get(name) or VM_TIME_BUDGET.get(name)
        callspec = getattr(item, "callspec", None)
        if reason and callspec is not None and callspec.params.get("lab") == "ipvs":
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_configure(config):
    import os

    if os.environ.get("KPROXY_IN_VM") == "1":
        _slow_machine_timeouts()


def _scaled(fn, factor: float):
    """`fn(check, timeout, ...)` with the timeout multiplied by `factor`."""
    def wrapper(check, timeout, *args, **kwargs):
        return fn(check, timeout * factor, *args, **kwargs)
    wrapper.__wrapped__ = fn
    return wrapper


def _slow_machine_timeouts() -> None:
    """Inside the emulated VM (no KVM: every process start costs tens of seconds) the lab's
    readiness waits (apiserver kubeconfig, agents healthy, pods listening) get
    KPROXY_VM_TIMEOUT_SCALE (default 10) times their time, and so do the scenarios' polls named
    in READINESS_POLLS. Only readiness waits: the scenarios' own deadlines (e.g. drift repaired
    within a sync period) are unchanged."""
    import os

    from kproxy.lab import lab as lab_module

    from tests.e2e import helpers

    factor = float(os.environ.get("KPROXY_VM_TIMEOUT_SCALE", "10"))
    if factor != 1 and not hasattr(lab_module.wait_until, "__wrapped__"):
        lab_module.wait_until = _scaled(lab_module.wait_until, factor)
    if factor != 1 and not hasattr(helpers.poll, "__wrapped__"):
        helpers.poll = _scaled_readiness_poll(helpers.poll, factor)


def _scaled_readiness_poll(poll, factor: float):
    """helpers.poll with the timeout times `factor` for the waits named in READINESS_POLLS."""
    def wrapper(check, timeout, what, *args, **kwargs):
        return poll(check, timeout * factor if what in READINESS_POLLS else timeout, what, *args, **kwargs)
    wrapper.__wrapped__ = poll
    return wrapper
