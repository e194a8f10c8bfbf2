"""A multi-node Kubernetes lab in network namespaces on one machine.

`Lab.up()` builds the network of kproxy.lab.topology (bridge, nodes, client), starts the
apiserver (with its controllers and scheduler) on loopback, and on each node a `kproxy kubelet`
(identity system:node:<node>, the node's namespace and pod CIDR: it registers and heartbeats
the Node and runs the pods bound to it, each in its own namespace) and an agent with `--netns`.
Pods are ordinary Pod objects (kproxy.lab.pods); `add_pod` binds one to a node by hand.
Everything the lab starts is recorded in <dir>/state.json after every change, so a new process
(`kproxy lab down`, `kproxy lab status`) finds the namespaces and processes again.

Guarantees:
- nothing is created outside the lab's own namespaces (named "<lab>-...");
- `down()` is idempotent and removes every namespace and process the state file or the plan
  names, even after a half-finished `up()`;
- every failure is a LabError with a one-line message (and the log file to read).
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from kproxy.lab import netsetup, pods, topology, traffic
from kproxy.lab.topology import LabPlan, PlanError
from kproxy.netns import NetNS

DEFAULT_BASE_DIR = "/run/kproxy-lab"
HEALTHZ_PORT = 10256
METRICS_PORT = 10249
DEFAULT_SYNC_PERIOD = "30s"
DEFAULT_MIN_SYNC_PERIOD = "1s"
# The kubelets' first CrashLoopBackOff wait: a killed pod process is back within seconds.
CRASH_LOOP_BACKOFF = "1s"
# A pod the lab deletes gracefully keeps serving (a preStop sleep) until its grace period ends
# or finish_pod() deletes it for good; a plain delete_pod() (grace 0) stops it at once.
POD_WAIT = 60.0


class LabError(RuntimeError):
    """The lab could not do what was asked; the message is one line meant for a user."""


@dataclass
class ProcessRecord:
    """A process the lab started: enough to find it again from another process."""

    pid: int
    argv: list[str]
    log: str
    started: float = 0.0
    # Arguments its /proc/<pid>/cmdline must contain: a recycled pid is not taken for it.
    marks: list[str] = field(default_factory=list)


@dataclass
class PodRecord:
    """A pod the lab placed by hand (add_pod); its kubelet runs it."""

    name: str
    namespace: str
    node: str
    netns: str
    ip: str
    port: int
    labels: dict[str, str]
    ready: bool
    uid: str = ""
    terminating: bool = False
    ips: list[str] = field(default_factory=list)  # every address (podIPs), `ip` first

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class LabState:
    name: str
    nodes: int
    mode: str
    dir: str
    sync_period: str = DEFAULT_SYNC_PERIOD
    min_sync_period: str = DEFAULT_MIN_SYNC_PERIOD
    kubeconfig: str = ""
    apiserver: ProcessRecord | None = None
    kubelets: dict[str, ProcessRecord] = field(default_factory=dict)
    agents: dict[str, ProcessRecord] = field(default_factory=dict)
    pods: dict[str, PodRecord] = field(default_factory=dict)
    ip_family: str = "ipv4"  # of the pods and Services: ipv4, ipv6 or dual (kproxy.lab.topology)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LabState":
        raw = json.loads(text)

        def proc(d: dict | None) -> ProcessRecord | None:
            return ProcessRecord(**d) if d else None

        pods = {key: PodRecord(**p) for key, p in raw.get("pods", {}).items()}
        return cls(
            name=raw["name"], nodes=raw["nodes"], mode=raw["mode"], dir=raw["dir"],
            sync_period=raw.get("sync_period", DEFAULT_SYNC_PERIOD),
            min_sync_period=raw.get("min_sync_period", DEFAULT_MIN_SYNC_PERIOD),
            kubeconfig=raw.get("kubeconfig", ""), apiserver=proc(raw.get("apiserver")),
            kubelets={k: ProcessRecord(**v) for k, v in raw.get("kubelets", {}).items()},
            agents={k: ProcessRecord(**v) for k, v in raw.get("agents", {}).items()}, pods=pods,
            ip_family=raw.get("ip_family", "ipv4"),
        )


def lab_dir(name: str, base_dir: str | None = None) -> str:
    return os.path.join(base_dir or DEFAULT_BASE_DIR, name)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veths, iptables): run it with sudo or as root")


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Polls `check()` until it returns a truthy value, which it returns. Raises LabError
    naming `what` (and the last exception `check` raised) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the check is a probe; its failure means "not yet"
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise LabError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


def _process_alive(pid: int, marks: list[str]) -> bool:
    """True if `pid` runs, is not a zombie, and its command line has every argument in `marks`."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        if marks:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = set(f.read().decode(errors="replace").split("\0"))
            if not set(marks) <= args:
                return False
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return True


class Lab:
    """One lab, named `name`, with its files in `dir` (default /run/kproxy-lab/<name>)."""

    def __init__(self, name: str = topology.DEFAULT_LAB_NAME, dir: str | None = None,
                 base_dir: str | None = None) -> None:
        self.name = name
        self.dir = dir or lab_dir(name, base_dir)
        self.state: LabState | None = None
        self._plan: LabPlan | None = None
        self._children: dict[int, subprocess.Popen] = {}  # ours, to reap them
        self._netns: dict[str, NetNS] = {}
        self._client = None

    # -- files and state ---------------------------------------------------------------

    @property
    def state_file(self) -> str:
        return os.path.join(self.dir, "state.json")

    @property
    def log_dir(self) -> str:
        return os.path.join(self.dir, "logs")

    @classmethod
    def load(cls, name: str = topology.DEFAULT_LAB_NAME, dir: str | None = None,
             base_dir: str | None = None) -> "Lab":
        """The lab recorded in its state file. Raises LabError if there is none."""
        lab = cls(name, dir, base_dir)
        try:
            with open(lab.state_file) as f:
                lab.state = LabState.from_json(f.read())
        except FileNotFoundError:
            raise LabError(f"lab {name!r} is not up (no {lab.state_file})") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise LabError(f"lab state file {lab.state_file} is unreadable: {exc}") from None
        return lab

    def _save(self) -> None:
        assert self.state is not None
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.state.to_json())
        os.replace(tmp, self.state_file)

    @property
    def plan(self) -> LabPlan:
        if self._plan is None:
            state = self._require_state()
            self._plan = topology.plan_lab(self.name, state.nodes, state.ip_family)
        return self._plan

    def _require_state(self) -> LabState:
        if self.state is None:
            raise LabError(f"lab {self.name!r} is not up")
        return self.state

    @property
    def kubeconfig(self) -> str:
        return self._require_state().kubeconfig

    @property
    def client(self):
        """A blocking kproxy.client.sync.Client on the lab's apiserver."""
        if self._client is None:
            from kproxy.client.sync import Client

            self._client = Client.from_kubeconfig(self.kubeconfig)
        return self._client

    def netns(self, name: str) -> NetNS:
        """A cached NetNS for one of the lab's namespaces (one worker thread each)."""
        ns = self._netns.get(name)
        if ns is None:
            ns = self._netns[name] = NetNS(name)
        return ns

    def release_netns(self, name: str) -> None:
        """Stops the worker thread of a cached NetNS (before its namespace is deleted)."""
        ns = self._netns.pop(name, None)
        if ns is not None:
            ns.close()

    @property
    def client_netns(self) -> NetNS:
        return self.netns(self.plan.client.netns)

    def node_netns(self, node: str) -> NetNS:
        return self.netns(self.plan.node(node).netns)

    # -- up ---------------------------------------------------------------------------------

    def up(self, nodes: int = 2, mode: str = "iptables", sync_period: str = DEFAULT_SYNC_PERIOD,
           min_sync_period: str = DEFAULT_MIN_SYNC_PERIOD, wait_healthy: float = 60.0,
           ip_family: str = "ipv4") -> None:
        """Builds the network, starts the apiserver, a kubelet per node (waiting for every Node
        to be Ready) and the agents. On failure everything created so far is removed again
        before LabError is raised."""
        try:
            self._plan = topology.plan_lab(self.name, nodes, ip_family)
        except PlanError as exc:
            raise LabError(str(exc)) from None
        from kproxy.agent import backend

        if mode not in backend.names():
            raise LabError(f"unknown mode {mode!r}; known: {', '.join(backend.names())}")
        require_root()  # after the input checks: a bad flag is reported as such, root or not
        if os.path.exists(self.state_file):
            raise LabError(f"lab {self.name!r} is already up ({self.state_file}); "
                           f"run `kproxy lab down --name {self.name}` first")
        present = [ns for ns in self._plan.namespaces if netsetup.namespace_exists(ns)]
        if present:
            raise LabError(f"namespaces of lab {self.name!r} already exist ({', '.join(present)}); "
                           f"run `kproxy lab down --name {self.name}` first")
        os.makedirs(self.log_dir, exist_ok=True)
        self.state = LabState(name=self.name, nodes=nodes, mode=mode, dir=self.dir,
                              sync_period=sync_period, min_sync_period=min_sync_period, ip_family=ip_family)
        self._save()
        try:
            netsetup.create_lab_network(self._plan)
            self._start_apiserver()
            self._ensure_namespace("default")
            # kubelets and agents start together (an agent follows its Node when it appears)
            for node in self._plan.nodes:
                self.start_kubelet(node.name)
            for node in self._plan.nodes:
                self.start_agent(node.name, wait_healthy=0)
            for node in self._plan.nodes:
                self.wait_node_ready(node.name, POD_WAIT)
            if wait_healthy:
                for node in self._plan.nodes:
                    self.wait_agent_healthy(node.name, wait_healthy)
        except BaseException:
            self.down()
            raise

    def _spawn(self, argv: list[str], log_name: str, marks: list[str]) -> ProcessRecord:
        log_path = os.path.join(self.log_dir, log_name)
        with open(log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd="/")
        self._children[proc.pid] = proc
        return ProcessRecord(pid=proc.pid, argv=argv, log=log_path, started=time.time(), marks=marks)

    def _alive(self, rec: ProcessRecord | None) -> bool:
        if rec is None:
            return False
        child = self._children.get(rec.pid)
        if child is not None:
            return child.poll() is None
        return _process_alive(rec.pid, rec.marks)

    def _stop(self, rec: ProcessRecord | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Sends `sig`, waits up to `timeout` for the exit, then SIGKILLs. Idempotent."""
        if rec is None or not self._alive(rec):
            self._reap(rec)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, sig)
        deadline = time.monotonic() + timeout
        while self._alive(rec) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._alive(rec):
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGKILL)
            end = time.monotonic() + 5
            while self._alive(rec) and time.monotonic() < end:
                time.sleep(0.05)
        self._reap(rec)

    def _reap(self, rec: ProcessRecord | None) -> None:
        if rec is None:
            return
        child = self._children.pop(rec.pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)

    def _log_tail(self, rec: ProcessRecord, lines: int = 1) -> str:
        try:
            with open(rec.log, errors="replace") as f:
                tail = [l.strip() for l in f.read().splitlines() if l.strip()][-lines:]
            return " | ".join(tail)
        except OSError:
            return ""

    def _start_apiserver(self) -> None:
        state = self._require_state()
        data_dir = os.path.join(self.dir, "apiserver")
        os.makedirs(data_dir, exist_ok=True)
        kubeconfig = os.path.join(data_dir, "admin.kubeconfig")
        with contextlib.suppress(FileNotFoundError):
            os.remove(kubeconfig)  # its appearance is the readiness signal
        argv = [sys.executable, "-m", "kproxy", "apiserver", "--data-dir", data_dir,
                "--bind", "127.0.0.1:0", "--service-cluster-ip-range", self.plan.service_cidr,
                "--service-node-port-range", topology.NODE_PORT_RANGE,
                "--kubelet-netns-dial"]  # the nodes' kubelets listen inside their namespaces
        rec = state.apiserver = self._spawn(argv, "apiserver.log", ["apiserver", data_dir])
        state.kubeconfig = kubeconfig
        self._save()

        def ready() -> bool:
            if not self._alive(rec):
                raise LabError(f"apiserver exited: {self._log_tail(rec)} (log: {rec.log})")
            return os.path.exists(kubeconfig)

        try:
            wait_until(ready, 60, "the apiserver to write its kubeconfig")
        except LabError as exc:
            raise LabError(f"{exc} (log: {rec.log})") from None

    def _ensure_namespace(self, name: str) -> None:
        from kproxy.api.resources import NAMESPACES
        from kproxy.api.status import ApiError

        def exists() -> bool:
            try:
                self.client.create(NAMESPACES, {"metadata": {"name": name}})
            except ApiError as exc:
                if exc.code != 409:
                    raise
            return True

        wait_until(exists, 30, f"namespace {name!r}")

    # -- kubelets -----------------------------------------------------------------------------

    def _node_kubeconfig(self, node: str) -> str:
        """A kubeconfig of the node identity system:node:<node> (group system:nodes), as a
        real node's kubelet has, issued by the lab's cluster CA (in this process: a Python
        start costs minutes in the emulated test VM)."""
        import datetime

        import yaml

        from kproxy.pki import bootstrap
        from kproxy.pki import ca as pki_ca
        from kproxy.pki.kubeconfig import kubeconfig_doc, write_kubeconfig

        state = self._require_state()
        data_dir = os.path.dirname(state.kubeconfig)
        path = os.path.join(data_dir, f"kubelet-{node}.kubeconfig")
        if not os.path.exists(path):
            try:
                with open(state.kubeconfig) as f:
                    server = yaml.safe_load(f)["clusters"][0]["cluster"]["server"]
                ca = bootstrap.Pki(data_dir).ca()
                user = f"system:node:{node}"
                pair = pki_ca.issue_client(ca, user, ("system:nodes",), validity=datetime.timedelta(days=365))
                write_kubeconfig(path, kubeconfig_doc(server, user, ca_pem=ca.cert_pem, client=pair))
            except (OSError, KeyError, IndexError, TypeError, ValueError, yaml.YAMLError) as exc:
                raise LabError(f"cannot issue the kubelet identity of {node}: {exc}") from None
        return path

    def _node_serving(self, node: str, node_ip: str) -> tuple[str, str]:
        """The kubelet's serving certificate and key (its port 10250, for kubectl logs/exec
        through the apiserver), issued by the cluster CA in this process like the kubeconfig."""
        from kproxy.pki import bootstrap
        from kproxy.pki import ca as pki_ca
        from kproxy.pki.files import write_private

        data_dir = os.path.dirname(self._require_state().kubeconfig)
        cert, key = (os.path.join(data_dir, f"kubelet-{node}-serving.{ext}") for ext in ("crt", "key"))
        if not (os.path.exists(cert) and os.path.exists(key)):
            try:
                pair = pki_ca.issue_serving(bootstrap.Pki(data_dir).ca(), [node, node_ip],
                                            common_name=f"system:node:{node}")
                write_private(key, pair.key_pem)
                write_private(cert, pair.cert_pem)
            except (OSError, pki_ca.PKIError) as exc:
                raise LabError(f"cannot issue the kubelet serving certificate of {node}: {exc}") from None
        return cert, key

    def kubelet_argv(self, node: str) -> list[str]:
        plan = self.plan.node(node)
        cert, key = self._node_serving(node, plan.ip)
        return [sys.executable, "-m", "kproxy", "kubelet", "--kubeconfig", self._node_kubeconfig(node),
                "--node-name", node, "--netns", plan.netns, "--pod-cidr", plan.pod_cidr,
                "--root-dir", os.path.join(self.dir, "kubelet", node), "--crash-loop-backoff", CRASH_LOOP_BACKOFF,
                "--tls-cert-file", cert, "--tls-private-key-file", key]

    def start_kubelet(self, node: str) -> ProcessRecord:
        """Starts the kubelet of `node` (it registers the Node and runs the pods bound to it)."""
        state = self._require_state()
        if self._alive(state.kubelets.get(node)):
            raise LabError(f"the kubelet of {node} is already running (pid {state.kubelets[node].pid})")
        netns = self.plan.node(node).netns
        rec = self._spawn(self.kubelet_argv(node), f"kubelet-{node}.log", ["kubelet", netns])
        state.kubelets[node] = rec
        self._save()
        return rec

    def stop_kubelet(self, node: str, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: the kubelet stops its pods and removes their namespaces before it exits."""
        self._stop(self._require_state().kubelets.get(node), sig, timeout=30)

    def kubelet_alive(self, node: str) -> bool:
        return self._alive(self._require_state().kubelets.get(node))

    def wait_node_ready(self, node: str, timeout: float = POD_WAIT) -> None:
        from kproxy.api.resources import NODES

        rec = self._require_state().kubelets.get(node)

        def ready() -> bool:
            if not self._alive(rec):
                raise LabError(f"the kubelet of {node} exited: {self._log_tail(rec) if rec else ''}")
            obj = self.client.get_or_none(NODES, node)
            return obj is not None and pods.condition(obj, "Ready") == "True"

        try:
            wait_until(ready, timeout, f"node {node} to be registered and Ready")
        except LabError as exc:
            raise LabError(f"{exc} (log: {rec.log if rec else '?'})") from None

    # -- agents -------------------------------------------------------------------------------

    def agent_argv(self, node_name: str, netns: str) -> list[str]:
        """The command line of an agent for `node_name` doing its kernel work in `netns`."""
        state = self._require_state()
        # agents act as system:kube-proxy (read-only on Services), not as the admin
        agent_kubeconfig = os.path.join(os.path.dirname(state.kubeconfig), "kube-proxy.kubeconfig")
        return [sys.executable, "-m", "kproxy", "agent", "--kubeconfig", agent_kubeconfig,
                "--node-name", node_name, "--mode", state.mode, "--cluster-cidr", self.plan.cluster_cidr,
                "--service-cidr", self.plan.service_cidr,
                "--sync-period", state.sync_period, "--min-sync-period", state.min_sync_period,
                "--healthz-bind-address", f"0.0.0.0:{HEALTHZ_PORT}",
                "--metrics-bind-address", f"127.0.0.1:{METRICS_PORT}", "--netns", netns]

    def start_agent(self, node: str, wait_healthy: float = 60.0) -> ProcessRecord:
        state = self._require_state()
        if self._alive(state.agents.get(node)):
            raise LabError(f"the agent of {node} is already running (pid {state.agents[node].pid})")
        plan = self.plan.node(node)
        rec = self._spawn(self.agent_argv(node, plan.netns), f"agent-{node}.log", ["agent", plan.netns])
        state.agents[node] = rec
        self._save()
        if wait_healthy:
            self.wait_agent_healthy(node, wait_healthy)
        return rec

    def stop_agent(self, node: str, sig: int = signal.SIGTERM) -> None:
        state = self._require_state()
        self._stop(state.agents.get(node), sig)

    def restart_agent(self, node: str, sig: int = signal.SIGTERM, wait_healthy: float = 60.0) -> ProcessRecord:
        """Stops the node's agent with `sig` (SIGTERM: graceful, SIGKILL: crash) and starts it
        again with the same arguments."""
        self.stop_agent(node, sig)
        return self.start_agent(node, wait_healthy=wait_healthy)

    def agent_alive(self, node: str) -> bool:
        return self._alive(self._require_state().agents.get(node))

    def healthz(self, netns: str, port: int = HEALTHZ_PORT, path: str = "/healthz") -> tuple[int, str]:
        """GET http://127.0.0.1:<port><path> inside `netns`: (status code, body)."""

        def get() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                    return resp.status, resp.read().decode(errors="replace")
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode(errors="replace")

        return self.netns(netns).run(get)

    def wait_agent_healthy(self, node: str, timeout: float = 60.0) -> None:
        state = self._require_state()
        rec = state.agents.get(node)
        netns = self.plan.node(node).netns

        def healthy() -> bool:
            if not self._alive(rec):
                raise LabError(f"the agent of {node} exited: {self._log_tail(rec) if rec else ''}")
            return self.healthz(netns)[0] == 200

        try:
            wait_until(healthy, timeout, f"the agent of {node} to report healthy")
        except LabError as exc:
            raise LabError(f"{exc} (log: {rec.log if rec else '?'})") from None

    # -- pods (Pod objects bound to a node by hand; the node's kubelet runs them) ----------------

    def pod(self, name: str, namespace: str = "default") -> PodRecord:
        try:
            return self._require_state().pods[f"{namespace}/{name}"]
        except KeyError:
            raise LabError(f"no pod {namespace}/{name} in lab {self.name!r}") from None

    def pods(self) -> list[PodRecord]:
        return list(self._require_state().pods.values())

    def _ready_flag(self, namespace: str, name: str) -> str:
        return os.path.join(self.dir, "ready", f"{namespace}_{name}")

    def _set_flag(self, path: str, on: bool) -> None:
        if on:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w"):
                pass
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def pod_netns(self, pod: dict) -> str:
        """The network namespace the kubelet made for a running `pod` (its address names the
        slot: kproxy.kubelet.podnet.pod_plan is the one home of the naming)."""
        from kproxy.kubelet.podnet import pod_plan

        node = self.plan.node(pod["spec"]["nodeName"])
        # the primary address's slot, in the primary pod CIDR (a dual-stack pod has one slot)
        ip, cidr = ipaddress.ip_address(pod["status"]["podIP"]), ipaddress.ip_network(node.pod_cidr.split(",")[0])
        m = pod["metadata"]
        return pod_plan(f"{node.netns}-pod-", node.pod_cidr, m["namespace"], m["name"], node.name,
                        int(ip) - int(cidr.network_address)).netns

    def wait_pod(self, name: str, namespace: str = "default", ready: bool | None = True,
                 timeout: float = POD_WAIT) -> dict:
        """Waits until the pod runs with an address (and, unless `ready` is None, its Ready
        condition is `ready`); returns it. LabError with its last status otherwise."""
        from kproxy.api.resources import PODS

        last: dict = {}

        def check() -> dict | None:
            nonlocal last
            last = self.client.get(PODS, name, namespace)
            if not pods.running(last):
                return None
            if ready is not None and (pods.condition(last, "Ready") == "True") != ready:
                return None
            return last

        try:
            return wait_until(check, timeout, f"pod {namespace}/{name} to run"
                              + ("" if ready is None else f" with Ready={ready}"))
        except LabError as exc:
            raise LabError(f"{exc}; status: {json.dumps((last.get('status') or {}), sort_keys=True)[:600]}") from None

    def add_pod(self, name: str, node: str, labels: dict[str, str] | None = None, port: int = 8080,
                ready: bool = True, namespace: str = "default", live_flag: str | None = None,
                ready_delay: int = 0) -> PodRecord:
        """Creates Pod `namespace/name` bound to `node` running the echo server; returns once
        its kubelet runs it and it answers (Ready as asked: see set_ready). With `live_flag`,
        a liveness probe restarts its container while that file is missing; a container
        (re)started is Ready `ready_delay` seconds later at the earliest."""
        from kproxy.api.resources import PODS

        state = self._require_state()
        key = f"{namespace}/{name}"
        if key in state.pods:
            raise LabError(f"pod {key} already exists in lab {self.name!r}")
        try:
            self.plan.node(node)
        except PlanError as exc:
            raise LabError(str(exc)) from None
        if namespace != "default":
            self._ensure_namespace(namespace)
        flag = self._ready_flag(namespace, name)
        self._set_flag(flag, ready)
        obj = pods.echo_pod(name, namespace, node, labels or {}, port, ready_flag=flag, live_flag=live_flag,
                            ready_delay=ready_delay)
        created = self.client.create(PODS, obj, namespace=namespace)
        rec = PodRecord(name=name, namespace=namespace, node=node, netns="", ip="", port=port,
                        labels=dict(labels or {}), ready=ready, uid=created["metadata"].get("uid", ""))
        state.pods[key] = rec
        self._save()
        try:
            running = self.wait_pod(name, namespace, ready)
            rec.ip, rec.netns = running["status"]["podIP"], self.pod_netns(running)
            rec.ips = [p["ip"] for p in running["status"].get("podIPs") or []] or [rec.ip]
            self._save()
            wait_until(lambda: self._echo_answers(rec), POD_WAIT, f"the echo server of pod {key}")
        except BaseException:
            with contextlib.suppress(Exception):
                self.delete_pod(name, namespace)  # no half-made pod stays behind
            raise
        return rec

    def _echo_answers(self, rec: PodRecord) -> bool:
        answer = traffic.tcp_request(self.netns(rec.netns), "127.0.0.1", rec.port, 1.0)
        return traffic.Reply.parse(answer).pod == rec.name

    def set_ready(self, name: str, ready: bool, namespace: str = "default") -> None:
        """Makes the pod's readiness probe pass or fail, and waits for its Ready condition
        (the echo server keeps running either way)."""
        rec = self.pod(name, namespace)
        self._set_flag(self._ready_flag(namespace, name), ready)
        rec.ready = ready
        self._save()
        self.wait_pod(name, namespace, ready)

    def delete_pod(self, name: str, namespace: str = "default", graceful: bool = False,
                   grace_seconds: int = 300) -> bool:
        """Deletes the pod. Not graceful: the object goes at once and its kubelet stops the
        pod and removes its namespace (waited for). Graceful: a DELETE with `grace_seconds`,
        after which the object is terminating (deletionTimestamp set) and the pod keeps serving
        (a preStop sleep) until finish_pod(). Returns True if the pod is now terminating."""
        from kproxy.api.resources import PODS

        rec = self.pod(name, namespace)
        if not graceful:
            self._delete_object(rec, 0)
            self._forget_pod(rec)
            return False
        self._delete_object(rec, grace_seconds)
        if self.client.get_or_none(PODS, name, namespace) is None:
            self._forget_pod(rec)  # the apiserver removed it at once: nothing can terminate gracefully
            return False
        rec.terminating = True
        self._save()
        return True

    def finish_pod(self, name: str, namespace: str = "default") -> None:
        """Ends a graceful deletion: removes the object for good, its kubelet stops the pod."""
        rec = self.pod(name, namespace)
        self._delete_object(rec, 0)
        self._forget_pod(rec)

    def _delete_object(self, rec: PodRecord, grace_seconds: int) -> None:
        from kproxy.api.resources import PODS
        from kproxy.api.status import ApiError

        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace_seconds}
        if rec.uid:
            body["preconditions"] = {"uid": rec.uid}
        try:
            self.client.request("DELETE", PODS.object_path(rec.name, rec.namespace), body=body)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def _forget_pod(self, rec: PodRecord) -> None:
        """Waits until the kubelet removed the pod's namespace, then drops the record."""
        self.release_netns(rec.netns)
        if rec.netns:
            wait_until(lambda: not netsetup.namespace_exists(rec.netns), POD_WAIT,
                       f"the kubelet of {rec.node} to remove pod {rec.key}'s namespace {rec.netns}")
        self._set_flag(self._ready_flag(rec.namespace, rec.name), False)
        self._require_state().pods.pop(rec.key, None)
        self._save()

    def replace_pod(self, name: str, new_name: str, namespace: str = "default", node: str | None = None,
                    ready: bool = True) -> PodRecord:
        """Starts `new_name` with the old pod's labels and port (on `node`, default the same),
        then deletes the old pod at once, as a ReplicaSet rollout of one pod does."""
        old = self.pod(name, namespace)
        new = self.add_pod(new_name, node or old.node, old.labels, old.port, ready, namespace)
        self.delete_pod(name, namespace)
        return new

    # -- Services and other objects -------------------------------------------------------------

    def create_service(self, name: str, ports: list[dict] | None = None, selector: dict[str, str] | None = None,
                       type: str = "ClusterIP", namespace: str = "default", labels: dict[str, str] | None = None,
                       **spec: Any) -> dict:
        """Creates a Service (default one TCP port 80 -> 8080) and returns it as stored
        (clusterIP and nodePorts allocated). Extra keyword arguments go into spec as-is."""
        from kproxy.api.resources import SERVICES

        body: dict[str, Any] = {
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
            "spec": {"type": type, "ports": ports or [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                     **spec},
        }
        if selector is not None:
            body["spec"]["selector"] = dict(selector)
        return self.client.create(SERVICES, body, namespace=namespace)

    def apply(self, obj: dict) -> dict:
        """Creates `obj` (any kind of the resource table), or replaces it if it exists."""
        from kproxy.api import resources
        from kproxy.api.status import ApiError

        res = resources.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if res is None:
            raise LabError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}")
        meta = obj.get("metadata") or {}
        namespace = (meta.get("namespace") or "default") if res.namespaced else None
        try:
            return self.client.create(res, obj, namespace=namespace)
        except ApiError as exc:
            if exc.code != 409:
                raise
        current = self.client.get(res, meta["name"], namespace)
        merged = dict(obj)
        merged["metadata"] = {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}
        return self.client.update(res, merged)

    # -- status and down --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What is there: namespaces, processes (alive or not), and the API's pods/services."""
        state = self._require_state()
        present = set(netsetup.list_namespaces())
        info: dict[str, Any] = {
            "name": self.name, "dir": self.dir, "mode": state.mode, "nodes": state.nodes, "ipFamily": state.ip_family,
            "kubeconfig": state.kubeconfig,
            "namespaces": {ns: ns in present for ns in self.plan.namespaces},
            "apiserver": {"pid": state.apiserver.pid if state.apiserver else None,
                          "alive": self._alive(state.apiserver)},
            "kubelets": {n: {"pid": r.pid, "alive": self._alive(r)} for n, r in sorted(state.kubelets.items())},
            "agents": {n: {"pid": r.pid, "alive": self._alive(r)} for n, r in sorted(state.agents.items())},
            "pods": [],
            "services": [],
        }
        if info["apiserver"]["alive"]:
            from kproxy.api.resources import PODS, SERVICES

            with contextlib.suppress(Exception):
                for pod in self.client.list(PODS).get("items", []):
                    m, st = pod["metadata"], pod.get("status") or {}
                    info["pods"].append({
                        "name": f"{m.get('namespace')}/{m['name']}", "node": (pod.get("spec") or {}).get("nodeName"),
                        "ip": st.get("podIP"), "phase": st.get("phase"),
                        "ready": pods.condition(pod, "Ready") == "True", "restarts": pods.restart_count(pod),
                        "terminating": bool(m.get("deletionTimestamp"))})
            with contextlib.suppress(Exception):
                for svc in self.client.list(SERVICES).get("items", []):
                    spec = svc.get("spec") or {}
                    info["services"].append({
                        "name": f"{svc['metadata'].get('namespace')}/{svc['metadata']['name']}",
                        "type": spec.get("type"), "clusterIP": spec.get("clusterIP"),
                        "ports": [f"{p.get('port')}/{p.get('protocol', 'TCP')}"
                                  + (f" nodePort {p['nodePort']}" if p.get("nodePort") else "")
                                  for p in spec.get("ports") or []],
                    })
        return info

    def close(self) -> None:
        """Releases the lab's threads and API connection (does not stop anything)."""
        for ns in self._netns.values():
            ns.close()
        self._netns.clear()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def down(self) -> list[str]:
        """Stops every process and deletes every namespace of the lab; removes the state file.
        Idempotent. Returns the namespaces it deleted."""
        self.close()
        state = self.state
        if state is not None:
            # Kubelets first, all at once: each stops its pods and removes their namespaces.
            for rec in state.kubelets.values():
                if self._alive(rec):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(rec.pid, signal.SIGTERM)
            for rec in state.kubelets.values():
                self._stop(rec, signal.SIGTERM, timeout=30)
            for rec in state.agents.values():
                self._stop(rec, signal.SIGTERM, timeout=10)
            self._stop(state.apiserver, signal.SIGTERM, timeout=10)
            nodes = state.nodes
        else:
            nodes = 1
        plan = self._plan or topology.plan_lab(self.name, nodes)
        deleted = netsetup.teardown(plan)
        for child in list(self._children.values()):
            with contextlib.suppress(Exception):
                child.kill()
                child.wait(timeout=5)
        self._children.clear()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.state_file)
        for sub in ("apiserver", "kubelet", "ready"):
            shutil.rmtree(os.path.join(self.dir, sub), ignore_errors=True)
        self.state = None
        return deleted

    @contextlib.contextmanager
    def running(self, **up_args: Any) -> Iterator["Lab"]:
        """`with Lab(...).running(nodes=2):` brings the lab up and always takes it down."""
        try:
            self.up(**up_args)
            yield self
        finally:
            self.down()
