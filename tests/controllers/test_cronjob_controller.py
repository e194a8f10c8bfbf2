"""CronJob controller: the pure schedule and policies (cronplan.py) and the controller against
the real apiserver with an injected clock (the controllers' `clock` option), the Job controller
and the fake kubelet, so a day's schedule runs in seconds."""
from __future__ import annotations

import copy
import datetime
import threading

import pytest

from kproxy.api.resources import CRON_JOBS, EVENTS, JOBS
from kproxy.controllers.cronplan import SCHEDULED_TIMESTAMP, due, job_for, plan
from tests.unit.batch_objects import CRON_JOB


def _epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _cron(**spec) -> dict:
    cron = copy.deepcopy(CRON_JOB)
    cron["metadata"].update(uid="cron-uid", creationTimestamp="2026-01-01T00:00:00Z")
    cron["spec"].update({"concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3,
                         "failedJobsHistoryLimit": 1, **spec})
    return cron


def _job(name, state=None, start="2026-01-01T00:00:00Z"):
    job = {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
           "status": {"startTime": start}}
    if state:
        job["status"]["conditions"] = [{"type": state, "status": "True"}]
        if state == "Complete":
            job["status"]["completionTime"] = start
    return job


def test_schedule_is_read_in_the_time_zone():
    cron = _cron(schedule="0 9 * * *", timeZone="America/New_York")  # 09:00 EST is 14:00 UTC
    assert due(cron, _epoch("2026-01-01T13:59:59Z")).time is None
    d = due(cron, _epoch("2026-01-01T14:00:30Z"))
    assert d.time == _epoch("2026-01-01T14:00:00Z") and d.missed == 0 and d.next == _epoch("2026-01-02T14:00:00Z")
    job = job_for(cron, d.time)
    assert job["metadata"]["name"] == f"nightly-{int(d.time // 60)}"
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2026-01-01T09:00:00-05:00"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"]


def test_missed_times_and_the_starting_deadline():
    cron = _cron(schedule="* * * * *", timeZone=None)
    step = plan(cron, [], _epoch("2026-01-01T03:00:30Z"))  # 180 minutes missed
    assert step.create == _epoch("2026-01-01T03:00:00Z")
    assert [e[1] for e in step.events] == ["TooManyMissedTimes"]
    cron["spec"]["startingDeadlineSeconds"] = 10
    step = plan(cron, [], _epoch("2026-01-01T03:00:30Z"))  # only the last 10 s count: nothing due
    assert step.create is None and step.events == []
    step = plan(cron, [], _epoch("2026-01-01T03:00:05Z"))
    assert step.create == _epoch("2026-01-01T03:00:00Z") and step.status["lastScheduleTime"] == "2026-01-01T03:00:00Z"
    # the Job of that time exists already (its status write was lost): none more, the time recorded
    made = _job(f"nightly-{int(_epoch('2026-01-01T03:00:00Z') // 60)}", "Complete")
    step = plan(cron, [made], _epoch("2026-01-01T03:00:05Z"))
    assert step.create is None and step.status["lastScheduleTime"] == "2026-01-01T03:00:00Z"


def test_concurrency_policies_and_history():
    now = _epoch("2026-01-01T01:30:10Z")
    running = _job("running")
    forbid = plan(_cron(schedule="30 * * * *", timeZone=None, concurrencyPolicy="Forbid"), [running], now)
    assert forbid.create is None and [e[1] for e in forbid.events] == ["JobAlreadyActive"]
    assert [r["name"] for r in forbid.status["active"]] == ["running"]
    replace = plan(_cron(schedule="30 * * * *", timeZone=None, concurrencyPolicy="Replace"), [running], now)
    assert replace.create == _epoch("2026-01-01T01:30:00Z") and replace.delete == [running]
    allow = plan(_cron(schedule="30 * * * *", timeZone=None), [running], now)
    assert allow.create is not None and allow.delete == []

    done = [_job(f"ok{i}", "Complete", f"2026-01-01T00:0{i}:00Z") for i in range(5)] + \
        [_job(f"bad{i}", "Failed", f"2026-01-01T00:0{i}:00Z") for i in range(2)]
    step = plan(_cron(suspend=True), done, now)
    assert sorted(j["metadata"]["name"] for j in step.delete) == ["bad0", "ok0", "ok1"]
    assert step.create is None and step.status["lastSuccessfulTime"] == "2026-01-01T00:04:00Z"


# -- against the apiserver, with the clock in the test's hands --------------------------------

class Clock:
    def __init__(self, now: float):
        self._now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def set(self, now: float) -> None:
        with self._lock:
            self._now = now


@pytest.fixture
def clock():
    return Clock(datetime.datetime.now(datetime.timezone.utc).timestamp())


@pytest.fixture
def controller_options(clock):
    return {"clock": clock}


def _tick(client, name, clock, when):
    """Moves the clock and pokes the CronJob (its controller sleeps until the next real-time due)."""
    clock.set(when)
    client.patch(CRON_JOBS, name, {"metadata": {"annotations": {"test/now": str(when)}}}, "default")


def _jobs(client):
    return sorted(j["metadata"]["name"] for j in client.list(JOBS, "default")["items"]
                  if not j["metadata"].get("deletionTimestamp"))


def test_cron_job_runs_on_schedule_in_its_time_zone_forbid_then_replace(env, kubelet, clock):
    c = env.client
    cron = copy.deepcopy(CRON_JOB)
    cron["metadata"]["name"] = "tokyo"
    cron["spec"].update(schedule="0 9 * * *", timeZone="Asia/Tokyo", concurrencyPolicy="Forbid")
    created = c.create(CRON_JOBS, cron)
    born = _epoch(created["metadata"]["creationTimestamp"])
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    nine = datetime.datetime.fromtimestamp(born, tokyo).replace(hour=9, minute=0, second=0, microsecond=0)
    first = (nine if nine.timestamp() > born else nine + datetime.timedelta(days=1)).timestamp()

    _tick(c, "tokyo", clock, first - 60)
    assert _jobs(c) == []
    _tick(c, "tokyo", clock, first + 5)
    c.wait_for(lambda c: _jobs(c) == [f"tokyo-{int(first // 60)}"], timeout=30)
    job = c.get(JOBS, f"tokyo-{int(first // 60)}", "default")
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP].endswith("T09:00:00+09:00")
    status = c.wait_for(lambda c: (c.get(CRON_JOBS, "tokyo", "default").get("status") or {}).get("active")
                        and c.get(CRON_JOBS, "tokyo", "default")["status"], timeout=30)
    assert status["lastScheduleTime"] == datetime.datetime.fromtimestamp(
        first, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    # its pods never finish: the next day, Forbid skips the run
    second = first + 86400
    _tick(c, "tokyo", clock, second + 5)
    c.wait_for(lambda c: any(e["reason"] == "JobAlreadyActive" for e in c.list(EVENTS, "default")["items"]),
               timeout=30)
    assert _jobs(c) == [f"tokyo-{int(first // 60)}"]

    # Replace: the running Job goes and the day's Job takes its place
    c.patch(CRON_JOBS, "tokyo", {"spec": {"concurrencyPolicy": "Replace"}}, "default")
    c.wait_for(lambda c: _jobs(c) == [f"tokyo-{int(second // 60)}"], timeout=30)
    active = c.wait_for(lambda c: [r["name"] for r in (c.get(CRON_JOBS, "tokyo", "default").get("status") or {})
                                   .get("active") or []] == [f"tokyo-{int(second // 60)}"], timeout=30)
    assert active
