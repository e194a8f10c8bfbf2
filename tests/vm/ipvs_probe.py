"""The scenario suite's kernel probe for ipvs mode (how tests/e2e looks at and breaks a node).

Loaded as a pytest plugin (`-p tests.vm.ipvs_probe`) by the VM run of the scenario suite: it
registers IpvsProbe in tests.e2e.helpers.PROBES["ipvs"] without editing tests/e2e, and inside
the VM lengthens the lab's readiness waits (see _slow_machine_timeouts).
"""
from __future__ import annotations

import subprocess


def _in(netns: str, argv: list[str], check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, check=check,
                          timeout=60)


class IpvsProbe:
    def rules_text(self, netns: str) -> str:
        """ipvsadm -Ln plus the dummy interface's addresses (both name every Service IP)."""
        return _in(netns, ["ipvsadm", "-Ln"]).stdout + _in(netns, ["ip", "-o", "addr", "show", "dev", "kube-ipvs0"]).stdout

    def break_dispatch(self, netns: str) -> None:
        """Clears every virtual server by hand (an admin's `ipvsadm -C`) and checks they are gone."""
        _in(netns, ["ipvsadm", "-C"], check=True)
        out = _in(netns, ["ipvsadm", "-Ln"], check=True).stdout
        assert not any(line.startswith(("TCP", "UDP", "SCTP")) for line in out.splitlines()), out

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


def pytest_configure(config):
    import os

    from tests.e2e import helpers

    helpers.PROBES.setdefault("ipvs", IpvsProbe())
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
    KPROXY_VM_TIMEOUT_SCALE (default 10) times their time. Only readiness waits: the
    scenarios' own deadlines (e.g. drift repaired within a sync period) are unchanged."""
    import os

    from kproxy.lab import lab as lab_module

    factor = float(os.environ.get("KPROXY_VM_TIMEOUT_SCALE", "10"))
    if factor != 1 and not hasattr(lab_module.wait_until, "__wrapped__"):
        lab_module.wait_until = _scaled(lab_module.wait_until, factor)
