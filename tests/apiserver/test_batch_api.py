"""batch/v1 Jobs and CronJobs over HTTP and through the real kubectl: defaults, the generated
selector, immutable fields, Table columns, discovery. The server runs without controllers, so
only what these tests write is stored."""
from __future__ import annotations

import copy
import json
import shutil

import pytest

from tests.apiserver.httputil import TABLE, named
from tests.unit.batch_objects import CRON_JOB, JOB

JOBS = "/apis/batch/v1/namespaces/default/jobs"
CRONJOBS = "/apis/batch/v1/namespaces/default/cronjobs"
UID_LABEL = "batch.kubernetes.io/controller-uid"


def test_job_defaults_and_generated_selector(api):
    created = api.ok("POST", JOBS, named(JOB, "gen"))
    uid, spec = created["metadata"]["uid"], created["spec"]
    assert spec["selector"] == {"matchLabels": {UID_LABEL: uid}}
    assert spec["template"]["metadata"]["labels"] == {
        "app": "batch", UID_LABEL: uid, "controller-uid": uid, "batch.kubernetes.io/job-name": "gen",
        "job-name": "gen"}
    assert created["metadata"]["labels"] == {"app": "batch"}  # the template's labels, before the generated ones
    assert (spec["backoffLimit"], spec["completionMode"], spec["suspend"], spec["podReplacementPolicy"]) == \
        (6, "NonIndexed", False, "TerminatingOrFailed")
    assert (spec["completions"], spec["parallelism"]) == (3, 2)
    assert created["metadata"]["generation"] == 1 and created["status"] == {}
    lone = named(JOB, "lone")
    del lone["spec"]["completions"], lone["spec"]["parallelism"]
    lone_spec = api.ok("POST", JOBS, lone)["spec"]
    assert (lone_spec["completions"], lone_spec["parallelism"]) == (1, 1)

    # suspend may change (a new generation); the template may not, and nothing is written
    resumed = api.ok("PUT", f"{JOBS}/gen", {**created, "spec": {**spec, "suspend": True}})
    assert resumed["metadata"]["generation"] == 2
    changed = copy.deepcopy(resumed)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    code, body = api.call("PUT", f"{JOBS}/gen", changed)
    assert (code, body["reason"]) == (422, "Invalid"), body
    assert {"reason": "FieldValueInvalid", "field": "spec.template"}.items() <= body["details"]["causes"][0].items()
    assert api.ok("GET", f"{JOBS}/gen")["metadata"]["resourceVersion"] == resumed["metadata"]["resourceVersion"]

    status = api.ok("PUT", f"{JOBS}/gen/status", {**resumed, "status": {"active": 2, "startTime": "2026-01-01T00:00:00Z"}})
    assert status["status"]["active"] == 2 and status["metadata"]["generation"] == 2


def test_a_job_with_a_foreign_selector_is_refused(api):
    job = named(JOB, "foreign")
    job["spec"]["selector"] = {"matchLabels": {"app": "batch"}}
    code, body = api.call("POST", JOBS, job)
    assert (code, body["reason"]) == (422, "Invalid"), body
    assert any(c["field"] == "spec.selector" and "not auto-generated" in c["message"]
               for c in body["details"]["causes"])
    assert api.call("GET", f"{JOBS}/foreign")[0] == 404


def test_cron_job_defaults_and_time_zone(api):
    created = api.ok("POST", CRONJOBS, named(CRON_JOB, "tz"))
    spec = created["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    assert "backoffLimit" not in spec["jobTemplate"]["spec"]  # a Job's defaults apply to the Job
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    bad = copy.deepcopy(created)
    bad["spec"]["timeZone"] = "Europe/Atlantis"
    code, body = api.call("PUT", f"{CRONJOBS}/tz", bad)
    assert (code, body["details"]["causes"][0]["field"]) == (422, "spec.timeZone"), body
    assert "unknown time zone Europe/Atlantis" in body["details"]["causes"][0]["message"]


def test_tables_and_discovery(api):
    job = api.ok("POST", JOBS, named(JOB, "tab"))
    api.ok("PUT", f"{JOBS}/tab/status", {**job, "status": {
        "succeeded": 3, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:01:05Z",
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}})
    code, _, raw = api.raw("GET", f"{JOBS}/tab", headers={"Accept": TABLE})
    table = json.loads(raw)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]
    assert table["rows"][0]["cells"][:4] == ["tab", "Complete", "3/3", "65s"]
    assert table["rows"][0]["cells"][5:7] == ["work", "busybox"]

    api.ok("POST", CRONJOBS, named(CRON_JOB, "tab"))
    code, _, raw = api.raw("GET", f"{CRONJOBS}/tab", headers={"Accept": TABLE})
    table = json.loads(raw)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age", "Containers", "Images",
        "Selector"]
    assert table["rows"][0]["cells"][:6] == ["tab", "30 2 * * *", "Europe/Paris", "False", 0, "<none>"]

    batch = {r["name"]: r for r in api.ok("GET", "/apis/batch/v1")["resources"]}
    assert {"jobs", "jobs/status", "cronjobs", "cronjobs/status"} <= set(batch)
    assert batch["cronjobs"]["shortNames"] == ["cj"] and "all" in batch["jobs"]["categories"]
    assert any(g["name"] == "batch" for g in api.ok("GET", "/apis")["groups"])


KUBECTL = shutil.which("kubectl")


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_create_and_get_jobs_and_cronjobs(server):
    from tests.apiserver.test_kubectl import Kubectl
    kubectl = Kubectl(server.kubeconfig)
    # kubectl's typed create sends protobuf
    assert "job.batch/kc created" in kubectl("create", "job", "kc", "--image=busybox", "--", "true")
    assert "cronjob.batch/kc-cron created" in kubectl(
        "create", "cronjob", "kc-cron", "--image=busybox", "--schedule=*/5 * * * *", "--", "date")
    assert "job.batch/kc-manual created" in kubectl("create", "job", "kc-manual", "--from=cronjob/kc-cron")
    manual = kubectl.json("get", "job", "kc-manual")
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert manual["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert manual["spec"]["template"]["spec"]["containers"][0]["command"] == ["date"]

    out = kubectl("get", "jobs,cronjobs")
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert lines[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert ["job.batch/kc", "Running", "0/1"] in [line[:3] for line in lines]
    assert ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"] in lines
    assert ["cronjob.batch/kc-cron", "*/5", "*", "*", "*", "*", "<none>", "False", "0", "<none>"] in \
        [line[:10] for line in lines]
    assert "completions" in kubectl("explain", "job.spec")
    assert "job.batch/kc" in kubectl("get", "all")


def test_official_python_client(server):
    pytest.importorskip("kubernetes")
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=server.kubeconfig)
    try:
        batch = client.BatchV1Api(api_client)
        template = client.V1PodTemplateSpec(spec=client.V1PodSpec(
            restart_policy="Never", containers=[client.V1Container(name="pi", image="busybox", command=["true"])]))
        job = batch.create_namespaced_job("default", client.V1Job(
            metadata=client.V1ObjectMeta(name="py-job"), spec=client.V1JobSpec(template=template, backoff_limit=2)))
        assert job.spec.completions == 1 and job.spec.backoff_limit == 2
        assert job.spec.selector.match_labels == {UID_LABEL: job.metadata.uid}
        assert batch.read_namespaced_job_status("py-job", "default").metadata.name == "py-job"
        cron = batch.create_namespaced_cron_job("default", client.V1CronJob(
            metadata=client.V1ObjectMeta(name="py-cron"), spec=client.V1CronJobSpec(
                schedule="@hourly", job_template=client.V1JobTemplateSpec(spec=client.V1JobSpec(template=template)))))
        assert cron.spec.concurrency_policy == "Allow" and cron.spec.successful_jobs_history_limit == 3
        assert "py-cron" in [c.metadata.name for c in batch.list_cron_job_for_all_namespaces().items]
        with pytest.raises(ApiException) as exc:
            batch.create_namespaced_cron_job("default", client.V1CronJob(
                metadata=client.V1ObjectMeta(name="py-bad"), spec=client.V1CronJobSpec(
                    schedule="every day", job_template=client.V1JobTemplateSpec(spec=client.V1JobSpec(
                        template=template)))))
        assert exc.value.status == 422 and "spec.schedule" in exc.value.body
        batch.delete_namespaced_job("py-job", "default", propagation_policy="Background")
        batch.delete_namespaced_cron_job("py-cron", "default")
    finally:
        api_client.close()
