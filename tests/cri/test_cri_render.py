"""The pure parts of the containerd runtime: containerd's config, the CNI network and the CRI
messages made from a pod (no root, no containerd)."""
from __future__ import annotations


from kproxy.containerd import cni
from kproxy.containerd.cri import pb
from kproxy.containerd.daemon import PAUSE_IMAGE, Layout, render_config
from kproxy.kubelet.criruntime import container_config, sandbox_config
from kproxy.kubelet.volumes import BindMount


def test_config_keeps_everything_under_the_node_directory():
    text = render_config(Layout("/run/n1"))
    assert text == render_config(Layout("/run/n1"))
    for line in ('root = "/run/n1/root"', 'state = "/run/n1/state"', 'address = "/run/n1/containerd.sock"',
                 'conf_dir = "/run/n1/cni/net.d"', 'Root = "/run/n1/state/runc"', 'path = "/run/n1/root/opt"',
                 "netns_mounts_under_state_dir = true", "SystemdCgroup = false", 'snapshotter = "overlayfs"',
                 f'sandbox_image = "{PAUSE_IMAGE}"', "restrict_oom_score_adj = true"):
        assert line in text, line


def test_cni_network_is_ptp_over_the_pod_cidr():
    conf = cni.conflist("10.244.3.0/24", "/run/n3/cni/ipam")
    [ptp] = conf["plugins"]
    assert ptp["type"] == "ptp" and ptp["ipMasq"] is False
    assert ptp["ipam"]["type"] == "host-local" and ptp["ipam"]["dataDir"] == "/run/n3/cni/ipam"
    assert ptp["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24", "gateway": "10.244.3.1", "rangeStart": "10.244.3.2"}]]


def test_sandbox_config_from_a_pod():
    pod = {"metadata": {"uid": "u1", "name": "web", "namespace": "ns"}, "spec": {}}
    config = sandbox_config(pod, "n1", "/var/lib/k")
    assert (config.metadata.name, config.metadata.uid, config.metadata.namespace) == ("web", "u1", "ns")
    assert config.hostname == "web" and config.log_directory == "/var/lib/k/pods/u1"
    assert config.labels["kproxy.io/node"] == "n1"
    ns = config.linux.security_context.namespace_options
    assert (ns.network, ns.pid, ns.ipc) == (pb.POD, pb.CONTAINER, pb.POD)
    host = sandbox_config({**pod, "spec": {"hostNetwork": True}}, "n1", "/var/lib/k")
    assert host.linux.security_context.namespace_options.network == pb.NODE and host.hostname == ""
    # the wire form round-trips (field numbers are the API's)
    assert pb.PodSandboxConfig.FromString(config.SerializeToString()) == config


def test_container_config_expands_and_limits():
    spec = {"name": "c", "image": "kproxy.local/echo:1", "command": ["sh", "-c"], "args": ["echo $(GREETING) $$HOME"],
            "workingDir": "/w", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}
    config = container_config(spec, {"GREETING": "hi"}, [BindMount("/host/v", "/data", True)], "u1", 2)
    assert list(config.command) == ["sh", "-c"] and list(config.args) == ["echo hi $HOME"]
    assert (config.metadata.name, config.metadata.attempt, config.log_path) == ("c", 2, "c.log")
    assert [(e.key, e.value) for e in config.envs] == [("GREETING", "hi")]
    assert [(m.host_path, m.container_path, m.readonly) for m in config.mounts] == [("/host/v", "/data", True)]
    resources = config.linux.resources
    assert (resources.memory_limit_in_bytes, resources.cpu_quota, resources.cpu_period) == (64 << 20, 25000, 100000)
    # no command: the image's entrypoint and cmd stay
    plain = container_config({"name": "c", "image": "x"}, {}, [], "u1", 0)
    assert not plain.command and not plain.args and not plain.linux.resources.memory_limit_in_bytes
