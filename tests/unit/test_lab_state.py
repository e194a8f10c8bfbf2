"""Lab bookkeeping without the kernel: the state file round-trips, the demo's table is right,
bounded waits report what they waited for, and the CLI gives one-line errors."""
from __future__ import annotations

from collections import Counter

import pytest

from kproxy.lab import demo
from kproxy.lab.lab import Lab, LabError, LabState, PodRecord, ProcessRecord, wait_until


def test_state_round_trips_through_json():
    state = LabState(name="lab", nodes=2, mode="iptables", dir="/tmp/x", sync_period="5s", kubeconfig="/k",
                     node_lease_seconds=4, node_grace_period="8s", toleration_seconds=2)
    state.apiserver = ProcessRecord(pid=10, argv=["a", "b"], log="/l", started=1.0)
    state.agents["node1"] = ProcessRecord(pid=11, argv=["agent"], log="/l2")
    state.kubelets["node1"] = ProcessRecord(pid=12, argv=["kubelet"], log="/l3", marks=["kubelet", "lab-node1"])
    state.pods["default/web-1"] = PodRecord(
        name="web-1", namespace="default", node="node1", netns="lab-node1-pod-default-web-1",
        ip="10.244.1.2", port=8080, labels={"app": "web"}, ready=False, uid="u1", terminating=True)
    again = LabState.from_json(state.to_json())
    assert again == state


def test_load_without_state_is_a_clear_error(tmp_path):
    with pytest.raises(LabError, match="is not up"):
        Lab.load("nolab", base_dir=str(tmp_path))


def test_load_with_corrupt_state_is_a_clear_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "state.json").write_text("{not json")
    with pytest.raises(LabError, match="unreadable"):
        Lab.load("bad", base_dir=str(tmp_path))


def test_wait_until_returns_the_value_and_times_out_with_the_last_error():
    values = iter([0, None, "yes"])
    assert wait_until(lambda: next(values), 5, "x", interval=0.001) == "yes"

    def boom():
        raise OSError("no route")

    with pytest.raises(LabError, match="waiting for the thing.*no route"):
        wait_until(boom, 0.05, "the thing", interval=0.01)


def test_demo_counts_table():
    lines = demo.format_counts(Counter({"web-2": 20, "web-1": 40}), 60, 0)
    assert lines[0].split()[:3] == ["web-1", "40", "66.7%"]
    assert lines[1].split()[:3] == ["web-2", "20", "33.3%"]
    assert demo.format_counts(Counter({"a": 1}), 2, 1)[-1].split() == ["failed", "1"]


def test_cli_status_of_missing_lab_is_one_line(tmp_path, capsys):
    from kproxy.cli.main import main

    assert main(["lab", "status", "--name", "ghost", "--base-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not up" in err[0]


def test_cli_bad_node_count_is_one_line(tmp_path, capsys):
    from kproxy.cli.main import main

    assert main(["lab", "up", "--nodes", "0", "--name", "x", "--base-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--nodes" in err[0]


def test_cli_without_action_is_one_line(capsys):
    from kproxy.cli.main import main

    assert main(["lab"]) == 2
    assert "missing action" in capsys.readouterr().err


def test_cli_unknown_mode_is_one_line(tmp_path, capsys):
    from kproxy.cli.main import main

    assert main(["lab", "up", "--mode", "nosuchmode", "--name", "x", "--base-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown mode 'nosuchmode'" in err[0]
    assert not (tmp_path / "x" / "state.json").exists()


@pytest.mark.parametrize("flags, message", [
    (["--node-grace-period", "soon"], "--node-grace-period: invalid duration 'soon'"),
    (["--node-lease-seconds", "0"], "--node-lease-seconds must be at least 1"),
    (["--toleration-seconds", "-1"], "--toleration-seconds must not be negative"),
])
def test_cli_bad_node_timings_are_one_line(tmp_path, capsys, flags, message):
    from kproxy.cli.main import main

    assert main(["lab", "up", "--name", "x", "--base-dir", str(tmp_path), *flags]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x" / "state.json").exists()
