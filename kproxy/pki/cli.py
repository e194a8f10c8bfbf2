"""`kproxy pki`: operator commands on an apiserver data dir's PKI.

    kproxy pki client --data-dir DIR --user NAME [--group G ...] --kubeconfig OUT [--server URL]
    kproxy pki rotate-serving --data-dir DIR [--bind HOST] [--san NAME_OR_IP ...]
    kproxy pki kubelet-serving --data-dir DIR --node-name N --san IP [--san ...] --cert F --key F
"""
from __future__ import annotations

import argparse
import datetime
import ipaddress
import os

import yaml

from kproxy.cli.main import CLIError
from kproxy.pki import bootstrap
from kproxy.pki import ca as pki_ca
from kproxy.pki.files import write_private
from kproxy.pki.kubeconfig import kubeconfig_doc, write_kubeconfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="pki_command", metavar="ACTION")
    client = sub.add_parser("client", help="issue a client certificate and write a kubeconfig for it")
    client.add_argument("--data-dir", required=True, help="the apiserver's data dir (holds pki/)")
    client.add_argument("--user", required=True, help="user name (certificate CommonName)")
    client.add_argument("--group", action="append", default=[], help="group (certificate Organization); repeatable")
    client.add_argument("--kubeconfig", required=True, help="kubeconfig file to write (0600)")
    client.add_argument("--server", help="server URL (default: the one in DIR/admin.kubeconfig)")
    client.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    rotate = sub.add_parser("rotate-serving", help="issue a new apiserver serving certificate "
                                                   "(a running apiserver picks it up)")
    rotate.add_argument("--data-dir", required=True, help="the apiserver's data dir (holds pki/)")
    rotate.add_argument("--bind", default="127.0.0.1", help="address the apiserver listens on")
    rotate.add_argument("--service-ip", default="10.96.0.1", help="first Service IP (the kubernetes Service)")
    rotate.add_argument("--san", action="append", default=[], help="extra DNS name or IP; repeatable")
    kubelet = sub.add_parser("kubelet-serving", help="issue a kubelet's serving certificate (its port 10250), "
                                                     "signed by the cluster CA the apiserver checks it against")
    kubelet.add_argument("--data-dir", required=True, help="the apiserver's data dir (holds pki/)")
    kubelet.add_argument("--node-name", required=True, help="the node's name (a DNS name of the certificate)")
    kubelet.add_argument("--san", action="append", default=[], help="the node's address (or name); repeatable")
    kubelet.add_argument("--cert", required=True, help="certificate file to write (the kubelet's --tls-cert-file)")
    kubelet.add_argument("--key", required=True, help="key file to write, 0600 (--tls-private-key-file)")


def _server_of(data_dir: str) -> str:
    path = os.path.join(data_dir, "admin.kubeconfig")
    try:
        with open(path) as f:
            return yaml.safe_load(f)["clusters"][0]["cluster"]["server"]
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        raise CLIError(f"cannot read the server URL from {path}; give --server") from None


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "pki_command", None):
        raise CLIError("give an action: client, rotate-serving or kubelet-serving")
    data_dir = os.path.abspath(args.data_dir)
    pki = bootstrap.Pki(data_dir)
    try:
        if args.pki_command == "client":
            if args.days < 1:
                raise CLIError("--days must be at least 1")
            ca = pki.ca()
            server = args.server or _server_of(data_dir)
            if not server.startswith(("https://", "http://")):
                raise CLIError(f"--server {server!r} is not an http(s) URL")
            pair = pki_ca.issue_client(ca, args.user, tuple(args.group),
                                       validity=datetime.timedelta(days=args.days))
            write_kubeconfig(os.path.abspath(args.kubeconfig),
                             kubeconfig_doc(server, args.user, ca_pem=ca.cert_pem, client=pair))
            print(f"wrote {args.kubeconfig} for user {args.user}"
                  + (f" in groups {', '.join(args.group)}" if args.group else ""))
            return 0
        if args.pki_command == "kubelet-serving":
            pair = pki_ca.issue_serving(pki.ca(), [args.node_name, *args.san],
                                        common_name=f"system:node:{args.node_name}")
            write_private(os.path.abspath(args.key), pair.key_pem)
            write_private(os.path.abspath(args.cert), pair.cert_pem)
            print(f"wrote {args.cert} and {args.key} for node {args.node_name}")
            return 0
        host = args.bind.rpartition(":")[0] if args.bind.count(":") == 1 else args.bind
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise CLIError(f"--bind {args.bind!r} is not an IP address") from None
        hosts = bootstrap.serving_hosts_for(host.strip("[]"), args.service_ip, tuple(args.san))
        pair = bootstrap.rotate_serving(data_dir, hosts)
        cert = pair.cert
        print(f"new serving certificate (serial {cert.serial_number:x}) valid until "
              f"{cert.not_valid_after_utc:%Y-%m-%d}; a running apiserver loads it within a second")
        return 0
    except pki_ca.PKIError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"{exc.filename or data_dir}: {exc.strerror}") from None
