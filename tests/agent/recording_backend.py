"""A test-only proxy mode, "record": every apply appends one JSON line describing the ruleset
to the file named by $KPROXY_TEST_RECORD_FILE, so tests can see exactly what the real agent
process would have programmed. Loaded with `kproxy agent --backend-module
tests.agent.recording_backend --mode record`.

Failure injection: while the file $KPROXY_TEST_FAIL_FILE holds a number N > 0, apply fails
(raises ApplyError) and decrements it; the failed attempt is recorded with "failed": true.
"""
from __future__ import annotations

import json
import os
import time

from kproxy.agent.backend import ApplyError, ApplyResult, Backend, register
from kproxy.agent.state import ProxyState

RECORD_ENV = "KPROXY_TEST_RECORD_FILE"
FAIL_ENV = "KPROXY_TEST_FAIL_FILE"


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


class RecordingBackend(Backend):
    name = "record"

    def render(self, state: ProxyState, previous=None, changes=None) -> dict:
        return {
            "revision": state.revision,
            "node_name": state.node_name,
            "node_ips": list(state.node_ips),
            "cluster_cidr": state.cluster_cidr,
            "local_ips": None if state.local_ips is None else list(state.local_ips),
            "services": {
                key: {
                    "protocol": sp.protocol, "port": sp.port, "cluster_ips": list(sp.cluster_ips),
                    "node_port": sp.node_port,
                    "endpoints": [{"ip": e.ip, "port": e.port, "ready": e.ready, "serving": e.serving,
                                   "terminating": e.terminating, "is_local": e.is_local} for e in sp.endpoints],
                }
                for key, sp in sorted(state.services.items())
            },
        }

    def _write(self, record: dict) -> None:
        path = os.environ.get(RECORD_ENV)
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")

    def _should_fail(self) -> bool:
        path = os.environ.get(FAIL_ENV)
        if not path or not os.path.exists(path):
            return False
        with open(path) as f:
            remaining = int(f.read().strip() or 0)
        if remaining <= 0:
            return False
        with open(path, "w") as f:
            f.write(str(remaining - 1))
        return True

    def apply(self, ruleset: dict, previous) -> ApplyResult:
        record = {"op": "apply", "full": previous is None, "time": time.time(), "netns": _netns_inode(),
                  "ruleset": ruleset}
        if self._should_fail():
            self._write({**record, "failed": True})
            raise ApplyError("injected failure")
        self._write({**record, "failed": False})
        return ApplyResult(full=previous is None, objects_written=len(ruleset["services"]))

    def inspect(self) -> dict:
        return {}

    def cleanup(self) -> None:
        self._write({"op": "cleanup", "netns": _netns_inode(), "time": time.time()})


register("record", lambda: RecordingBackend)
