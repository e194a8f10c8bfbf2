"""`kproxy cleanup --mode M [--netns N]`: remove every rule the mode's backend added in the
namespace, and nothing else (Backend.cleanup())."""
from __future__ import annotations

import argparse

from kproxy.agent.cli import USAGE_ERROR, load_backend_modules, open_netns
from kproxy.agent import backend as backends
from kproxy.agent.config import ConfigError, load_config
from kproxy.agent.dualstack import every_family
from kproxy.cli.main import CLIError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", required=True, help="the proxy mode whose rules to remove")
    p.add_argument("--netns", help="network namespace to clean (default: this one)")
    p.add_argument("--config", help="KubeProxyConfiguration YAML (e.g. for iptables.backend)")
    p.add_argument("--iptables-backend", help="iptables flavour: nft, legacy or auto")
    p.add_argument("--backend-module", action="append", default=[], metavar="MODULE",
                   help="debug: import MODULE first so it can register extra modes")


def run(args: argparse.Namespace) -> int:
    load_backend_modules(args.backend_module)
    try:
        config = load_config(args.config, {"mode": args.mode, "netns": args.netns,
                                           "iptables_backend": args.iptables_backend})
    except ConfigError as exc:
        raise CLIError(str(exc), USAGE_ERROR) from None
    netns = open_netns(config.netns)
    try:
        try:
            cls = backends.get(config.mode)
        except backends.BackendUnavailable as exc:
            raise CLIError(f"--mode: {exc}", USAGE_ERROR) from None
        backend = every_family(cls, netns, config)
        try:
            netns.run(backend.cleanup)
        except backends.BackendUnavailable as exc:
            raise CLIError(str(exc)) from None
        finally:
            backend.close()
    finally:
        netns.close()
    return 0
