"""The kernel tests' backend scaffolding (tests/kernel/backends.py): mode ids map to the
configuration the tests mean, and a backend's rules are gone after a test body that failed."""
from __future__ import annotations

import pytest

from tests import nsutil
from tests.kernel.backends import config_for, open_backend, sync
from tests.kernel.topology import service, state

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("mode_id,mode,variant", [
    ("nft", "iptables", "nft"), ("legacy", "iptables", "legacy"), ("iptables", "iptables", "nft"),
    ("iptables-legacy", "iptables", "legacy"), ("userspace", "userspace", "nft"),
    ("ipvs-auto", "ipvs", "auto"), ("nftables", "nftables", "nft")])
def test_mode_ids_name_the_mode_and_its_iptables_variant(mode_id, mode, variant):
    config = config_for(mode_id)
    assert (config.mode, config.iptables.backend) == (mode, variant)


def test_overrides_change_one_section_field_or_an_agent_field():
    config = config_for("legacy", iptables={"localhost_nodeports": False}, cluster_cidr="10.244.0.0/16")
    assert config.iptables.backend == "legacy" and config.iptables.localhost_nodeports is False
    assert config.iptables.sync_period == config_for("legacy").iptables.sync_period
    assert config.cluster_cidr == "10.244.0.0/16"


@pytest.mark.parametrize("mode_id", ["nft", "nftables"])
def test_rules_are_removed_after_a_failed_test_body(mode_id):
    listing = {"nft": ["iptables-nft-save"], "nftables": ["nft", "list", "ruleset"]}[mode_id]
    with nsutil.netns("fixture") as node:
        with pytest.raises(RuntimeError, match="the test failed"):
            with open_backend(node, config_for(mode_id)) as backend:
                sync(backend, state(service("web", "10.96.0.10")))
                assert "10.96.0.10" in nsutil.run(["ip", "netns", "exec", node, *listing]).stdout
                raise RuntimeError("the test failed")
        assert "10.96.0.10" not in nsutil.run(["ip", "netns", "exec", node, *listing]).stdout
