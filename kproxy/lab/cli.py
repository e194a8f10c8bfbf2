"""`kproxy lab up | down | status | demo`: the namespace lab from the command line."""
from __future__ import annotations

import argparse
import json

from kproxy.cli.main import CLIError
from kproxy.lab import demo, topology
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError
from kproxy.lab.lab import DEFAULT_BASE_DIR, Lab, LabError
from kproxy.lab.netsetup import NetSetupError

# Failures the lab expects and reports as one line (exit 1).
EXPECTED_ERRORS = (LabError, NetSetupError, ApiError, ApiConnectionError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default=topology.DEFAULT_LAB_NAME,
                       help=f"lab name, prefix of its namespaces (default {topology.DEFAULT_LAB_NAME})")
        p.add_argument("--base-dir", default=DEFAULT_BASE_DIR,
                       help=f"where lab state and logs live (default {DEFAULT_BASE_DIR})")

    up = sub.add_parser("up", help="build the lab: nodes, client, apiserver, a kubelet and an agent per node")
    common(up)
    up.add_argument("--nodes", type=int, default=2, help="number of nodes (default 2)")
    up.add_argument("--mode", default="iptables", help="proxy mode of the agents (default iptables)")
    up.add_argument("--sync-period", default="30s", help="agents' full resync period (default 30s)")
    up.add_argument("--ip-family", choices=topology.IP_FAMILIES, default="ipv4",
                    help="IP families of the pods and Services: ipv4 (default), ipv6, or dual (IPv4 first; "
                         "fd00:10:244::/56 pods, fd00:10:96::/112 Services)")

    down = sub.add_parser("down", help="stop everything and delete the lab's namespaces")
    common(down)

    status = sub.add_parser("status", help="namespaces, processes, pods and services of the lab")
    common(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    d = sub.add_parser("demo", help="2 nodes; kubectl create/expose/scale/rollout restart of Deployment web "
                                      "while the client counts the answers per pod and the failures")
    common(d)
    d.add_argument("--mode", default="iptables", help="proxy mode (default iptables)")
    d.add_argument("--requests", type=int, default=60, help="requests to send (default 60)")


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "lab_command", None)
    if action is None:
        raise CLIError("missing action: up, down, status or demo (see `kproxy lab --help`)", code=2)
    try:
        if action == "up":
            return _up(args)
        if action == "down":
            return _down(args)
        if action == "status":
            return _status(args)
        if action == "demo":
            if args.requests < 1:
                raise CLIError("--requests must be at least 1", code=2)
            return demo.run_demo(args.name, args.base_dir, args.mode, args.requests)
    except EXPECTED_ERRORS as exc:
        raise CLIError(str(exc)) from None
    raise CLIError(f"unknown action {action!r}", code=2)


def _up(args: argparse.Namespace) -> int:
    lab = Lab(args.name, base_dir=args.base_dir)
    lab.up(nodes=args.nodes, mode=args.mode, sync_period=args.sync_period, ip_family=args.ip_family)
    try:
        print(f"lab {args.name!r} is up: {args.nodes} node(s), mode {args.mode}, IP family {args.ip_family}")
        print(f"  kubeconfig: {lab.kubeconfig}")
        client = lab.plan.client
        print(f"  client namespace: {client.netns} ({client.ip}{', ' + client.ip6 if client.ip6 else ''})")
        for node in lab.plan.nodes:
            ips = node.ip + (f", {node.ip6}" if node.ip6 else "")
            print(f"  {node.name}: namespace {node.netns}, IP {ips}, pod CIDR {node.pod_cidr}")
        print(f"  Service CIDR: {lab.plan.service_cidr}")
        print(f"  logs: {lab.log_dir}")
        print(f"  tear down: kproxy lab down --name {args.name}")
    finally:
        lab.close()
    return 0


def _down(args: argparse.Namespace) -> int:
    try:
        lab = Lab.load(args.name, base_dir=args.base_dir)
    except LabError:
        lab = Lab(args.name, base_dir=args.base_dir)  # no state: still remove stray namespaces
    if lab.state is None:
        from kproxy.lab.lab import require_root

        require_root()
    deleted = lab.down()
    print(f"lab {args.name!r} is down"
          + (f" (deleted {len(deleted)} namespaces)" if deleted else " (nothing was there)"))
    return 0


def _status(args: argparse.Namespace) -> int:
    lab = Lab.load(args.name, base_dir=args.base_dir)
    try:
        info = lab.status()
    finally:
        lab.close()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    print(f"lab {info['name']} ({info['mode']}, {info['nodes']} node(s)), files in {info['dir']}")
    print("namespaces:")
    for ns, present in info["namespaces"].items():
        print(f"  {ns:40} {'present' if present else 'MISSING'}")
    api = info["apiserver"]
    print(f"apiserver: pid {api['pid']} {'alive' if api['alive'] else 'DEAD'}  kubeconfig {info['kubeconfig']}")
    for node, k in info["kubelets"].items():
        print(f"kubelet {node}: pid {k['pid']} {'alive' if k['alive'] else 'DEAD'}")
    for node, a in info["agents"].items():
        print(f"agent {node}: pid {a['pid']} {'alive' if a['alive'] else 'DEAD'}")
    print("pods:" if info["pods"] else "pods: none")
    for p in info["pods"]:
        flags = ("ready" if p["ready"] else "not-ready") + (" terminating" if p["terminating"] else "")
        print(f"  {p['name']:30} {p['node'] or '-':8} {p['ip'] or '-':15} {p['phase'] or 'Pending':9} {flags}"
              f" restarts {p['restarts']}")
    print("services:" if info["services"] else "services: none")
    for s in info["services"]:
        print(f"  {s['name']:30} {s['type']:10} {s['clusterIP'] or '-':15} {', '.join(s['ports'])}")
    healthy = (api["alive"] and all(k["alive"] for k in info["kubelets"].values())
               and all(a["alive"] for a in info["agents"].values())
               and all(info["namespaces"].values()))
    return 0 if healthy else 1
