"""The one iptables driver (kproxy/iptables/driver.py) and its users, with fake namespaces that
only answer commands (logic, no kernel): restore errors name the failing line, a lock held by
another writer is retried, a command that cannot run is an ApplyError, and the ipvs and
userspace modes send their iptables commands through the namespace with the same driver."""
from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from kproxy.agent.backend import ApplyError
from kproxy.iptables import driver
from kproxy.iptables.driver import VARIANTS, Iptables, describe_restore_error
from kproxy.ipvs import nfrules
from kproxy.ipvs.backend import IpvsBackend
from tests.unit.test_iptables_backend import FakeNetNS

LOCKED = subprocess.CompletedProcess([], 4, "", "Another app is currently holding the xtables lock. "
                                                "Stopped waiting after 5s.\n")
OK = subprocess.CompletedProcess([], 0, "", "")


class ScriptedNetNS(FakeNetNS):
    """FakeNetNS whose answers may be lists, given out in order (the last one repeats)."""

    def command(self, argv, input=None, check=True, timeout=None):
        self.calls.append(list(argv))
        answer = self.outputs.get(argv[0], OK)
        if isinstance(answer, list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.fixture(autouse=True)
def binaries_installed(monkeypatch):
    monkeypatch.setattr("kproxy.iptables.driver.Variant.available", lambda self: True)
    monkeypatch.setattr(driver.time, "sleep", lambda seconds: None)


def test_restore_errors_name_the_line_and_rule():
    text = "*nat\n:KUBE-X - [0:0]\n-A KUBE-X -m bogus -j ACCEPT\nCOMMIT\n"
    legacy = ("iptables-restore v1.8.9 (legacy): Couldn't load match `bogus':No such file or directory\n\n"
              "Error occurred at line: 3\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n")
    msg = describe_restore_error("iptables-legacy-restore", text, legacy)
    assert "line 3 (-A KUBE-X -m bogus -j ACCEPT)" in msg and "Couldn't load match" in msg
    nft = "iptables-nft-restore: line 3 failed\n"
    assert "line 3 (-A KUBE-X -m bogus -j ACCEPT)" in describe_restore_error("iptables-nft-restore", text, nft)
    assert describe_restore_error("x", text, "") == "x failed: no error output"


def test_restore_retries_while_the_lock_is_held_then_succeeds():
    ns = ScriptedNetNS({"iptables-legacy-restore": [LOCKED, LOCKED, OK]})
    Iptables(ns, VARIANTS["legacy"]).restore("*nat\nCOMMIT\n")
    assert ns.calls == [["iptables-legacy-restore", "--noflush", "-w", "5"]] * 3


def test_restore_gives_up_after_the_retries_and_says_why():
    ns = ScriptedNetNS({"iptables-legacy-restore": [LOCKED]})
    with pytest.raises(ApplyError, match="holding the xtables lock"):
        Iptables(ns, VARIANTS["legacy"]).restore("*nat\nCOMMIT\n")
    assert len(ns.calls) == driver.LOCK_RETRIES


def test_a_refused_line_is_not_retried():
    refused = subprocess.CompletedProcess([], 2, "", "iptables-nft-restore: line 2 failed\n")
    ns = ScriptedNetNS({"iptables-nft-restore": [refused]})
    with pytest.raises(ApplyError, match=r"line 2 \(-A KUBE-X -j BOGUS\)"):
        Iptables(ns, VARIANTS["nft"]).restore("*nat\n-A KUBE-X -j BOGUS\nCOMMIT\n")
    assert len(ns.calls) == 1


@pytest.mark.parametrize("failure,words", [(FileNotFoundError(2, "No such file or directory"), "No such file"),
                                           (subprocess.TimeoutExpired("iptables-nft-save", 1800), "did not finish")])
def test_a_command_that_cannot_run_is_an_apply_error(failure, words):
    ipt = Iptables(ScriptedNetNS({"iptables-nft-save": failure}), VARIANTS["nft"])
    with pytest.raises(ApplyError, match=words):
        ipt.save()
    assert not ipt.works()


def test_save_failure_is_an_error_but_try_save_says_none():
    broken = subprocess.CompletedProcess([], 1, "", "can't initialize iptables table `nat'")
    ipt = Iptables(ScriptedNetNS({"iptables-nft-save": broken}), VARIANTS["nft"])
    with pytest.raises(ApplyError, match="can't initialize"):
        ipt.save("-t", "nat")
    assert ipt.try_save("-t", "nat") is None


def test_choose_auto_follows_kube_chains_then_the_first_that_works():
    kube = subprocess.CompletedProcess([], 0, "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n", "")
    assert driver.choose(ScriptedNetNS({"iptables-legacy-save": kube}), "auto").variant.name == "legacy"
    assert driver.choose(ScriptedNetNS({}), "auto").variant.name == "nft"
    broken = subprocess.CompletedProcess([], 1, "", "no nf_tables")
    assert driver.choose(ScriptedNetNS({"iptables-nft-save": broken}), "auto").variant.name == "legacy"


def ipvs_backend(netns) -> IpvsBackend:
    return IpvsBackend(netns, SimpleNamespace(ipvs=SimpleNamespace(scheduler=""),
                                              iptables=SimpleNamespace(backend="legacy")))


def test_ipvs_writes_its_rules_through_the_namespace_with_lock_retries():
    """ipvs mode's iptables commands go through netns.command (so they run in the namespace
    from any thread) and its restore is retried while the lock is held."""
    ns = ScriptedNetNS({"iptables-legacy-restore": [LOCKED, OK],
                        "iptables-legacy": [subprocess.CompletedProcess([], 1, "", "Bad rule"), OK]})
    ipvs_backend(ns)._write_iptables("*nat\nCOMMIT\n")
    restores = [c for c in ns.calls if c[0] == "iptables-legacy-restore"]
    assert restores == [["iptables-legacy-restore", "--noflush", "-w", "5"]] * 2
    checks = [c for c in ns.calls if c[0] == "iptables-legacy"]
    table, chain, target = nfrules.JUMPS[0]
    args = nfrules.jump_args(chain, target)
    assert checks[:2] == [["iptables-legacy", "-w", "5", "-t", table, "-C", *args],  # missing:
                          ["iptables-legacy", "-w", "5", "-t", table, "-I", args[0], "1", *args[1:]]]  # at the top


def test_ipvs_without_a_working_iptables_is_an_apply_error():
    broken = subprocess.CompletedProcess([], 1, "", "can't initialize iptables table `filter'")
    with pytest.raises(ApplyError, match="iptables-legacy-restore is not installed or does not work"):
        ipvs_backend(ScriptedNetNS({"iptables-legacy-save": broken}))._write_iptables("*nat\nCOMMIT\n")
