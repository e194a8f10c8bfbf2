"""The `kproxy` command. Each subcommand lives in its own module that provides
`add_arguments(parser)` and `run(args) -> int`; this file only dispatches and turns any
expected error into a one-line message and a non-zero exit."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "apiserver": ("kproxy.apiserver.cli", "run the embedded Kubernetes-compatible apiserver"),
    "controllers": ("kproxy.controllers.cli", "run the controllers against an apiserver"),
    "scheduler": ("kproxy.scheduler.cli", "bind pending pods to nodes (kube-scheduler's default plugins)"),
    "kubelet": ("kproxy.kubelet.cli", "run the pods bound to a node as processes in network namespaces"),
    "agent": ("kproxy.agent.cli", "run the node agent (service proxy)"),
    "cleanup": ("kproxy.agent.cleanup_cli", "remove every rule kproxy added in a namespace"),
    "rules": ("kproxy.cli.rules", "show and explain the rules a node holds"),
    "lab": ("kproxy.lab.cli", "multi-node lab in network namespaces"),
    "pki": ("kproxy.pki.cli", "issue client certificates and rotate the apiserver serving certificate"),
    "install": ("kproxy.install.cli", "install kproxy as systemd services on a Linux node (control plane or node)"),
    "version": ("kproxy.cli.version", "print the version and the fast-path implementation"),
    "image": ("kproxy.images.cli", "build the built-in images as OCI archives, import them into containerd"),
}


class CLIError(Exception):
    """An expected failure: printed as one line, exit code `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="kproxy", description="Kubernetes Service data plane")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # subcommand not built yet
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        modules[name] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)  # type: ignore[attr-defined]
    except CLIError as exc:
        print(f"kproxy {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:
        print(f"kproxy {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
