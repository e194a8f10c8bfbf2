"""BoundedFrequencyRunner with short real intervals: only counts and ordering are asserted, and
every wait is a bounded poll."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from kproxy.agent.runner import BoundedFrequencyRunner

# The recorder reads the clock a few statements after the runner did; allow for the thread
# being preempted in between. Lower bounds only: no upper time bound is ever asserted.
SLACK = 0.05


class Recorder:
    def __init__(self, fail_times: int = 0, hold: float = 0.0):
        self.calls: list[tuple[float, bool]] = []
        self.fail_times = fail_times
        self.hold = hold
        self.running = 0
        self.max_running = 0

    async def __call__(self, full: bool) -> None:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            self.calls.append((asyncio.get_running_loop().time(), full))
            if self.hold:
                await asyncio.sleep(self.hold)
            if len(self.calls) <= self.fail_times:
                raise RuntimeError("apply failed")
        finally:
            self.running -= 1


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(runner):
    task = asyncio.create_task(runner.loop())
    try:
        yield task
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)


def test_bad_intervals():
    with pytest.raises(ValueError):
        BoundedFrequencyRunner(Recorder(), 2.0, 1.0)
    with pytest.raises(ValueError):
        BoundedFrequencyRunner(Recorder(), 0.0, 0.0)


async def _coalescing():
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.3, max_interval=1000)
    async with running(runner):
        runner.run()
        await wait_for(lambda: len(rec.calls) == 1)
        for _ in range(50):  # a burst during the min interval becomes one sync
            runner.run()
            await asyncio.sleep(0)
        await wait_for(lambda: len(rec.calls) == 2)
        # nothing else is pending: poll a while and check no further sync happened
        await asyncio.sleep(0.6)
    assert len(rec.calls) == 2
    assert rec.calls[1][0] - rec.calls[0][0] >= 0.3 - SLACK
    assert [full for _, full in rec.calls] == [False, False]


def test_coalescing_and_min_interval():
    asyncio.run(_coalescing())


async def _no_overlap():
    rec = Recorder(hold=0.2)
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=1000)
    async with running(runner):
        runner.run()
        await wait_for(lambda: rec.running == 1)
        for _ in range(10):  # requests during a running sync: one more sync after it
            runner.run()
        await wait_for(lambda: len(rec.calls) == 2 and rec.running == 0)
        await asyncio.sleep(0.3)
    assert len(rec.calls) == 2
    assert rec.max_running == 1


def test_requests_during_sync_coalesce_without_overlap():
    asyncio.run(_no_overlap())


async def _periodic():
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=0.2)
    async with running(runner):
        await wait_for(lambda: len(rec.calls) >= 3)
    assert all(full for _, full in rec.calls)
    starts = [t for t, _ in rec.calls]
    assert all(b - a >= 0.2 - SLACK for a, b in zip(starts, starts[1:]))


def test_periodic_sync_is_full():
    asyncio.run(_periodic())


async def _explicit_full():
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=1000)
    async with running(runner):
        runner.run()
        runner.run(full=True)
        await wait_for(lambda: len(rec.calls) == 1)
        runner.run()
        await wait_for(lambda: len(rec.calls) == 2)
    assert [full for _, full in rec.calls] == [True, False]


def test_full_request_sticks_until_served():
    asyncio.run(_explicit_full())


async def _retry():
    rec = Recorder(fail_times=2)
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=1000, retry_initial=0.2)
    async with running(runner):
        runner.run(full=True)
        await wait_for(lambda: len(rec.calls) == 3)  # two failures, then success, no new request
        assert runner.failures == 0
        await asyncio.sleep(0.3)
    assert len(rec.calls) == 3
    assert all(full for _, full in rec.calls)  # a failed full sync is retried as full
    starts = [t for t, _ in rec.calls]
    assert starts[1] - starts[0] >= runner.backoff(1) - SLACK
    assert starts[2] - starts[1] >= runner.backoff(2) - SLACK


def test_failure_is_retried_with_backoff():
    asyncio.run(_retry())


def test_backoff_doubles_up_to_max_interval():
    runner = BoundedFrequencyRunner(Recorder(), min_interval=1.0, max_interval=30.0)
    assert [runner.backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


async def _partials_do_not_postpone_full():
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=0.3)

    async def keep_requesting():
        while True:
            runner.run()
            await asyncio.sleep(0.02)

    async with running(runner):
        feeder = asyncio.create_task(keep_requesting())
        try:
            await wait_for(lambda: sum(full for _, full in rec.calls) >= 3)
        finally:
            feeder.cancel()
    assert any(not full for _, full in rec.calls)
    fulls = [t for t, full in rec.calls if full]
    assert all(b - a >= 0.3 - SLACK for a, b in zip(fulls, fulls[1:]))


def test_partial_syncs_do_not_postpone_the_periodic_full_sync():
    asyncio.run(_partials_do_not_postpone_full())


async def _requests_wait_for_the_retry():
    rec = Recorder(fail_times=2)
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=5.0, retry_initial=0.2)

    async def keep_requesting():
        while True:
            runner.run()
            await asyncio.sleep(0.01)

    async with running(runner):
        runner.run(full=True)
        feeder = asyncio.create_task(keep_requesting())
        try:
            await wait_for(lambda: len(rec.calls) >= 3)
        finally:
            feeder.cancel()
    starts = [t for t, _ in rec.calls]
    # a stream of requests does not bypass the backoff after a failure (min_interval is 0 here)
    assert starts[1] - starts[0] >= runner.backoff(1) - SLACK
    assert starts[2] - starts[1] >= runner.backoff(2) - SLACK


def test_requests_during_backoff_wait_for_the_retry():
    asyncio.run(_requests_wait_for_the_retry())


async def _failing_periodic_sync_backs_off():
    rec = Recorder(fail_times=1000)  # every sync fails, e.g. the kernel refuses the batch
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=0.2, retry_initial=0.1)
    async with running(runner):
        await wait_for(lambda: len(rec.calls) >= 4)
    starts = [t for t, _ in rec.calls]
    # the first periodic sync failed; its retries follow the backoff, not the overdue period
    # (seen in a lab: thousands of retries a minute once the periodic full sync was overdue)
    assert all(b - a >= runner.backoff(i + 1) - SLACK for i, (a, b) in enumerate(zip(starts, starts[1:])))
    assert all(full for _, full in rec.calls)


def test_a_failing_periodic_full_sync_is_retried_with_backoff():
    asyncio.run(_failing_periodic_sync_backs_off())


class Check:
    """A drift check whose verdicts come from a list (then False); counts its calls."""

    def __init__(self, verdicts=(), error: bool = False):
        self.verdicts = list(verdicts)
        self.error = error
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        if self.error:
            raise RuntimeError("iptables -S failed")
        return self.verdicts.pop(0) if self.verdicts else False


async def _check_between_full_syncs():
    rec, check = Recorder(), Check(verdicts=[False, True])
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=0.2, full_interval=1000, check=check)
    async with running(runner):
        runner.run(full=True)
        await wait_for(lambda: len(rec.calls) >= 4)
    # the first sync was asked full; periodic syncs ask the check; only its True makes one full
    assert [full for _, full in rec.calls[:4]] == [True, False, True, False]
    assert check.calls >= 3
    starts = [t for t, _ in rec.calls]
    assert all(b - a >= 0.2 - SLACK for a, b in zip(starts, starts[1:]))


def test_periodic_syncs_between_full_ones_ask_the_drift_check():
    asyncio.run(_check_between_full_syncs())


async def _failing_check_means_full():
    rec, check = Recorder(), Check(error=True)
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=0.2, full_interval=1000, check=check)
    async with running(runner):
        await wait_for(lambda: len(rec.calls) >= 2)
    assert all(full for _, full in rec.calls)


def test_a_failing_drift_check_makes_the_sync_full():
    asyncio.run(_failing_check_means_full())


async def _full_interval_without_check():
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=0.1, full_interval=0.35)
    async with running(runner):
        await wait_for(lambda: sum(full for _, full in rec.calls) >= 2)
    fulls = [t for t, full in rec.calls if full]
    assert any(not full for _, full in rec.calls)  # periodic syncs in between are partial
    assert fulls[1] - fulls[0] >= 0.35 - SLACK


def test_full_syncs_follow_the_full_interval():
    asyncio.run(_full_interval_without_check())


def test_full_interval_shorter_than_max_interval_is_refused():
    with pytest.raises(ValueError):
        BoundedFrequencyRunner(Recorder(), 0.0, 2.0, full_interval=1.0)


async def _change_after_a_long_full_sync():
    rec, check = Recorder(hold=0.4), Check()
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=0.1, full_interval=1000, check=check)
    async with running(runner):
        runner.run(full=True)
        await wait_for(lambda: len(rec.calls) == 1)
        runner.run()  # a change while the full sync (longer than max_interval) runs
        await wait_for(lambda: len(rec.calls) >= 2)
    # the change goes in a partial sync right after the one full sync, not behind another
    # full one (the periodic sync fell due meanwhile: it only asked the check)
    assert [full for _, full in rec.calls[:2]] == [True, False]


def test_a_change_waits_for_at_most_the_one_full_sync_in_progress():
    asyncio.run(_change_after_a_long_full_sync())


async def _change_right_after_a_periodic_sync():
    # Periodic syncs ask the drift check, request-driven ones do not: that tells them apart
    # without timing. Before the fix the change waited min_interval (= max_interval) and was
    # folded into the next periodic sync, which asks the check.
    rec, check = Recorder(), Check()
    runner = BoundedFrequencyRunner(rec, min_interval=3.0, max_interval=3.0, full_interval=1000, check=check)
    async with running(runner):
        await wait_for(lambda: len(rec.calls) == 1)  # the first periodic sync, no request pending
        assert check.calls == 1
        runner.run()  # a change right after it
        await wait_for(lambda: len(rec.calls) == 2)
        assert check.calls == 1  # served by its own sync, not by the next periodic one


def test_a_periodic_sync_does_not_make_the_next_change_wait_min_interval():
    asyncio.run(_change_right_after_a_periodic_sync())
