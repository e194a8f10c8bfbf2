"""The userspace proxy process: `python -m kproxy.userspace.daemon [--netns NAME]`.

The proxy's listeners live in this process, not in the agent, so an agent that restarts (even
after SIGKILL) leaves every listener and connection running; the new agent reattaches and finds
the same listener ports, so its redirect rules do not change and no connection is refused.

The whole process joins --netns first. It serves its control protocol on an abstract unix socket
(CONTROL_NAME) of that namespace: abstract names are per network namespace, so there is exactly
one daemon per namespace (a second one finds the name taken and exits 0), and the name vanishes
with the process. Only root (SO_PEERCRED uid 0) may talk to it. Requests and answers are JSON
lines (kproxy.userspace.control). Exits on the "stop" request, SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
from typing import Any

from kproxy.userspace.plan import ListenerSpec
from kproxy.userspace.proxy import UDP_IDLE_TIMEOUT, ProxyServer

log = logging.getLogger("kproxy.userspace.daemon")

CONTROL_NAME = b"\0kproxy-userspace-proxy"
MAX_REQUEST = 64 << 20  # one update lists every listener: generous, but bounded


def spec_from_json(d: dict[str, Any]) -> ListenerSpec:
    return ListenerSpec(key=str(d["key"]), protocol=str(d["protocol"]),
                        endpoints=tuple(d.get("endpoints", ())), terminating=tuple(d.get("terminating", ())),
                        affinity_timeout=d.get("affinity_timeout"), transparent=bool(d.get("transparent", False)),
                        local_endpoints=tuple(d.get("local_endpoints", ())))


def spec_to_json(s: ListenerSpec) -> dict[str, Any]:
    return {"key": s.key, "protocol": s.protocol, "endpoints": list(s.endpoints),
            "terminating": list(s.terminating), "affinity_timeout": s.affinity_timeout,
            "transparent": s.transparent, "local_endpoints": list(s.local_endpoints)}


class Daemon:
    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.stopping = threading.Event()
        self.skipped: list[list[str]] = []  # [ServicePort key, reason] the agent does not program

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "update":
            self.server.configure(request.get("balancer", "maglev"),
                                  float(request.get("udp_idle_timeout", UDP_IDLE_TIMEOUT)))
            specs = {s.key: s for s in (spec_from_json(d) for d in request.get("listeners", ()))}
            skipped = [[str(k), str(why)] for k, why in request.get("skipped", ())]
            ports = self.server.update(specs, request.get("bind"))
            self.skipped = skipped
            return {"ports": ports}
        if op == "retire":
            return {"closed": self.server.retire(set(request.get("keep", ())))}
        if op == "listeners":
            return {"listeners": [vars(i) | {"endpoints": list(i.endpoints)} for i in self.server.listeners()],
                    "skipped": self.skipped}
        if op == "stop":
            self.stopping.set()
            return {"stopped": os.getpid()}
        return {"error": f"unknown op {op!r}"}

    def serve_connection(self, conn: socket.socket) -> None:
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != 0:
            conn.close()
            return
        with conn, conn.makefile("rwb") as f:
            while not self.stopping.is_set():
                line = f.readline(MAX_REQUEST)
                if not line:
                    return
                try:
                    answer = self.handle(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    answer = {"error": f"bad request: {exc}"}
                except OSError as exc:
                    answer = {"error": f"{exc.strerror or exc}"}
                f.write(json.dumps(answer).encode() + b"\n")
                f.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kproxy.userspace.daemon")
    p.add_argument("--netns", help="network namespace to run in (default: our own)")
    p.add_argument("--balancer", default="maglev")
    p.add_argument("--udp-idle-timeout", type=float, default=UDP_IDLE_TIMEOUT)
    p.add_argument("--nice", type=int, default=-5,
                   help="scheduling priority (default -5): the data path runs ahead of the agent's own work")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.netns:
        from kproxy.netns import NETNS_RUN_DIR, setns

        setns(os.path.join(NETNS_RUN_DIR, args.netns))  # before any thread: all of them inherit it
    try:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    except OSError as exc:  # not fatal: without CAP_SYS_NICE the proxy runs at normal priority
        log.warning("cannot set priority %d: %s", args.nice, exc.strerror)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        control.bind(CONTROL_NAME)
    except OSError:
        log.info("a userspace proxy already runs in this namespace")
        return 0
    control.listen(8)
    server = ProxyServer(None, balancer=args.balancer, udp_idle_timeout=args.udp_idle_timeout)
    server.start()
    daemon = Daemon(server)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stopping.set())
    log.info("userspace proxy %d serving%s", os.getpid(), f" in netns {args.netns}" if args.netns else "")

    def accept_loop() -> None:
        while True:
            try:
                conn, _ = control.accept()
            except OSError:
                return
            threading.Thread(target=daemon.serve_connection, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    daemon.stopping.wait()
    control.close()
    server.stop()
    log.info("userspace proxy %d stopped", os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
