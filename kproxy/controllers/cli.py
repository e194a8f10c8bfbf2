"""`kproxy controllers --kubeconfig FILE`: runs the controllers against any apiserver."""
from __future__ import annotations

import argparse
import re

from kproxy.cli.service import run_with_client
from kproxy.controllers.manager import run_controllers
from kproxy.controllers.podgc import DEFAULT_TERMINATED_THRESHOLD, PodGCOptions

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds from a Go-style duration ("40s", "1m30s", "500ms") or a plain number of seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pos, value = 0, 0.0
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            value += float(m.group(1)) * scale[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 40s, 1m30s, 500ms)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the apiserver to control")
    parser.add_argument("--context", help="kubeconfig context (default: current-context)")
    parser.add_argument("--node-monitor-grace-period", type=parse_duration, default=40.0, metavar="DURATION",
                        help="a node silent this long becomes NotReady (default 40s)")
    parser.add_argument("--node-monitor-period", type=parse_duration, default=None, metavar="DURATION",
                        help="how often node heartbeats are checked (default 5s)")
    parser.add_argument("--terminated-pod-gc-threshold", type=int, default=DEFAULT_TERMINATED_THRESHOLD,
                        metavar="N", help="finished pods kept before the oldest are deleted; 0 or less keeps all "
                        f"(default {DEFAULT_TERMINATED_THRESHOLD})")
    parser.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                        help="act only while holding the Lease kube-system/kproxy-controllers (default on)")
    parser.add_argument("--leader-elect-lease-duration", type=parse_duration, default=15.0, metavar="DURATION",
                        help="how long a silent leader keeps the Lease (default 15s)")


def run(args: argparse.Namespace) -> int:
    return run_with_client(args, lambda client, stop: run_controllers(
        client, stop, node_grace_period=args.node_monitor_grace_period, node_monitor_period=args.node_monitor_period,
        leader_elect=args.leader_elect, lease_duration=args.leader_elect_lease_duration,
        pod_gc=PodGCOptions(terminated_threshold=args.terminated_pod_gc_threshold)))
