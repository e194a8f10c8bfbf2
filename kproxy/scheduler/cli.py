"""`kproxy scheduler --kubeconfig FILE`: binds pending pods to nodes on any apiserver."""
from __future__ import annotations

import argparse

from kproxy.cli.service import run_with_client
from kproxy.controllers.cli import parse_duration
from kproxy.scheduler.loop import run_scheduler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the apiserver (scheduler.kubeconfig)")
    parser.add_argument("--context", help="kubeconfig context (default: current-context)")
    parser.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                        help="act only while holding the Lease kube-system/kube-scheduler (default on)")
    parser.add_argument("--leader-elect-lease-duration", type=parse_duration, default=15.0, metavar="DURATION",
                        help="how long a silent leader keeps the Lease (default 15s)")
    parser.add_argument("--retry-unschedulable", type=parse_duration, default=60.0, metavar="DURATION",
                        help="try an unschedulable pod again after this long even if nothing changed (default 60s)")


def run(args: argparse.Namespace) -> int:
    return run_with_client(args, lambda client, stop: run_scheduler(
        client, stop, leader_elect=args.leader_elect, lease_duration=args.leader_elect_lease_duration,
        retry_unschedulable=args.retry_unschedulable))
