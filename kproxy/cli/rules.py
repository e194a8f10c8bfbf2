"""`kproxy rules`: what implements each Service on a node, from what the kernel holds.

    kproxy rules [NAMESPACE/SERVICE] [--mode M] [--netns NAME | --node NAME [--lab LAB]] [-o text|json|yaml]
    kproxy rules trace --proto tcp --src IP[:PORT] --dst IP:PORT [--node NAME] [--send]
    kproxy rules diff [--kubeconfig FILE] [--node-name NAME] [--cluster-cidr CIDR] [--service-cidr CIDR] [--config FILE]

`--node` names a node of a running lab (`kproxy lab`): its namespace, the lab's kubeconfig
and pod CIDR are used. Without --mode (and outside a lab) the mode is detected: the agent's
/proxyMode, else what the namespace holds (kproxy.rules.detect); text output says on stderr
which mode was read and why, -o json/yaml in `modeDetection`. Exit codes: 0 ok; 1 error, a
diff that found differences, or a `--send` that contradicts the trace.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import sys
from dataclasses import dataclass
from typing import Any

from kproxy.cli.main import CLIError

OUTPUTS = ("text", "json", "yaml")
SEND_WAIT_SECONDS = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", metavar="NAMESPACE/SERVICE | trace | diff",
                   help="a Service to show (default: all), or the trace / diff action")
    p.add_argument("--mode", help="proxy mode whose rules to read (default: the lab's with --node, else detected: "
                                  "the agent's /proxyMode, else what the namespace holds)")
    p.add_argument("--netns", help="network namespace of the node (default: this host's)")
    p.add_argument("--node", help="a node of the lab (--lab): its namespace, kubeconfig and pod CIDR")
    p.add_argument("--lab", default=None, help="lab name for --node (default kproxy-lab)")
    p.add_argument("-o", "--output", default="text", choices=OUTPUTS, help="output format")
    p.add_argument("--kubeconfig", help="apiserver: endpoint readiness/locality, and the desired state for diff")
    p.add_argument("--node-name", help="the Node the agent runs as (diff; default --node or the host name)")
    p.add_argument("--cluster-cidr", help="the agent's pod CIDR (diff renders with it)")
    p.add_argument("--service-cidr", help="the agent's Service CIDR (diff renders with it)")
    p.add_argument("--config", help="the agent's KubeProxyConfiguration file (diff renders with it)")
    p.add_argument("--iptables-backend", help="iptables flavour to read: nft, legacy or auto")
    p.add_argument("--proto", help="trace: tcp, udp or sctp")
    p.add_argument("--src", help="trace: source IP[:PORT]")
    p.add_argument("--dst", help="trace: destination IP:PORT")
    p.add_argument("--send", action="store_true",
                   help="trace: also send the packet (scapy) from the node and compare with its conntrack entry")
    p.add_argument("--no-objects", action="store_true", help="text: leave out the kernel objects")
    p.add_argument("--width", type=int, help="text width (default: the terminal's)")
    p.add_argument("--color", default="auto", choices=("auto", "always", "never"), help="colours in text output")


@dataclass
class Target:
    """Where to look: the node's namespace and, when known, the apiserver and the agent's settings."""

    netns: str | None
    node_name: str
    kubeconfig: str | None
    cluster_cidr: str | None
    mode: str  # "" until detected
    service_cidr: str | None = None
    detection: Any = None  # kproxy.rules.detect.Detection once the mode is known


def _target(args: argparse.Namespace) -> Target:
    kubeconfig, cidr, netns, mode = args.kubeconfig, args.cluster_cidr, args.netns, args.mode
    service_cidr = args.service_cidr
    node_name = args.node_name or args.node or ""
    if args.node:
        from kproxy.lab.lab import Lab, LabError
        from kproxy.lab.topology import DEFAULT_LAB_NAME, PlanError
        try:
            lab = Lab.load(args.lab or DEFAULT_LAB_NAME)
            plan_node = lab.plan.node(args.node)
        except (LabError, PlanError) as exc:
            raise CLIError(f"--node: {exc}") from None
        if netns and netns != plan_node.netns:
            raise CLIError("--netns and --node name different namespaces; give one of them")
        netns = plan_node.netns
        kubeconfig = kubeconfig or lab.kubeconfig
        cidr = cidr or lab.plan.cluster_cidr
        service_cidr = service_cidr or lab.plan.service_cidr
        mode = mode or lab.state.mode
    elif args.lab:
        raise CLIError("--lab needs --node")
    from kproxy.rules.detect import Detection
    detection = None
    if args.mode:
        detection = Detection(mode, "flag", "--mode")
    elif mode:
        detection = Detection(mode, "lab", f"the mode lab {args.lab or 'kproxy-lab'} runs")
    return Target(netns, node_name or socket.gethostname(), kubeconfig, cidr, mode or "", service_cidr, detection)


def _detect(args: argparse.Namespace, target: Target, netns: Any) -> None:
    """Sets target.mode from the agent or the kernel of `netns` (see kproxy.rules.detect)."""
    from kproxy.rules.detect import detect
    if target.detection is None:
        metrics = _config(args, target).metrics_bind_address
        target.detection = detect(netns, metrics)
    target.mode = target.detection.mode


def _config(args: argparse.Namespace, target: Target) -> Any:
    from kproxy.agent.config import ConfigError, load_config
    overrides = {"mode": target.mode or None, "cluster_cidr": target.cluster_cidr, "service_cidr": target.service_cidr,
                 "iptables_backend": args.iptables_backend}
    try:
        return load_config(args.config, overrides)
    except ConfigError as exc:
        raise CLIError(str(exc), 2) from None


def _backend(mode: str, netns: Any, config: Any) -> Any:
    from kproxy.agent import backend as backends
    try:
        cls = backends.get(mode)
        cls.probe(netns, config)
    except backends.BackendUnavailable as exc:
        raise CLIError(f"mode {mode!r}: {exc}") from None
    except ImportError as exc:
        raise CLIError(f"mode {mode!r} cannot be loaded: {exc}") from None
    from kproxy.agent.cli import dual_stack
    return dual_stack(cls, netns, config)  # both families where the agent programs both


def _adapter(mode: str) -> Any:
    from kproxy.rules.adapter import NoAdapter, adapter_for
    from kproxy.rules.dualstack import DualStackAdapter
    try:
        return DualStackAdapter(adapter_for(mode))
    except NoAdapter as exc:
        raise CLIError(str(exc)) from None


def _inspect(adapter: Any, backend: Any) -> Any:
    from kproxy.agent.backend import ApplyError
    from kproxy.rules.adapter import read
    try:
        return backend.netns.run(read, adapter, backend)
    except ApplyError as exc:
        raise CLIError(f"reading the kernel's rules: {exc}") from None


def _client(kubeconfig: str) -> Any:
    from kproxy.client import KubeconfigError
    from kproxy.client.sync import Client
    try:
        return Client.from_kubeconfig(kubeconfig)
    except (KubeconfigError, OSError) as exc:
        raise CLIError(f"--kubeconfig: {exc}") from None


def _desired(target: Target, config: Any) -> Any:
    from kproxy.agent.tracker import StateSettings
    from kproxy.api.status import ApiError
    from kproxy.rules.desired import desired_state
    settings = StateSettings.from_config(config, target.node_name)
    client = _client(target.kubeconfig)
    try:
        return desired_state(client, settings)
    except ApiError as exc:
        raise CLIError(f"apiserver: {exc}") from None
    except OSError as exc:
        raise CLIError(f"apiserver {target.kubeconfig}: {exc.strerror or exc}") from None
    finally:
        client.close()


def _local_addresses(netns: Any) -> list[str]:
    out = netns.command(["ip", "-o", "addr", "show"], check=False).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()
            if len(line.split()) > 3 and line.split()[2] in ("inet", "inet6")]


def _style(args: argparse.Namespace) -> tuple[int, bool]:
    width = args.width or shutil.get_terminal_size((120, 24)).columns
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    return width, colour


def _emit(args: argparse.Namespace, doc: dict, text: str, target: Target | None = None) -> None:
    from kproxy.rules import output
    detection = target.detection if target is not None else None
    if detection is not None:
        doc = {**doc, "modeDetection": detection.to_dict()}
        if args.output == "text" and detection.source not in ("flag", "lab"):  # detected: say how
            print(f"kproxy rules: {detection.line()}", file=sys.stderr)
    if args.output == "json":
        sys.stdout.write(output.as_json(doc))
    elif args.output == "yaml":
        sys.stdout.write(output.as_yaml(doc))
    else:
        sys.stdout.write(text)


def _open_netns(name: str | None) -> Any:
    from kproxy.netns import NetNS, NetNSError
    try:
        return NetNS(name)
    except NetNSError as exc:
        raise CLIError(f"--netns: {exc}") from None


def run(args: argparse.Namespace) -> int:
    what = args.what or ""
    if what not in ("", "trace", "diff") and what.count("/") != 1:
        raise CLIError(f"{what!r}: expected NAMESPACE/SERVICE, trace or diff", 2)
    if what != "trace" and (args.proto or args.src or args.dst or args.send):
        raise CLIError("--proto/--src/--dst/--send belong to `kproxy rules trace`", 2)
    target = _target(args)
    netns = _open_netns(target.netns)
    try:
        _detect(args, target, netns)
        config = _config(args, target)
        adapter = _adapter(target.mode)
        if what == "trace" and args.send and getattr(adapter, "send_unsupported", ""):
            raise CLIError(f"--send: {adapter.send_unsupported}", 2)
        backend = _backend(target.mode, netns, config)
        try:
            if what == "trace":
                return _run_trace(args, target, adapter, backend, netns)
            if what == "diff":
                return _run_diff(args, target, config, adapter, backend)
            return _run_show(args, target, config, adapter, backend, what)
        finally:
            backend.close()
    finally:
        netns.close()


def _run_show(args, target: Target, config, adapter, backend, what: str) -> int:
    from kproxy.rules import output
    from kproxy.rules.desired import with_endpoint_states
    rules = adapter.from_inspection(_inspect(adapter, backend), target.netns or "")
    if target.kubeconfig:
        rules = with_endpoint_states(rules, _desired(target, config))
    if what:
        ns, name = what.split("/")
        rules = rules.select(ns, name)
        if not rules.services and not rules.skipped:
            raise CLIError(f"no rules for Service {what} in the kernel ({target.mode} mode)")
    width, colour = _style(args)
    _emit(args, rules.to_dict(), output.rules_text(rules, width, colour, objects=not args.no_objects), target)
    return 0


def _run_diff(args, target: Target, config, adapter, backend) -> int:
    from kproxy.agent.backend import ApplyError
    from kproxy.rules import output
    from kproxy.rules.diff import diff
    if not target.kubeconfig:
        raise CLIError("diff needs the apiserver: --kubeconfig FILE (or --node in a lab)", 2)
    from dataclasses import replace

    from kproxy.agent.localaddrs import read_local_ips
    # NodePorts follow the node's interface addresses, as the agent reads them
    state = replace(_desired(target, config), local_ips=backend.netns.run(read_local_ips))
    try:
        ruleset = backend.netns.run(backend.render, state)
    except ApplyError as exc:
        raise CLIError(f"rendering the desired state: {exc}") from None
    node = target.netns or ""
    differences = diff(adapter.from_ruleset(ruleset, node), adapter.from_inspection(_inspect(adapter, backend), node))
    width, colour = _style(args)
    settings = (f"node {target.node_name}, cluster CIDR {config.cluster_cidr or 'none'}, "
                f"service CIDR {config.service_cidr or 'none'}, masquerade-all {str(config.masquerade_all).lower()}")
    _emit(args, output.diff_doc(differences, adapter.mode, node),
          output.diff_text(differences, width, colour, settings), target)
    return 1 if differences else 0


def _run_trace(args, target: Target, adapter, backend, netns) -> int:
    from kproxy.rules import output
    from kproxy.rules.trace import Probe, ProbeError
    if not (args.proto and args.src and args.dst):
        raise CLIError("trace needs --proto, --src and --dst", 2)
    try:
        probe = Probe.parse(args.proto, args.src, args.dst)
    except ProbeError as exc:
        raise CLIError(str(exc), 2) from None
    if args.send and not probe.sport:
        probe = Probe(probe.proto, probe.src, random.randint(20000, 60000), probe.dst, probe.dport)
    try:
        report = adapter.trace(_inspect(adapter, backend), probe, _local_addresses(netns))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    width, colour = _style(args)
    doc, text = report.to_dict(), output.trace_text(report, width, colour)
    code = 0
    if args.send:
        from kproxy.rules.send import SendError, confirm, send_and_observe
        try:
            seen = send_and_observe(netns, probe, SEND_WAIT_SECONDS)
        except SendError as exc:
            raise CLIError(f"--send: {exc}") from None
        verdict = confirm(report, seen)
        doc["sent"] = {"observed": seen.to_dict(), "confirmed": verdict.ok, "reason": verdict.reason}
        text += f"\nsent: {seen}\n{'CONFIRMED' if verdict.ok else 'MISMATCH'}: {verdict.reason}\n"
        code = 0 if verdict.ok else 1
    _emit(args, doc, text, target)
    return code
