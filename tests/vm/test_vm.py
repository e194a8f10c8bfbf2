"""Runs the ipvs kernel tests and the scenario suite in ipvs mode inside ONE boot of the test VM.

The host's kernel may lack IPVS and dummy interfaces; the VM (Debian's kernel through
virtme-ng, see kproxy.vm.harness) has both. The session fixture boots once and runs, in order:
  1. tests/vm/guest (IpvsBackend with real IPVS and packets),
  2. the scenario suite (tests/e2e/test_scenarios.py) in ipvs mode, on the committed tests
     (git archive HEAD) so that teammates' uncommitted edits never leak in, with the ipvs
     probe plugin (tests/vm/ipvs_probe.py).
Each suite leaves a log, a JUnit report and its exit status in a directory shared with the VM;
each host test below asserts one suite passed and prints its failures. A missing kernel, vng
or qemu is a failure naming what to install, never a silent pass.
"""
from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET

import pytest

from kproxy.vm.harness import VmError, ram_paths, run_in_vm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VM_TIMEOUT = float(os.environ.get("KPROXY_VM_TIMEOUT", "3600"))
# the project-wide pytest timeout (300 s) would interrupt the boot fixture mid-run
pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.vm, pytest.mark.timeout(VM_TIMEOUT + 300)]
SUITES = ("ipvs-kernel", "e2e-ipvs")

GUEST_SCRIPT = r"""
set -u
OUT="$1"
modprobe ip_vs; modprobe ip_vs_rr; modprobe ip_vs_mh
ulimit -n 65536
date +%s > "$OUT/suites-start"
pytest tests/vm/guest -p no:cacheprovider -q -rfE --junitxml="$OUT/ipvs-kernel.xml" > "$OUT/ipvs-kernel.log" 2>&1
echo $? > "$OUT/ipvs-kernel.rc"
date +%s > "$OUT/ipvs-kernel.end"
rm -rf /tmp/kproxy-e2e && mkdir -p /tmp/kproxy-e2e
git -c safe.directory='*' archive HEAD tests pyproject.toml | tar -x -C /tmp/kproxy-e2e
if ! grep -q KPROXY_E2E_MODES /tmp/kproxy-e2e/tests/e2e/conftest.py; then
    # until tests/e2e reads KPROXY_E2E_MODES: choose the mode in this private copy only
    sed -i 's/^MODES = .*/MODES = ["ipvs"]/' /tmp/kproxy-e2e/tests/e2e/conftest.py
fi
cd /tmp/kproxy-e2e
# the lab's apiserver keeps SQLite in its directory: guest-local (/tmp), never the 9p share
# requests wait longer for an answer under emulation (see tests/e2e/helpers.py REQUEST_TIMEOUT),
# and a kubelet stalled by a Python start there must not pass for a lost node: upstream's 40 s
# grace period (tests/e2e/conftest.py)
KPROXY_E2E_MODES=ipvs KPROXY_E2E_REQUEST_TIMEOUT=7.5 KPROXY_E2E_NODE_GRACE=40 pytest tests/e2e/test_scenarios.py -p tests.vm.ipvs_probe -p no:cacheprovider -q -rfEs -o timeout=1200 \
    --basetemp=/tmp/kproxy-e2e-tmp --durations=10 ${KPROXY_E2E_ARGS:-} --junitxml="$OUT/e2e-ipvs.xml" > "$OUT/e2e-ipvs.log" 2>&1
echo $? > "$OUT/e2e-ipvs.rc"
# the agents' and apiserver's logs outlive the VM in the shared directory
(cd /tmp/kproxy-e2e-tmp && find . -name '*.log' | cpio -pdm --quiet "$OUT/e2e-logs") 2>/dev/null || true
date +%s > "$OUT/e2e-ipvs.end"
"""


@pytest.fixture(scope="session")
def vm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vm-results")
    os.chmod(out, 0o777)
    script = out / "guest.sh"
    script.write_text(GUEST_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k == "KPROXY_E2E_ARGS"}
    try:
        result = run_in_vm(f"sh {script} {out}", cwd=ROOT, timeout=VM_TIMEOUT, rwdirs=(str(out),), env=env,
                           ram=ram_paths(ROOT))
    except VmError as exc:
        pytest.fail(f"the test VM did not run: {exc}")
    marks = {}
    for name in ("suites-start", "ipvs-kernel.end", "e2e-ipvs.end"):
        with contextlib.suppress(OSError, ValueError):
            marks[name] = float((out / name).read_text())
    print(f"\n[vm] boot {result.boot_seconds:.1f}s, total {result.total_seconds:.1f}s; guest kernel tests "
          f"{marks.get('ipvs-kernel.end', 0) - marks.get('suites-start', 0):.0f}s, e2e suite "
          f"{marks.get('e2e-ipvs.end', 0) - marks.get('ipvs-kernel.end', 0):.0f}s (logs: {out})")
    return out, result


def _report(out, suite: str) -> str:
    log = (out / f"{suite}.log").read_text(errors="replace") if (out / f"{suite}.log").exists() else ""
    failures = []
    xml = out / f"{suite}.xml"
    if xml.exists():
        for case in ET.parse(xml).iter("testcase"):
            for bad in list(case.findall("failure")) + list(case.findall("error")):
                failures.append(f"{case.get('classname')}.{case.get('name')}: {(bad.get('message') or '')[:300]}")
    return "\n".join(failures) + "\n--- log tail ---\n" + "\n".join(log.splitlines()[-60:])


@pytest.mark.parametrize("suite", SUITES)
def test_suite_passes_in_vm(vm_run, suite):
    out, result = vm_run
    rc_file = out / f"{suite}.rc"
    assert rc_file.exists(), f"{suite} never ran in the VM (guest exit {result.returncode}):\n{result.stderr[-3000:]}"
    rc = int(rc_file.read_text().strip())
    xml = out / f"{suite}.xml"
    ran = sum(1 for _ in ET.parse(xml).iter("testcase")) if xml.exists() else 0
    assert rc == 0 and ran > 0, f"{suite}: exit {rc}, {ran} tests\n{_report(out, suite)}"
