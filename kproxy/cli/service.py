"""What every long-running command that talks to an apiserver shares (`kproxy controllers`,
`scheduler`, `kubelet`): an ApiClient from --kubeconfig/--context, SIGINT and SIGTERM ending the
run cleanly, and a kubeconfig that cannot be read reported as a one-line CLI error."""
from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Awaitable, Callable

from kproxy.cli.main import CLIError
from kproxy.client.kubeconfig import KubeconfigError
from kproxy.client.rest import ApiClient


def run_with_client(args: argparse.Namespace, body: Callable[[ApiClient, asyncio.Event], Awaitable[None]]) -> int:
    """Runs `body(client, stop)` until it returns; `stop` is set by SIGINT or SIGTERM."""
    async def main() -> None:
        client = ApiClient.from_kubeconfig(args.kubeconfig, args.context)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await body(client, stop)
        finally:
            await client.close()

    try:
        asyncio.run(main())
    except KubeconfigError as exc:
        raise CLIError(str(exc)) from None
    return 0
