"""The EndpointSlice controller's trigger times (KEP-3453), pure parts with an injected clock."""
from __future__ import annotations

from kproxy.agent.translate import trigger_time
from kproxy.api.meta import TRIGGER_TIME_ANNOTATION
from kproxy.controllers.triggertime import TriggerTimes, annotate, format_trigger_time


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_the_earliest_unconsumed_change_is_the_trigger():
    clock = Clock(100.0)
    times = TriggerTimes(clock)
    times.changed("ns/a")
    clock.t = 105.0
    times.changed("ns/a")  # a later change of the same Service keeps the earlier time
    times.changed("ns/b")
    assert times.take("ns/a") == 100.0
    assert times.take("ns/a") is None  # consumed by the write that carried it
    assert times.take("ns/b") == 105.0


def test_a_failed_write_gives_its_time_back_and_keeps_the_earliest():
    clock = Clock(10.0)
    times = TriggerTimes(clock)
    times.changed("k")
    taken = times.take("k")
    clock.t = 12.0
    times.changed("k")  # arrived while the write was failing
    times.give_back("k", taken)
    assert times.take("k") == 10.0
    times.give_back("k", None)
    assert times.take("k") is None


def test_annotation_round_trips_through_the_agents_parser_with_microseconds():
    t = 1_800_000_000.123456
    slices = [{"metadata": {"name": "s1"}}, {"metadata": {"name": "s2", "annotations": {"keep": "me"}}}]
    annotate(slices, t)
    assert format_trigger_time(t) == "2027-01-15T08:00:00.123456Z"
    for s in slices:
        assert abs(trigger_time(s) - t) < 1e-6
    assert slices[1]["metadata"]["annotations"]["keep"] == "me"


def test_no_trigger_removes_a_stale_annotation_as_upstream():
    slices = [{"metadata": {"annotations": {TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:00Z", "x": "y"}}},
              {"metadata": {"annotations": {TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:00Z"}}}]
    annotate(slices, None)
    assert slices[0]["metadata"]["annotations"] == {"x": "y"}
    assert "annotations" not in slices[1]["metadata"]
