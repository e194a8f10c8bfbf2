"""`kproxy agent`: the node agent (kube-proxy replacement).

Bad flags or configuration end with a one-line error and exit code 2. An unreachable apiserver
is not an error: the informers keep retrying and log each attempt, as kube-proxy does.
SIGTERM and SIGINT stop the agent cleanly (exit 0) and leave the rules in place.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import logging
import signal
import socket

from kproxy.agent import backend as backends
from kproxy.agent import sysctls
from kproxy.agent.config import AgentConfig, ConfigError, load_config
from kproxy.agent.health import ProxierHealth
from kproxy.agent.metrics import ProxyMetrics
from kproxy.agent.proxier import Proxier
from kproxy.agent.servers import HttpListeners, healthz_app, metrics_app
from kproxy.cli.main import CLIError
from kproxy.client import ApiClient, ClusterConfig, KubeconfigError, load_kubeconfig
from kproxy.netns import NetNS, NetNSError

log = logging.getLogger("kproxy.agent")

USAGE_ERROR = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig of the apiserver to watch")
    p.add_argument("--node-name", help="this node's name (default: hostnameOverride, else the host name)")
    p.add_argument("--mode", help="proxy mode (default iptables); one of the registered backends")
    p.add_argument("--netns", help="network namespace for all kernel work and the HTTP listeners")
    p.add_argument("--cluster-cidr", help="pod CIDR(s), comma-separated")
    p.add_argument("--service-cidr", help="Service ClusterIP range(s), comma-separated (nftables: traffic to "
                   "an unallocated address in them is dropped)")
    p.add_argument("--config", help="KubeProxyConfiguration YAML file; flags override it")
    p.add_argument("--healthz-bind-address", help="HOST:PORT for /healthz and /livez (default 0.0.0.0:10256)")
    p.add_argument("--metrics-bind-address", help="HOST:PORT for /metrics and /proxyMode (default 127.0.0.1:10249)")
    p.add_argument("--min-sync-period", help="minimum time between syncs, e.g. 1s, 500ms")
    p.add_argument("--sync-period", help="maximum time between (full) syncs, e.g. 30s")
    p.add_argument("--masquerade-all", action="store_const", const=True, default=None,
                   help="SNAT all traffic to Services")
    p.add_argument("--iptables-backend", help="iptables flavour: nft, legacy or auto")
    p.add_argument("--detect-local-mode",
                   help="what counts as pod traffic: ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix")
    p.add_argument("--pod-bridge-interface", help="the pods' bridge (detectLocalMode BridgeInterface)")
    p.add_argument("--pod-interface-name-prefix",
                   help="the pods' interface prefix (detectLocalMode InterfaceNamePrefix)")
    p.add_argument("--backend-module", action="append", default=[], metavar="MODULE",
                   help="debug: import MODULE first so it can register extra modes")


def build_config(args: argparse.Namespace) -> AgentConfig:
    """The effective configuration from --config and the flags; CLIError (exit 2) when bad."""
    overrides = {
        "mode": args.mode, "cluster_cidr": args.cluster_cidr, "service_cidr": args.service_cidr,
        "node_name": args.node_name,
        "kubeconfig": args.kubeconfig, "netns": args.netns,
        "healthz_bind_address": args.healthz_bind_address, "metrics_bind_address": args.metrics_bind_address,
        "min_sync_period": args.min_sync_period, "sync_period": args.sync_period,
        "masquerade_all": args.masquerade_all, "iptables_backend": args.iptables_backend,
        **{flag: getattr(args, flag, None)
           for flag in ("detect_local_mode", "pod_bridge_interface", "pod_interface_name_prefix")},
    }
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        raise CLIError(str(exc), USAGE_ERROR) from None
    if not config.kubeconfig:
        raise CLIError("--kubeconfig is required (or clientConnection.kubeconfig in --config)", USAGE_ERROR)
    return config


def load_backend_modules(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise CLIError(f"--backend-module {name}: {exc}", USAGE_ERROR) from None


def open_netns(name: str | None) -> NetNS:
    try:
        return NetNS(name)
    except NetNSError as exc:
        raise CLIError(f"--netns: {exc}", USAGE_ERROR) from None


def make_backend(mode: str, netns: NetNS, config: AgentConfig) -> backends.Backend:
    if mode == "auto":  # the best mode the kernel offers in the agent's namespace, with reasons
        from kproxy.agent.automode import choose_mode

        mode, reasons = choose_mode(netns, config)
        for reason in reasons:
            log.info("--mode auto: %s", reason)
    try:
        cls = backends.get(mode)
    except backends.BackendUnavailable as exc:
        raise CLIError(f"--mode: {exc}", USAGE_ERROR) from None
    except ImportError as exc:
        raise CLIError(f"mode {mode!r} cannot be loaded: {exc}") from None
    try:
        cls.probe(netns, config)
    except backends.BackendUnavailable as exc:
        raise CLIError(f"mode {mode!r} is not available here: {exc}") from None
    return dual_stack(cls, netns, config)


def dual_stack(cls: type[backends.Backend], netns: NetNS, config: AgentConfig) -> backends.Backend:
    """One backend for IPv4, and, when the mode programs IPv6 and its probe for it passes, both
    families at once (kproxy.agent.dualstack), as kube-proxy runs dual-stack where it can."""
    if 6 not in cls.families:
        return cls(netns, config)
    try:
        cls.probe(netns, config, family=6)  # type: ignore[call-arg]
    except backends.BackendUnavailable as exc:
        log.info("IPv6 not programmed: %s", exc)
        return cls(netns, config)
    from kproxy.agent.dualstack import DualStackBackend

    return DualStackBackend({family: cls(netns, config, family) for family in (4, 6)})


def load_cluster(path: str) -> ClusterConfig:
    try:
        return load_kubeconfig(path)
    except (KubeconfigError, OSError) as exc:
        raise CLIError(f"--kubeconfig: {exc}", USAGE_ERROR) from None


def log_conntrack_outcomes(outcomes: list[sysctls.Outcome]) -> None:
    for outcome in outcomes:
        if outcome.status in ("set", "skipped"):
            log.info("conntrack: %s", outcome.describe())
        elif outcome.status == "unchanged":
            log.debug("conntrack: %s", outcome.describe())
        else:
            log.warning("conntrack: cannot set %s", outcome.describe())


async def serve(config: AgentConfig, cluster: ClusterConfig, node_name: str, netns: NetNS,
                backend: backends.Backend) -> int:
    client = ApiClient(cluster)
    metrics = ProxyMetrics()
    health = ProxierHealth(timeout=2 * config.sync_period)
    proxier = Proxier(config, node_name, client, backend, netns, metrics=metrics, health=health)
    listeners = HttpListeners(netns)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, proxier.stop)
    try:
        try:
            await listeners.start("healthz", config.healthz_bind_address, healthz_app(health))
            await listeners.start("metrics", config.metrics_bind_address, metrics_app(metrics, config.mode))
        except OSError as exc:
            raise CLIError(f"cannot listen: {exc.strerror or exc}") from None
        log.info("agent for node %s, mode %s%s, apiserver %s", node_name, config.mode,
                 f", netns {netns.name}" if netns.name else "", client.config.server)
        plan = sysctls.plan_conntrack(config.conntrack, sysctls.cpu_count())
        log_conntrack_outcomes(await netns.arun(sysctls.apply_plan, plan))
        await proxier.run()
        log.info("stopping; rules are left in place")
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await listeners.stop()
        await client.close()


def run(args: argparse.Namespace) -> int:
    load_backend_modules(args.backend_module)
    config = build_config(args)
    cluster = load_cluster(config.kubeconfig)
    node_name = config.node_name or socket.gethostname()
    netns = open_netns(config.netns)
    try:
        backend = make_backend(config.mode, netns, config)
    except CLIError:
        netns.close()
        raise
    if backend.name != config.mode:  # "auto" resolved: logs and /proxyMode name the real mode
        config = dataclasses.replace(config, mode=backend.name)
    try:
        return asyncio.run(serve(config, cluster, node_name, netns, backend))
    finally:
        backend.close()
        netns.close()
