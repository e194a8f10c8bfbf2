"""The scenario suite's kernel probe for ipvs mode (how tests/e2e looks at and breaks a node).

Loaded as a pytest plugin (`-p tests.vm.ipvs_probe`) by the VM run of the scenario suite: it
registers IpvsProbe in tests.e2e.helpers.PROBES["ipvs"] without editing tests/e2e.
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
    from tests.e2e import helpers

    helpers.PROBES.setdefault("ipvs", IpvsProbe())
