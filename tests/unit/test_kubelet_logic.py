"""The kubelet's pure decisions: CrashLoopBackOff, probe state machines, pod status, a
container's argv and environment, the Node object, pod address slots."""
from __future__ import annotations

import sys

import pytest

from kproxy.kubelet.backoff import CrashBackoff
from kproxy.kubelet.containerspec import (ImageError, EnvError, container_argv, container_env, expand, image_name,
                                          referenced_sources,
                                          service_env)
from kproxy.kubelet.node import NodeFacts, node_object, refreshed_node, status_differs
from kproxy.kubelet.probes import ProbeTracker, resolve_port
from kproxy.kubelet.runtime import RuntimeFailure, exit_code, free_slot, pod_plan
from kproxy.kubelet.status import ContainerRecord, pod_phase, pod_status, qos_class
from kproxy.lab.echo import http_reply


# -- CrashLoopBackOff ------------------------------------------------------------------

def test_backoff_first_restart_at_once_then_doubles_to_the_cap():
    b = CrashBackoff(initial=10, maximum=300)
    waits = []
    now = 0.0
    for _ in range(8):
        start = b.exited(now, ran_for=1)
        waits.append(start - now)
        now = start + 1
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


def test_backoff_holds_until_its_time_and_resets_after_a_long_run():
    b = CrashBackoff(initial=10, maximum=300)
    b.exited(0, 1)
    b.exited(5, 1)  # second exit: 10 s
    assert b.waiting(14.9) and not b.waiting(15)
    assert b.exited(100, ran_for=600) == 100  # ran 2 x cap: starts over


# -- probes ------------------------------------------------------------------------------

def test_readiness_starts_failed_and_flips_after_success_threshold():
    t = ProbeTracker("readiness", {"initialDelaySeconds": 5, "periodSeconds": 2, "successThreshold": 2}, 100.0)
    assert not t.result and not t.due(104.9) and t.due(105)
    assert t.record(True, 105) is False and not t.result
    assert not t.due(106.9) and t.due(107)
    assert t.record(True, 107) is True and t.result
    assert t.record(False, 109) is False and t.result  # 1 of 3 failures
    t.record(False, 111)
    assert t.record(False, 113) is True and not t.result


def test_liveness_starts_ok_and_a_success_resets_the_failure_count():
    t = ProbeTracker("liveness", {"failureThreshold": 2}, 0.0)
    assert t.result and t.due(0) and t.period == 10
    t.record(False, 0)
    t.record(True, 10)
    assert t.record(False, 20) is False and t.result
    assert t.record(False, 30) is True and not t.result


def test_startup_gives_up_after_failure_threshold_only_before_success():
    t = ProbeTracker("startup", {"failureThreshold": 2}, 0.0)
    assert not t.result
    t.record(False, 0)
    assert not t.gave_up()
    t.record(False, 10)
    assert t.gave_up()
    ok = ProbeTracker("startup", {}, 0.0)
    ok.record(True, 0)
    assert ok.result and not ok.gave_up()


def test_probe_port_by_number_or_container_port_name():
    container = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port(80, container) == 80
    assert resolve_port("http", container) == 8080
    assert resolve_port("9090", container) == 9090
    assert resolve_port("nope", container) is None


# -- status ----------------------------------------------------------------------------

def _running(name="c", ready=True) -> ContainerRecord:
    return ContainerRecord(name=name, image="img", state="running", reason="", started_at="T0", ready=ready,
                           started=True, container_id="process://1")


def test_phase_follows_kubelet_get_phase():
    waiting = ContainerRecord(name="w", image="i")
    done0 = ContainerRecord(name="d", image="i", state="terminated", exit_code=0, reason="Completed")
    done1 = ContainerRecord(name="e", image="i", state="terminated", exit_code=1, reason="Error")
    backing_off = ContainerRecord(name="b", image="i", reason="CrashLoopBackOff",
                                  last_state={"terminated": {"exitCode": 1}})
    assert pod_phase([waiting, _running()], "Always") == "Pending"
    assert pod_phase([_running(), done0], "Never") == "Running"
    assert pod_phase([done0], "Never") == "Succeeded"
    assert pod_phase([done0, done1], "Never") == "Failed"
    assert pod_phase([done1], "OnFailure") == "Running"
    assert pod_phase([backing_off], "Always") == "Running"


def test_status_conditions_ips_and_kept_transition_times():
    pod = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"conditions": [
               {"type": "PodScheduled", "status": "True", "lastTransitionTime": "T-sched"},
               {"type": "Initialized", "status": "True", "lastTransitionTime": "T-init"},
               {"type": "Ready", "status": "True", "lastTransitionTime": "T-ready"}]}}
    st = pod_status(pod, [_running("a"), _running("b", ready=False)], pod_ip="10.244.1.2", host_ip="10.0.0.1",
                    start_time="T0", network_ready=True, now="T9")
    conds = {c["type"]: c for c in st["conditions"]}
    assert [c["type"] for c in st["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                      "ContainersReady", "PodScheduled"]
    assert conds["Initialized"]["lastTransitionTime"] == "T-init"
    assert conds["Ready"] == {"type": "Ready", "status": "False", "lastProbeTime": None, "lastTransitionTime": "T9",
                              "reason": "ContainersNotReady", "message": "containers with unready status: [b]"}
    assert conds["PodScheduled"]["lastTransitionTime"] == "T-sched"
    assert st["phase"] == "Running" and st["podIPs"] == [{"ip": "10.244.1.2"}] and st["hostIP"] == "10.0.0.1"
    assert st["qosClass"] == "BestEffort"
    a = st["containerStatuses"][0]
    assert a == {"name": "a", "state": {"running": {"startedAt": "T0"}}, "lastState": {}, "ready": True,
                 "restartCount": 0, "image": "img", "imageID": "", "started": True, "containerID": "process://1"}


def test_completed_pod_is_not_ready_with_reason_pod_completed():
    done = ContainerRecord(name="d", image="i", state="terminated", exit_code=0, reason="Completed",
                           started_at="T0", finished_at="T1")
    st = pod_status({"spec": {"restartPolicy": "Never"}}, [done], pod_ip=None, host_ip="h", start_time="T0",
                    network_ready=True, now="T2")
    ready = [c for c in st["conditions"] if c["type"] == "Ready"][0]
    assert st["phase"] == "Succeeded" and ready["reason"] == "PodCompleted" and "podIP" not in st
    assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_qos_class():
    guaranteed = {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
    burstable = {"resources": {"requests": {"cpu": "1"}}}
    assert qos_class({"containers": [guaranteed]}) == "Guaranteed"
    assert qos_class({"containers": [guaranteed, burstable]}) == "Burstable"
    assert qos_class({"containers": [{}]}) == "BestEffort"


# -- container spec --------------------------------------------------------------------

def test_argv_from_builtin_images_command_and_args():
    env = {"PORT": "9000"}
    assert container_argv({"image": "kproxy.local/echo:1.0"}, env) == [sys.executable, "-m", "kproxy.lab.echo"]
    assert container_argv({"image": "kproxy.local/echo", "args": ["--port", "$(PORT)"]}, env)[-2:] == [
        "--port", "9000"]
    assert container_argv({"image": "kproxy.local/base"}, env) == ["/bin/sh"]
    assert container_argv({"image": "kproxy.local/base", "command": ["sh", "-c"], "args": ["echo $$(PORT)"]},
                          env) == ["sh", "-c", "echo $(PORT)"]
    with pytest.raises(ImageError, match='image "nginx:1.27" not found'):
        container_argv({"image": "nginx:1.27"}, env)


def test_image_name_and_expand():
    assert image_name("registry:5000/a/b:tag") == "registry:5000/a/b"
    assert image_name("kproxy.local/echo@sha256:abc") == "kproxy.local/echo"
    assert expand("$(A)-$(B)-$$(A)-$(", {"A": "x"}) == "x-$(B)-$(A)-$("


def test_service_env_as_kubelet_writes_it():
    svc = {"metadata": {"name": "web-api"}, "spec": {"clusterIP": "10.96.0.10", "ports": [
        {"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}
    env = service_env([svc, headless])
    assert env["WEB_API_SERVICE_HOST"] == "10.96.0.10" and env["WEB_API_SERVICE_PORT"] == "80"
    assert env["WEB_API_SERVICE_PORT_DNS"] == "53"
    assert env["WEB_API_PORT"] == "tcp://10.96.0.10:80"
    assert env["WEB_API_PORT_53_UDP_ADDR"] == "10.96.0.10" and env["WEB_API_PORT_53_UDP_PROTO"] == "udp"
    assert not any(k.startswith("H_") for k in env)


def test_container_env_values_downward_api_and_service_links():
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
           "spec": {"nodeName": "n1", "enableServiceLinks": False}}
    kube = {"metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443}]}}
    other = {"metadata": {"name": "web", "namespace": "ns"}, "spec": {"clusterIP": "10.96.0.2", "ports": [{"port": 80}]}}
    container = {"env": [
        {"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-$(HOSTNAME)"},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}
    env = container_env(container, pod, [kube, other], "10.244.1.2", "10.0.0.1")
    assert env["B"] == "1-p" and env["IP"] == "10.244.1.2" and env["APP"] == "web" and env["NODE"] == "n1"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and "WEB_SERVICE_HOST" not in env
    with pytest.raises(EnvError):
        container_env({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
                      pod, [], "", "")


# -- node, runtime, echo ---------------------------------------------------------------

FACTS = NodeFacts(name="n1", internal_ip="10.0.0.1", hostname="n1", pod_cidr="10.244.1.0/24", cpu="2",
                  memory="1024Ki")


def test_node_object_and_refresh_keeps_transition_times():
    node = node_object(FACTS, "T0")
    assert node["spec"] == {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
    assert node["status"]["allocatable"] == {"cpu": "2", "memory": "1024Ki", "pods": "110", "ephemeral-storage": "0"}
    assert [c["type"] for c in node["status"]["conditions"]] == ["MemoryPressure", "DiskPressure", "PIDPressure",
                                                                  "Ready"]
    node["status"]["conditions"][3].update(status="Unknown", lastTransitionTime="T1")  # the lifecycle controller
    later = refreshed_node(node, FACTS, "T5")
    conds = {c["type"]: c for c in later["status"]["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Ready"]["lastTransitionTime"] == "T5"
    assert conds["MemoryPressure"]["lastTransitionTime"] == "T0" and conds["MemoryPressure"]["lastHeartbeatTime"] == "T5"


def test_status_differs_on_conditions_and_resources_not_heartbeats():
    node = node_object(FACTS, "T0")
    assert not status_differs(node, FACTS)
    assert not status_differs(refreshed_node(node, FACTS, "T9"), FACTS)
    unknown = refreshed_node(node, FACTS, "T1")
    unknown["status"]["conditions"][3]["status"] = "Unknown"
    assert status_differs(unknown, FACTS)
    bigger = NodeFacts(**{**FACTS.__dict__, "cpu": "4"})
    assert status_differs(node, bigger)


def test_pod_slots_and_names():
    assert free_slot("10.244.1.0/24", []) == 2
    assert free_slot("10.244.1.0/24", [2, 3, 5]) == 4
    with pytest.raises(RuntimeFailure):
        free_slot("10.244.1.0/29", range(2, 7))
    plan = pod_plan("node-pod-", "10.244.1.0/24", "default", "web", "n1", 7)
    assert plan.ip == "10.244.1.7" and plan.netns == "node-pod-default-web" and plan.host_veth == "kp7"
    assert pod_plan("node-pod-", "10.244.1.0/24", "default", "x" * 200, "n1", 9).netns == "node-pod-slot9"
    assert exit_code(-9) == 137 and exit_code(3) == 3


def test_echo_answers_http_paths():
    peer = ("10.0.0.5", 4000)
    assert http_reply("web-1", peer, "hello\n") is None
    reply = http_reply("web-1", peer, "GET /hostname HTTP/1.1\r\n")
    assert reply is not None and reply.endswith(b"\r\n\r\nweb-1")
    assert http_reply("web-1", peer, "GET /clientip HTTP/1.1").endswith(b"10.0.0.5:4000")  # type: ignore[union-attr]
    assert http_reply("web-1", peer, "GET /healthz?x=1 HTTP/1.0").endswith(b"ok")  # type: ignore[union-attr]


def test_env_from_secrets_and_config_maps():
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}}
    container = {
        "envFrom": [{"secretRef": {"name": "creds"}, "prefix": "DB_"}, {"configMapRef": {"name": "cfg"}}],
        "env": [{"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}]}
    assert referenced_sources(container) == {("Secret", "creds"), ("Secret", "gone"), ("ConfigMap", "cfg")}
    sources = {("Secret", "creds"): {"password": "s3cret", "user": "me"}, ("Secret", "gone"): None,
               ("ConfigMap", "cfg"): {"mode": "fast", "bad key": "x"}}
    env = container_env(container, pod, [], "", "", sources)
    assert env["PASS"] == "s3cret" and env["DB_user"] == "me" and env["mode"] == "fast" and env["MODE"] == "fast"
    assert "OPT" not in env and "bad key" not in env
    with pytest.raises(EnvError, match='secret "creds" not found'):
        container_env({"env": container["env"][:1]}, pod, [], "", "", {})
    with pytest.raises(EnvError, match="couldn't find key password in Secret creds"):
        container_env({"env": container["env"][:1]}, pod, [], "", "", {("Secret", "creds"): {}})


def test_init_containers_hold_the_pod_pending_and_fail_it_under_never():
    app = ContainerRecord(name="app", image="i")
    running_init = ContainerRecord(name="setup", image="i", state="running", reason="", started_at="T0")
    ok_init = ContainerRecord(name="setup", image="i", state="terminated", exit_code=0, reason="Completed")
    bad_init = ContainerRecord(name="setup", image="i", state="terminated", exit_code=1, reason="Error")
    assert pod_phase([app], "Always", [running_init]) == "Pending"
    assert pod_phase([app], "Never", [bad_init]) == "Failed"
    assert pod_phase([app], "OnFailure", [bad_init]) == "Pending"
    assert pod_phase([_running("app")], "Always", [ok_init]) == "Running"
    st = pod_status({"spec": {}}, [app], pod_ip="10.244.1.2", host_ip="h", start_time="T0", network_ready=True,
                    now="T1", init_containers=[running_init])
    init = [c for c in st["conditions"] if c["type"] == "Initialized"][0]
    assert init["status"] == "False" and init["reason"] == "ContainersNotInitialized"
    assert init["message"] == "containers with incomplete status: [setup]"
    assert st["initContainerStatuses"][0]["state"] == {"running": {"startedAt": "T0"}}
