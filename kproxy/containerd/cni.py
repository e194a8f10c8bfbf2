"""The CNI network the kubelet gives containerd's CRI plugin: Debian's `ptp` plugin with
`host-local` IPAM over the node's pod CIDR.

ptp makes the routed layout the lab and the agent expect: each pod has a veth pair, its
address as a /32, a default route via the node-side gateway (the CIDR's first address, on
every host-side veth), and the node a /32 route to each pod. IPAM state lives in the node's
own directory, so nodes sharing a machine never share address leases.
"""
from __future__ import annotations

import ipaddress
import json
import os

NETWORK_NAME = "kproxy"
CNI_VERSION = "0.4.0"
CONF_NAME = "10-kproxy.conflist"


def conflist(pod_cidr: str, ipam_dir: str, mtu: int = 1500) -> dict:
    """The network configuration list for `pod_cidr` (pure)."""
    net = ipaddress.ip_network(pod_cidr)
    gateway = str(net.network_address + 1)
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [{
            "type": "ptp",
            "ipMasq": False,
            "mtu": mtu,
            "ipam": {
                "type": "host-local",
                "dataDir": ipam_dir,
                "ranges": [[{"subnet": str(net), "gateway": gateway,
                             "rangeStart": str(net.network_address + 2)}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }],
    }


def write_conflist(conf_dir: str, pod_cidr: str, ipam_dir: str) -> str:
    """Writes the configuration (atomically: containerd watches the directory) and returns its path."""
    os.makedirs(conf_dir, exist_ok=True)
    os.makedirs(ipam_dir, exist_ok=True)
    path = os.path.join(conf_dir, CONF_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(conflist(pod_cidr, ipam_dir), f, indent=2)
    os.replace(tmp, path)
    return path
