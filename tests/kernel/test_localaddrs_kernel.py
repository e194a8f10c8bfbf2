"""The node's addresses read from the kernel inside a namespace, and followed as they change."""
from __future__ import annotations

import asyncio

import pytest

from kproxy.agent.localaddrs import LocalAddressWatcher, read_local_ips, read_local_ipv4
from kproxy.netns import NetNS
from tests import nsutil

pytestmark = pytest.mark.kernel


def _ip(ns: str, *args: str) -> None:
    nsutil.run(["ip", "-n", ns, *args])


def test_reads_every_interface_but_kproxys_dummy_device():
    with nsutil.netns("la-read") as ns:
        _ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        _ip(ns, "addr", "add", "10.200.0.11/24", "dev", "eth0")
        _ip(ns, "addr", "add", "192.168.1.5/24", "dev", "eth0", "label", "eth0:1")
        _ip(ns, "addr", "add", "10.244.1.1/32", "dev", "eth1")
        _ip(ns, "link", "set", "eth0", "up")  # gives eth0 an IPv6 link-local address, never a node address
        _ip(ns, "-6", "addr", "add", "fd00:200::11/64", "dev", "eth0", "nodad")
        # stands in for ipvs mode's kube-ipvs0 (no dummy links on this kernel): Service IPs there
        # are not node addresses
        _ip(ns, "link", "add", "kube-ipvs0", "type", "bridge")
        _ip(ns, "addr", "add", "10.96.0.10/32", "dev", "kube-ipvs0")
        _ip(ns, "-6", "addr", "add", "fd00:10:96::10/128", "dev", "kube-ipvs0", "nodad")
        _ip(ns, "link", "set", "lo", "up")
        netns = NetNS(ns)
        try:
            assert netns.run(read_local_ipv4) == ("10.200.0.11", "10.244.1.1", "127.0.0.1", "192.168.1.5")
            assert netns.run(read_local_ips) == ("10.200.0.11", "10.244.1.1", "127.0.0.1", "192.168.1.5",
                                                 "::1", "fd00:200::11")
        finally:
            netns.close()


async def _follow(ns: str) -> None:
    netns = NetNS(ns)
    seen: list[tuple[str, ...]] = []
    changed = asyncio.Event()

    def on_change(addresses):
        seen.append(addresses)
        changed.set()

    watcher = LocalAddressWatcher(netns, on_change)
    try:
        assert await watcher.start() == ("10.200.0.11", "127.0.0.1", "::1")
        assert seen == [("10.200.0.11", "127.0.0.1", "::1")]
        changed.clear()
        await asyncio.to_thread(_ip, ns, "addr", "add", "192.168.1.5/24", "dev", "eth0")
        while seen[-1] != ("10.200.0.11", "127.0.0.1", "192.168.1.5", "::1"):
            await asyncio.wait_for(changed.wait(), 10)
            changed.clear()
        await asyncio.to_thread(_ip, ns, "addr", "del", "10.200.0.11/24", "dev", "eth0")
        while seen[-1] != ("127.0.0.1", "192.168.1.5", "::1"):
            await asyncio.wait_for(changed.wait(), 10)
            changed.clear()
        await asyncio.to_thread(_ip, ns, "-6", "addr", "add", "fd00:200::11/64", "dev", "eth0", "nodad")
        while seen[-1] != ("127.0.0.1", "192.168.1.5", "::1", "fd00:200::11"):  # IPv6 events too
            await asyncio.wait_for(changed.wait(), 10)
            changed.clear()
        assert watcher.addresses == ("127.0.0.1", "192.168.1.5", "::1", "fd00:200::11")
    finally:
        await watcher.stop()
        netns.close()


def test_follows_addresses_added_and_removed():
    with nsutil.netns("la-follow") as ns:
        _ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        _ip(ns, "addr", "add", "10.200.0.11/24", "dev", "eth0")
        asyncio.run(_follow(ns))
