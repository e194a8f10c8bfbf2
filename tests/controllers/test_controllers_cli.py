"""`kproxy controllers` as a process: it controls a bare apiserver, exits 0 on SIGTERM, and
bad input gives a one-line error with a non-zero exit."""
from __future__ import annotations

import signal
import subprocess
import sys

from kproxy.api.resources import NAMESPACES, SERVICE_ACCOUNTS
from kproxy.client.sync import Client
from tests.apiserver.fixtures import start_apiserver


def test_cli_runs_controllers_and_stops_on_sigterm(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers"])
    proc = None
    try:
        log = open(tmp_path / "controllers.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "kproxy", "controllers", "--kubeconfig", server.kubeconfig,
                                 "--node-monitor-grace-period", "1m"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        with Client.from_kubeconfig(server.kubeconfig) as c:
            c.create(NAMESPACES, {"metadata": {"name": "cli-ns"}})
            c.wait_for(lambda c: c.get_or_none(SERVICE_ACCOUNTS, "default", "cli-ns"), timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, (tmp_path / "controllers.log").read_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "kproxy", "controllers", *args], capture_output=True, text=True,
                          timeout=30)


def test_cli_bad_inputs_one_line_errors(tmp_path):
    missing = run_cli("--kubeconfig", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "cannot read kubeconfig" in missing.stderr
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    nocontext = run_cli("--kubeconfig", str(bad))
    assert nocontext.returncode == 1 and "current-context is not set" in nocontext.stderr
    assert "Traceback" not in nocontext.stderr
    duration = run_cli("--kubeconfig", str(bad), "--node-monitor-grace-period", "soon")
    assert duration.returncode == 2 and "invalid duration 'soon'" in duration.stderr
