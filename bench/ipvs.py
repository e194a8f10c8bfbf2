"""ipvs mode sync cost next to `ipvsadm --restore` loading the same virtual servers.

    python -m bench.ipvs [--sizes 1000,10000] [--endpoints 10]

Needs a kernel with IPVS; where ip_vs cannot load (this project's dev machines), it re-runs
itself inside the test VM (kproxy.vm) and prints the VM's output. For each size N
(Services x E endpoints, one ClusterIP virtual server per Service, every namespace fresh):
- full sync: render time, IpvsBackend.apply(ruleset, None) (dummy addresses, ipsets, netfilter
  and IPVS), and the IPVS netlink part alone (our batched requests into an empty namespace);
- ipvsadm --restore loading the same virtual and real servers into an empty namespace;
- at the largest N, a full sync that finds nothing to change (the periodic resync: it reads
  every real server and every ipset, and writes nothing), reading every real server by one
  netlink dump per virtual server vs one read of /proc/net/ip_vs vs `ipvsadm -Ln`, and a
  one-endpoint change: render + partial apply.
"ratio" = our IPVS part / ipvsadm --restore (the issue's target: <= 1.5 for a full sync).
Nothing here touches the machine's main namespace.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from typing import Iterator

from kproxy.agent.config import AgentConfig, IpvsConfig
from kproxy.agent.state import Changes, Endpoint, ProxyState, ServicePort
from kproxy.netns import NetNS


def make_state(services: int, endpoints: int) -> ProxyState:
    sps = {}
    for i in range(services):
        eps = tuple(sorted(Endpoint(f"10.{128 + (i * endpoints + j) // 65536}.{((i * endpoints + j) // 256) % 256}."
                                    f"{(i * endpoints + j) % 256}", 8080) for j in range(endpoints)))
        sp = ServicePort("bench", f"svc-{i}", "http", "TCP", 80, cluster_ips=(f"10.96.{i // 256}.{i % 256}",),
                         endpoints=eps)
        sps[sp.key] = sp
    return ProxyState("bench", node_ips=("10.200.0.11",), cluster_cidr="10.244.0.0/16", services=sps, revision=1)


def ipvsadm_text(ruleset) -> str:
    lines = []
    for (ip, port, _proto), entry in sorted(ruleset.services.items()):
        lines.append(f"-A -t {ip}:{port} -s {entry.server.scheduler}")
        lines.extend(f"-a -t {ip}:{port} -r {r.address}:{r.port} -m -w {r.weight}" for r in entry.reals)
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def fresh_netns(tag: str) -> Iterator[str]:
    name = f"kpbench{os.getpid()}-{tag}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def timed(fn, *args):
    t = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - t, value


def run(sizes: list[int], endpoints: int) -> int:
    from kproxy.ipvs import procfs
    from kproxy.ipvs.backend import IpvsBackend
    from kproxy.ipvs.netlink import CMD_NEW_DEST, CMD_NEW_SERVICE, IpvsSocket, Request

    config = AgentConfig(mode="ipvs", ipvs=IpvsConfig(scheduler="rr"))
    print(f"{'N':>6} {'reals':>7} {'render':>8} {'apply':>8} {'ipvs-nl':>8} {'ipvsadm':>8} {'ratio':>6}")
    last = None
    for n in sizes:
        state = make_state(n, endpoints)
        with fresh_netns(f"a{n}") as ns:
            netns = NetNS(ns)
            backend = IpvsBackend(netns, config)
            t_render, ruleset = timed(backend.render, state)
            t_apply, result = timed(backend.apply, ruleset, None)
            assert result.objects_written == n * (1 + endpoints), result
        with fresh_netns(f"n{n}") as ns:
            reqs = []
            for entry in ruleset.services.values():
                reqs.append(Request(CMD_NEW_SERVICE, entry.server))
                reqs.extend(Request(CMD_NEW_DEST, entry.server, r) for r in entry.reals)

            def netlink_only():
                with IpvsSocket() as sock:
                    return sock.execute(reqs)
            nl_ns = NetNS(ns)
            t_nl, trips = nl_ns.run(timed, netlink_only)
            nl_ns.close()
        text = ipvsadm_text(ruleset)
        with fresh_netns(f"r{n}") as ns:
            t = time.perf_counter()
            subprocess.run(["ip", "netns", "exec", ns, "ipvsadm", "--restore"], input=text, text=True, check=True)
            t_adm = time.perf_counter() - t
            count = subprocess.run(["ip", "netns", "exec", ns, "ipvsadm", "-Ln"], capture_output=True,
                                   text=True).stdout.count("-> 10.")
            assert count == n * endpoints, count
        print(f"{n:>6} {n * endpoints:>7} {t_render:8.3f} {t_apply:8.3f} {t_nl:8.3f} {t_adm:8.3f} "
              f"{t_nl / t_adm:6.2f}   ({trips} sends)", flush=True)
        print(f"        full apply detail: {result.detail}", flush=True)
        last = (n, state)
    if last:
        n, state = last
        with fresh_netns(f"c{n}") as ns:
            netns = NetNS(ns)
            backend = IpvsBackend(netns, config)
            ruleset = backend.render(state)
            backend.apply(ruleset, None)
            t_resync, result = timed(backend.apply, ruleset, None)
            assert result.objects_written == 0, result
            print(f"periodic full sync, nothing changed, at {n} Services: {t_resync:.3f}s "
                  f"(reads every virtual server's real servers and every set; {result.detail})")
            sock = backend.netns.run(backend._socket)
            servers = backend.netns.run(sock.services)
            t_per_vs, _ = backend.netns.run(timed, lambda: [sock.dests(vs) for vs in servers])
            t_proc, table = backend.netns.run(timed, procfs.read)
            seen = (len(table), sum(map(len, table.values())))  # a full sync dumps what /proc missed
            t = time.perf_counter()
            subprocess.run(["ip", "netns", "exec", ns, "ipvsadm", "-Ln"], capture_output=True, check=True)
            t_list = time.perf_counter() - t
            print(f"reading every real server at {n} Services: one netlink dump per virtual server "
                  f"{t_per_vs:.3f}s, /proc/net/ip_vs {t_proc:.3f}s ({seen[0]} virtual servers, {seen[1]} real servers; "
                  f"what a full sync uses), ipvsadm -Ln {t_list:.3f}s")
            key = next(iter(state.services))
            sp = state.services[key]
            moved = sp.endpoints[:-1] + (Endpoint("10.250.0.1", 8080),)
            changed_sp = ServicePort(**{**sp.__dict__, "endpoints": moved})
            changed = ProxyState(state.node_name, state.node_ips, state.cluster_cidr,
                                 services={**state.services, key: changed_sp}, revision=2)
            # as the proxier: with the last ruleset and what changed since
            t_render, new = timed(backend.render, changed, ruleset, Changes(full=False, services=frozenset({key})))
            t_apply, result = timed(backend.apply, new, ruleset)
            print(f"one-endpoint change at {n} Services: render {t_render:.3f}s, apply {t_apply:.3f}s "
                  f"({result.detail})")
            backend.close()
            netns.close()
    return 0


def ipvs_here() -> bool:
    subprocess.run(["modprobe", "-q", "ip_vs"], capture_output=True)
    return os.path.isdir("/proc/net/ip_vs") or os.path.exists("/proc/net/ip_vs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ipvs")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--no-vm", action="store_true", help="fail instead of booting the VM when IPVS is missing")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if ipvs_here():
        return run(sizes, args.endpoints)
    if args.no_vm or os.environ.get("KPROXY_IN_VM") == "1":
        print("error: this kernel has no IPVS (ip_vs)", file=sys.stderr)
        return 1
    from kproxy.vm.harness import VmError, ram_paths, run_in_vm

    print("no IPVS in this kernel: running in the test VM", flush=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        result = run_in_vm(f"python -m bench.ipvs --no-vm --sizes {args.sizes} --endpoints {args.endpoints}",
                           cwd=root, timeout=3600, ram=ram_paths(root))
    except VmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr[-3000:])
    print(f"[vm] boot {result.boot_seconds:.1f}s, total {result.total_seconds:.1f}s")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
