"""`kproxy apiserver`: the embedded Kubernetes-compatible apiserver."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os

from kproxy.apiserver.allocators import parse_port_range
from kproxy.apiserver.service_families import parse_service_cidrs
from kproxy.apiserver.auth.audit import DEFAULT_POLICY, PolicyError, load_policy
from kproxy.cli.main import CLIError
from kproxy.pki.ca import PKIError
from kproxy.store.base import StoreError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", required=True, help="directory of the store and admin.kubeconfig")
    parser.add_argument("--bind", default="127.0.0.1:6443",
                        help="HOST:PORT to serve HTTPS on (port 0 picks a free port); default 127.0.0.1:6443")
    parser.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                        help="CIDR Service ClusterIPs are allocated from, or one per IP family separated by a "
                             "comma for dual-stack (the first is the default family); default 10.96.0.0/12")
    parser.add_argument("--service-node-port-range", default="30000-32767",
                        help="port range NodePorts are allocated from (default 30000-32767)")
    parser.add_argument("--store-history", type=int, default=10000, metavar="N",
                        help="watch events the store retains; older resourceVersions get 410 Gone")
    parser.add_argument("--watch-bookmark-interval", type=float, default=10.0, metavar="SECONDS",
                        help="how often watches that allow bookmarks get one (default 10)")
    parser.add_argument("--watch-queue-limit", type=int, default=10000, metavar="N",
                        help="events a watcher may fall behind before it is closed with 410 Expired")
    parser.add_argument("--max-watches-per-user", type=int, default=250, metavar="N",
                        help="open watches one identity may hold; more are refused with 429 (default 250)")
    parser.add_argument("--no-controllers", action="store_true",
                        help="do not run the controllers (nor the scheduler) inside the apiserver")
    parser.add_argument("--no-scheduler", action="store_true",
                        help="run the controllers inside the apiserver but not the scheduler "
                             "(e.g. to run `kproxy scheduler` on its own)")
    parser.add_argument("--scheduler-retry-unschedulable", type=float, default=60.0, metavar="SECONDS",
                        help="the in-process scheduler tries an unschedulable pod again after this long even "
                             "if nothing changed (default 60)")
    parser.add_argument("--tls", action="store_true",
                        help="accepted for compatibility: --bind always serves HTTPS with client-certificate/"
                             "token authentication and RBAC")
    parser.add_argument("--insecure-bind", metavar="HOST:PORT",
                        help="also serve plain HTTP with full rights on this loopback address (for tests)")
    parser.add_argument("--audit-policy-file", metavar="FILE",
                        help="audit.k8s.io/v1 Policy (YAML or JSON) deciding what DIR/audit.log records; "
                             "default: nothing for anonymous requests, metadata of every other write or refusal")
    parser.add_argument("--audit-log-maxsize", type=int, default=100, metavar="MB",
                        help="rotate DIR/audit.log when it reaches this many megabytes (default 100)")
    parser.add_argument("--audit-log-maxbackup", type=int, default=10, metavar="N",
                        help="rotated audit logs to keep (default 10)")
    parser.add_argument("--advertise-address", metavar="IP",
                        help="address published in the kubernetes Service's endpoints (default: the --bind "
                             "address unless it is loopback or unspecified, which are never published)")
    parser.add_argument("--kubelet-netns-dial", action="store_true",
                        help="reach kubelets (logs, exec) inside the network namespace their Node's "
                             "kproxy.io/node-netns annotation names (nodes that are namespaces of this machine)")
    parser.add_argument("--tls-san", action="append", default=[], metavar="NAME_OR_IP",
                        help="extra name or address for the serving certificate; repeatable")


def parse_bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        raise CLIError(f"--bind {text!r}: want HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise CLIError(f"--bind {text!r}: {host!r} is not an IP address") from None
    try:
        port_num = int(port)
    except ValueError:
        raise CLIError(f"--bind {text!r}: port {port!r} is not a number") from None
    if not 0 <= port_num <= 65535:
        raise CLIError(f"--bind {text!r}: port must be 0-65535")
    return host, port_num


def run(args: argparse.Namespace) -> int:
    from kproxy.apiserver.rest import RestSettings
    from kproxy.apiserver.server import ServerConfig, serve

    host, port = parse_bind(args.bind)
    insecure_host, insecure_port = None, 0
    if args.insecure_bind:
        insecure_host, insecure_port = parse_bind(args.insecure_bind)
        if insecure_host != "localhost" and not ipaddress.ip_address(insecure_host).is_loopback:
            raise CLIError(f"--insecure-bind {args.insecure_bind!r}: plain HTTP is only served on loopback")
    try:
        service_cidrs = ",".join(parse_service_cidrs(args.service_cluster_ip_range))
    except ValueError as exc:
        raise CLIError(f"--service-cluster-ip-range: {exc}") from None
    try:
        parse_port_range(args.service_node_port_range)
    except ValueError as exc:
        raise CLIError(f"--service-node-port-range: {exc}") from None
    if args.watch_bookmark_interval <= 0:
        raise CLIError("--watch-bookmark-interval must be positive")
    if args.watch_queue_limit < 1:
        raise CLIError("--watch-queue-limit must be at least 1")
    if args.max_watches_per_user < 1:
        raise CLIError("--max-watches-per-user must be at least 1")
    if args.store_history < 1:
        raise CLIError("--store-history must be at least 1")
    if args.audit_log_maxsize < 1:
        raise CLIError("--audit-log-maxsize must be at least 1 (megabytes)")
    if args.audit_log_maxbackup < 0:
        raise CLIError("--audit-log-maxbackup must not be negative")
    audit_policy = DEFAULT_POLICY
    if args.audit_policy_file:
        try:
            audit_policy = load_policy(args.audit_policy_file)
        except (OSError, PolicyError) as exc:
            raise CLIError(f"--audit-policy-file {args.audit_policy_file!r}: "
                           f"{exc.strerror if isinstance(exc, OSError) else exc}") from None
    if args.advertise_address is not None:
        try:
            advertised = ipaddress.ip_address(args.advertise_address)
        except ValueError:
            raise CLIError(f"--advertise-address {args.advertise_address!r} is not an IP address") from None
        if advertised.is_loopback or advertised.is_unspecified or advertised.is_link_local:
            raise CLIError(f"--advertise-address {advertised}: loopback, unspecified and link-local "
                           "addresses cannot be endpoints")
    data_dir = os.path.abspath(args.data_dir)
    os.umask(0o077)  # whatever this process writes (store, keys, kubeconfigs, logs) is private
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"--data-dir {args.data_dir!r}: {exc.strerror}") from None
    config = ServerConfig(data_dir=data_dir, host=host, port=port,
                          service_cluster_ip_range=service_cidrs,
                          service_node_port_range=args.service_node_port_range,
                          run_controllers=not args.no_controllers, run_scheduler=not args.no_scheduler,
                          scheduler_retry=args.scheduler_retry_unschedulable,
                          tls=True, insecure_host=insecure_host, insecure_port=insecure_port,
                          tls_sans=tuple(args.tls_san), advertise_address=args.advertise_address,
                          kubelet_netns_dial=args.kubelet_netns_dial,
                          store_history=args.store_history, audit_policy=audit_policy,
                          audit_max_bytes=args.audit_log_maxsize * 1024 * 1024,
                          audit_max_backups=args.audit_log_maxbackup,
                          rest=RestSettings(bookmark_interval=args.watch_bookmark_interval,
                                            watch_queue_limit=args.watch_queue_limit,
                                            max_watches_per_user=args.max_watches_per_user))
    try:
        asyncio.run(serve(config))
    except StoreError as exc:
        raise CLIError(f"cannot open the store in {data_dir}: {exc}") from None
    except PKIError as exc:
        raise CLIError(f"PKI in {data_dir}/pki: {exc}") from None
    except OSError as exc:
        raise CLIError(f"{exc.filename or data_dir}: {exc.strerror}") from None
    return 0
