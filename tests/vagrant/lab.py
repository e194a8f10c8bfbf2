"""The Vagrant lab seen from the host: vagrant/run.sh up/down and commands on a node over
`vagrant ssh`, all inside the lab's namespaces (run.sh confines libvirt and vagrant there)."""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RUN_SH = Path(__file__).resolve().parents[2] / "vagrant" / "run.sh"
UP_TIMEOUT = 3 * 3600.0  # two VMs under software emulation on a shared, loaded machine


@dataclass(frozen=True)
class VagrantLab:
    name: str  # the lab's network namespace
    state: str  # its state directory
    nodes: int
    mode: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KPROXY_VAGRANT_LAB": self.name, "KPROXY_VAGRANT_STATE": self.state,
                "KPROXY_NODES": str(self.nodes), "KPROXY_MODE": self.mode}

    def run(self, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess:
        return subprocess.run([str(RUN_SH), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def ssh(self, node: str, command: str, timeout: float = 600.0) -> subprocess.CompletedProcess:
        """COMMAND as root on NODE (through `vagrant ssh -c 'sudo ...'`)."""
        return self.run("ssh", node, "--", "sudo sh -c " + _quote(command), timeout=timeout)

    def check(self, node: str, command: str, timeout: float = 600.0) -> str:
        """stdout of COMMAND on NODE; an AssertionError with its output when it fails."""
        r = self.ssh(node, command, timeout=timeout)
        assert r.returncode == 0, f"{node}: {command!r} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def wait_for(self, node: str, command: str, what: str, deadline: float = 900.0) -> str:
        """Runs COMMAND on NODE until it succeeds; its stdout. Fails after DEADLINE seconds
        (generous: a bound for a hang, not a speed check)."""
        end = time.monotonic() + deadline
        while True:
            r = self.ssh(node, command)
            if r.returncode == 0:
                return r.stdout
            if time.monotonic() > end:
                raise AssertionError(f"{what}: not within {deadline:.0f} s; last: {r.stdout}\n{r.stderr}")
            time.sleep(5)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"
