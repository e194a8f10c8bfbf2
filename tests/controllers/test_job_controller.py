"""Job controller: the pure plan (jobplan.py) and the controller against the real apiserver,
with the fake kubelet (tests/controllers/fake_kubelet.py) finishing pods with the exit code
their template's annotation names."""
from __future__ import annotations

import copy

import pytest

from kproxy.api.resources import EVENTS, JOBS, PODS
from kproxy.controllers.jobplan import (
    COMPLETION_INDEX, TRACKING_FINALIZER, count_uncounted, format_indexes, parse_indexes, plan, pod_from_template,
    record_uncounted,
)
from tests.controllers.fake_kubelet import EXIT_CODE
from tests.unit.batch_objects import JOB

T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def _job(**spec) -> dict:
    job = copy.deepcopy(JOB)
    job["metadata"].update(uid="job-uid", generation=1)
    job["spec"].update({"backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False, **spec})
    return job


def _pod(name, phase="Running", *, index=None, finalizer=True, deleting=False, ready=True):
    md = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "batch"},
          "finalizers": [TRACKING_FINALIZER] if finalizer else []}
    if index is not None:
        md["annotations"] = {COMPLETION_INDEX: str(index)}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    conds = [{"type": "Ready", "status": "True"}] if ready and phase == "Running" else []
    return {"metadata": md, "status": {"phase": phase, "conditions": conds}}


def test_indexes_round_trip():
    assert format_indexes({1, 3, 4, 5, 7}) == "1,3-5,7"
    assert format_indexes({0, 1}) == "0,1" and format_indexes(set()) == ""
    assert parse_indexes("1,3-5,7") == {1, 3, 4, 5, 7} and parse_indexes("x,2") == {2}


def test_plan_creates_up_to_parallelism_and_completes():
    job = _job()  # completions 3, parallelism 2
    step = plan(job, [], T0)
    assert step.create == 2 and step.status["active"] == 2 and step.status["startTime"] == "2026-01-01T00:00:00Z"
    job["status"] = {**step.status, "succeeded": 2}
    step = plan(job, [_pod("a")], T0 + 1)
    assert step.create == 0 and step.status["active"] == 1  # one more success needed, one running
    job["status"]["succeeded"] = 3
    step = plan(job, [], T0 + 2)
    kinds = [c["type"] for c in step.status["conditions"] if c["status"] == "True"]
    assert kinds == ["SuccessCriteriaMet", "Complete"] and step.status["completionTime"] == "2026-01-01T00:00:02Z"


def test_plan_fails_past_the_backoff_limit_and_the_deadline():
    job = _job(backoffLimit=1)
    job["status"] = {"failed": 1, "startTime": "2026-01-01T00:00:00Z"}
    step = plan(job, [_pod("a")], T0)  # one failure is within backoffLimit 1: a replacement
    assert step.create == 1 and not step.delete and "conditions" not in step.status
    job["status"]["failed"] = 2
    step = plan(job, [_pod("a")], T0)
    assert [p["metadata"]["name"] for p in step.delete] == ["a"]
    assert {c["type"]: c["reason"] for c in step.status["conditions"]} == {
        "FailureTarget": "BackoffLimitExceeded", "Failed": "BackoffLimitExceeded"}

    job = _job(activeDeadlineSeconds=30)
    job["status"] = {"startTime": "2026-01-01T00:00:00Z"}
    assert plan(job, [_pod("a"), _pod("b")], T0 + 10).requeue == pytest.approx(20)
    step = plan(job, [_pod("a")], T0 + 30)
    assert step.status["conditions"][-1]["reason"] == "DeadlineExceeded" and len(step.delete) == 1


def test_plan_indexed_creates_missing_indexes_and_suspends():
    job = _job(completionMode="Indexed", completions=5, parallelism=3)
    job["status"] = {"completedIndexes": "0,2", "succeeded": 2, "startTime": "2026-01-01T00:00:00Z"}
    step = plan(job, [_pod("p1", index=1)], T0)
    assert step.create_indexes == [3, 4]
    pod = pod_from_template(job, 3)
    assert pod["metadata"]["generateName"] == "work-3-" and pod["spec"]["hostname"] == "work-3"
    assert pod["metadata"]["annotations"][COMPLETION_INDEX] == "3" == pod["metadata"]["labels"][COMPLETION_INDEX]
    assert {"name": "JOB_COMPLETION_INDEX", "value": "3"} in pod["spec"]["containers"][0]["env"]
    assert pod["metadata"]["finalizers"] == [TRACKING_FINALIZER]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"

    job["spec"]["suspend"] = True
    step = plan(job, [_pod("p1", index=1)], T0)
    assert len(step.delete) == 1 and "startTime" not in step.status
    assert step.status["conditions"][0]["type"] == "Suspended"


def test_finished_pods_are_counted_once_through_the_finalizer():
    job = _job(completionMode="Indexed", completions=3)
    pods = [_pod("s", "Succeeded", index=1), _pod("f", "Failed", index=2), _pod("r")]
    status = record_uncounted(job, pods)
    assert status["uncountedTerminatedPods"] == {"succeeded": ["uid-s"], "failed": ["uid-f"]}
    job["status"] = status
    assert record_uncounted(job, pods) is None  # nothing new
    assert count_uncounted(job, pods) is None  # finalizers still held: not yet
    released = [_pod("s", "Succeeded", index=1, finalizer=False), _pod("r")]  # "f" is gone altogether
    job["status"] = count_uncounted(job, released)
    assert (job["status"]["succeeded"], job["status"]["failed"], job["status"]["completedIndexes"]) == (1, 1, "1")
    assert job["status"]["uncountedTerminatedPods"] == {"succeeded": [], "failed": []}
    assert count_uncounted(job, released) is None


# -- against the apiserver ------------------------------------------------------------------

def _create_job(client, name, exit_code=0, **spec):
    job = copy.deepcopy(JOB)
    job["metadata"]["name"] = name
    if exit_code is not None:
        job["spec"]["template"]["metadata"]["annotations"] = {EXIT_CODE: str(exit_code)}
    job["spec"].update(spec)
    return client.create(JOBS, job)


def _condition(client, name, kind, timeout=60):
    def check(c):
        job = c.get(JOBS, name, "default")
        return job if any(x["type"] == kind and x["status"] == "True"
                          for x in (job.get("status") or {}).get("conditions") or []) else None
    return client.wait_for(check, timeout=timeout)


def _job_pods(client, job):
    return [p for p in client.list(PODS, "default")["items"]
            if any(r["uid"] == job["metadata"]["uid"] for r in p["metadata"].get("ownerReferences") or [])]


def test_job_runs_to_completion(env, kubelet):
    c = env.client
    created = _create_job(c, "three")  # completions 3, parallelism 2
    job = _condition(c, "three", "Complete")
    status = job["status"]
    assert (status["succeeded"], status.get("failed", 0), status["active"]) == (3, 0, 0)
    assert status["startTime"] <= status["completionTime"]
    assert status["uncountedTerminatedPods"] == {"succeeded": [], "failed": []}
    pods = _job_pods(c, created)
    assert len(pods) == 3 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in pods)
    assert all(p["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "three" for p in pods)
    reasons = [e["reason"] for e in c.list(EVENTS, "default")["items"] if e["involvedObject"].get("name") == "three"]
    assert reasons.count("SuccessfulCreate") == 3 and "Completed" in reasons


def test_backoff_limit_fails_the_job(env, kubelet):
    c = env.client
    created = _create_job(c, "doomed", exit_code=3, backoffLimit=1, completions=1, parallelism=1)
    job = _condition(c, "doomed", "Failed")
    cond = next(x for x in job["status"]["conditions"] if x["type"] == "Failed")
    assert cond["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2 and "completionTime" not in job["status"]
    assert len(_job_pods(c, created)) == 2  # backoffLimit 1: the first failure was retried once


def test_indexed_job_and_ttl(env, kubelet):
    c = env.client
    # the TTL is set once the test has seen the Job complete: set at creation it could delete
    # the Job (its finish time is kept to the second) before a poll saw it complete
    created = _create_job(c, "idx", completionMode="Indexed", completions=3, parallelism=3)
    job = _condition(c, "idx", "Complete")
    assert (job["status"]["completedIndexes"], job["status"]["succeeded"]) == ("0-2", 3)
    pods = _job_pods(c, created)
    assert sorted(p["metadata"]["annotations"][COMPLETION_INDEX] for p in pods) == ["0", "1", "2"]
    assert all({"name": "JOB_COMPLETION_INDEX", "value": p["metadata"]["annotations"][COMPLETION_INDEX]}
               in p["spec"]["containers"][0]["env"] for p in pods)
    # a second after it finished the Job goes, and the garbage collector takes its pods
    c.patch(JOBS, "idx", {"spec": {"ttlSecondsAfterFinished": 1}}, "default", "merge")
    c.wait_for(lambda c: not any(j["metadata"]["name"] == "idx" for j in c.list(JOBS, "default")["items"]),
               timeout=60)
    c.wait_for(lambda c: not _job_pods(c, created), timeout=60)


def test_deleting_a_running_job_releases_its_pods(env, kubelet):
    """The GC deletes the pods of a deleted Job; their tracking finalizers must not keep them."""
    c = env.client
    created = _create_job(c, "endless", exit_code=None)  # its pods run until deleted
    c.wait_for(lambda c: len([p for p in _job_pods(c, created) if p["status"].get("phase") == "Running"]) == 2,
               timeout=30)
    c.delete(JOBS, "endless", "default", propagation_policy="Background")
    c.wait_for(lambda c: not _job_pods(c, created), timeout=60)


def test_a_lagging_informer_never_doubles_creates():
    """Reconciling again before the informer shows the new pods creates nothing more."""
    import asyncio

    from kproxy.controllers.base import SharedInformers
    from kproxy.controllers.job import JobController
    from tests.controllers.test_replicaset_controller import _LaggingInformer, _RecordingClient

    job = _job()
    job["metadata"]["name"] = "web"  # the recording client names pods web-N
    client = _RecordingClient()
    informers = SharedInformers(client)
    informers._informers[JOBS] = _LaggingInformer([job])
    informers._informers[PODS] = _LaggingInformer()

    async def run():
        controller = JobController(client, informers, clock=lambda: T0)
        for _ in range(3):
            await controller.reconcile("default/web")
        await controller.events.drain()
    asyncio.run(run())
    assert len(client.created) == 2  # parallelism 2
    assert all(TRACKING_FINALIZER in p["metadata"]["finalizers"] for p in client.created)


def test_plan_counts_succeeded_pods_not_yet_counted():
    """A pod that succeeded but is still in uncountedTerminatedPods (or still holds the tracking
    finalizer) is a success: the plan never creates more than completions - succeeded - active."""
    job = _job()  # completions 3, parallelism 2
    job["status"] = {"succeeded": 1, "startTime": "2026-01-01T00:00:00Z",
                     "uncountedTerminatedPods": {"succeeded": ["uid-b"], "failed": []}}
    pods = [_pod("b", "Succeeded"), _pod("c")]
    step = plan(job, pods, T0)
    assert step.create == 0 and not step.delete and step.status["active"] == 1
    job["status"]["uncountedTerminatedPods"] = {"succeeded": [], "failed": []}  # b not even recorded yet
    assert plan(job, pods, T0).create == 0
    job["status"]["succeeded"] = 0  # two to go, one running: one more
    assert plan(job, pods, T0).create == 1

    job = _job(completionMode="Indexed", completions=3, parallelism=3)
    job["status"] = {"succeeded": 1, "completedIndexes": "0", "startTime": "2026-01-01T00:00:00Z",
                     "uncountedTerminatedPods": {"succeeded": ["uid-b"], "failed": []}}
    step = plan(job, [_pod("b", "Succeeded", index=1)], T0)
    assert step.create_indexes == [2]  # index 1 succeeded: not run again


class _VersioningClient:
    """Answers writes as the apiserver would (each one a new resourceVersion) and records them."""

    def __init__(self):
        self.created, self.deleted, self.patched, self.statuses = [], [], [], []
        self.rv = 100
        self.on_write = lambda: None  # called on each status write or patch (a watch event arriving)

    def _bump(self, obj):
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return obj

    async def create(self, resource, obj, namespace=None):
        if resource == PODS:
            obj = copy.deepcopy(obj)
            obj["metadata"].update(name=f"web-new-{len(self.created)}", uid=f"new-{len(self.created)}")
            self.created.append(obj)
        return self._bump(obj)

    async def update_status(self, resource, obj):
        self.statuses.append(copy.deepcopy(obj["status"]))
        self.on_write()
        return self._bump(obj)

    async def delete(self, resource, name, namespace=None, **kwargs):
        self.deleted.append(name)
        return {}

    async def patch(self, resource, name, patch, namespace=None, patch_type="merge"):
        self.patched.append((name, patch))
        self.on_write()
        return self._bump({"metadata": {"name": name, "namespace": namespace}})


def _counting_setup():
    """A Job (completions 3, parallelism 2) that counted a; b just succeeded, c runs."""
    from kproxy.controllers.base import SharedInformers
    from kproxy.controllers.job import JobController
    from tests.controllers.test_replicaset_controller import _LaggingInformer

    job = _job()
    job["metadata"].update(name="web", resourceVersion="10")
    job["spec"]["selector"] = {"matchLabels": {"app": "batch"}}
    job["status"] = {"succeeded": 1, "active": 2, "startTime": "2026-01-01T00:00:00Z"}
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "web", "uid": "job-uid", "controller": True}
    a, b, c = (_pod("a", "Succeeded", finalizer=False), _pod("b", "Succeeded"), _pod("c"))
    for p in (a, b, c):
        p["metadata"]["ownerReferences"] = [owner]
        p["metadata"]["resourceVersion"] = "9"
    client = _VersioningClient()
    informers = SharedInformers(client)
    jobs, pods = _LaggingInformer([job]), _LaggingInformer([a, b, c])
    informers._informers[JOBS] = jobs
    informers._informers[PODS] = pods
    return client, JobController(client, informers, clock=lambda: T0), jobs, pods


def test_a_job_informer_behind_our_status_writes_never_over_creates():
    """The Job informer still shows the status from before our last writes while the pod
    informer already shows the finalizer we removed: the pod counted by those writes must not
    look like a missing success (which made a Job of completions 3 run 4 pods)."""
    import asyncio

    client, controller, _, pods = _counting_setup()

    async def run():
        await controller.reconcile("default/web")  # counts b: succeeded 2, c runs: nothing to create
        assert [name for name, _ in client.patched] == ["b"] and client.statuses[-1]["succeeded"] == 2
        released = copy.deepcopy(pods.cache["default/b"])
        released["metadata"].update(finalizers=[], resourceVersion="1000")
        pods.cache["default/b"] = released  # the pod informer sees the finalizer go; the Job one lags
        await controller.reconcile("default/web")
        await controller.events.drain()
    asyncio.run(run())
    assert client.created == [] and client.deleted == []
    assert all(s.get("succeeded", 0) <= 2 for s in client.statuses)


def test_a_pod_informer_behind_our_finalizer_removal_never_counts_twice():
    """The Job informer shows the status that counted b while the pod informer still shows b
    holding the tracking finalizer: b must not be recorded and counted a second time."""
    import asyncio

    client, controller, jobs, pods = _counting_setup()

    async def run():
        await controller.reconcile("default/web")
        assert client.statuses[-1]["succeeded"] == 2
        written = copy.deepcopy(jobs.cache["default/web"])
        written["metadata"]["resourceVersion"] = "1000"
        written["status"] = client.statuses[-1]
        jobs.cache["default/web"] = written  # the Job informer is up to date; the pod one lags
        for _ in range(2):
            await controller.reconcile("default/web")
        await controller.events.drain()
    asyncio.run(run())
    assert [name for name, _ in client.patched] == ["b"]
    assert client.created == [] and client.deleted == []
    assert all(s.get("succeeded", 0) <= 2 for s in client.statuses)


def test_a_create_observed_during_a_reconcile_does_not_complete_its_pod_list():
    """The informer shows our new pod while the reconcile is writing, after it listed the pods:
    that list lacks the pod, so it must not be planned from (the expectations held when listing
    decide), or the pod is created twice."""
    import asyncio

    client, controller, jobs, pods = _counting_setup()
    job = jobs.cache["default/web"]
    job["status"] = {"succeeded": 0, "active": 2, "startTime": "2026-01-01T00:00:00Z"}
    del pods.cache["default/a"]  # b succeeded, c runs

    async def run():
        await controller.reconcile("default/web")  # counts b: 2 to go, c runs: one more pod
        assert len(client.created) == 1 and client.statuses[-1]["succeeded"] == 1
        written = copy.deepcopy(job)
        written["metadata"]["resourceVersion"] = "1000"
        written["status"] = client.statuses[-1]
        jobs.cache["default/web"] = written
        b = pods.cache["default/b"]
        b["metadata"].update(finalizers=[], resourceVersion="1000")
        c = pods.cache["default/c"]
        c["status"] = {"phase": "Succeeded"}  # c succeeds; the new pod is not in the cache yet
        new = copy.deepcopy(client.created[0])
        new["metadata"].update(namespace="default", resourceVersion="1000")

        def observe_new_pod():  # the watch event of the new pod arrives during our writes
            pods.cache["default/" + new["metadata"]["name"]] = new
            controller._pod_added(new)
        client.on_write = observe_new_pod
        await controller.reconcile("default/web")  # counts c: 1 to go, and the new pod runs
        await controller.events.drain()
    asyncio.run(run())
    assert len(client.created) == 1 and client.deleted == []
    assert client.statuses[-1]["succeeded"] == 2
