"""The lab's kubelet heartbeat: `python -m kproxy.lab.heartbeat --kubeconfig K --node node1 ...`.

Real kubelets renew their node's Lease in kube-node-lease every few seconds; the node
lifecycle controller marks a silent node Unknown and its pods NotReady after its grace period
(40 s). The lab's nodes have no kubelet, so this small process renews their Leases for as long
as the lab is up. It survives an apiserver that is briefly away (it retries on the next beat)
and exits with code 0 on SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import signal
import sys
import threading

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40

log = logging.getLogger("kproxy.lab.heartbeat")


def micro_time(now: datetime.datetime | None = None) -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_object(node: str, renew_time: str) -> dict:
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": renew_time},
    }


def renew(client, node: str) -> None:
    """Creates or renews the node's Lease (one attempt; raises what the client raises)."""
    from kproxy.api.resources import LEASES, NAMESPACES
    from kproxy.api.status import ApiError

    lease = client.get_or_none(LEASES, node, LEASE_NAMESPACE)
    if lease is None:
        try:
            client.create(NAMESPACES, {"metadata": {"name": LEASE_NAMESPACE}})
        except ApiError as exc:
            if exc.code != 409:
                raise
        client.create(LEASES, lease_object(node, micro_time()), namespace=LEASE_NAMESPACE)
        return
    lease.setdefault("spec", {})["renewTime"] = micro_time()
    lease["spec"]["holderIdentity"] = node
    client.update(LEASES, lease)


def beat_forever(client, nodes: list[str], interval: float, stop: threading.Event) -> None:
    from kproxy.api.status import ApiError
    from kproxy.client.errors import ApiConnectionError

    while not stop.is_set():
        for node in nodes:
            try:
                renew(client, node)
            except (ApiError, ApiConnectionError) as exc:
                log.warning("lease of %s not renewed: %s (retrying in %gs)", node, exc, interval)
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kproxy.lab.heartbeat", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", action="append", required=True, help="node name (repeat for each node)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between renewals (default 10)")
    args = parser.parse_args(argv)
    if not 0 < args.interval < LEASE_DURATION_SECONDS:
        print(f"heartbeat: --interval must be between 0 and {LEASE_DURATION_SECONDS} seconds", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from kproxy.client.sync import Client

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        client = Client.from_kubeconfig(args.kubeconfig)
    except (OSError, ValueError) as exc:
        print(f"heartbeat: cannot load {args.kubeconfig}: {exc}", file=sys.stderr)
        return 1
    try:
        log.info("renewing the leases of %s every %gs", ", ".join(args.node), args.interval)
        beat_forever(client, args.node, args.interval, stop)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
