"""engine/schedules.py: cron expressions with seconds and time zones, targets, due ticks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reprise.engine import schedules as spec


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_a_zone_keeps_local_time_across_daylight_saving() -> None:
    winter = spec.next_tick("0 9 * * *", "Europe/Paris", ms("2026-01-10T00:00:00"))
    summer = spec.next_tick("0 9 * * *", "Europe/Paris", ms("2026-07-10T00:00:00"))
    assert (winter, summer) == (ms("2026-01-10T08:00:00"), ms("2026-07-10T07:00:00"))


def test_a_leading_seconds_field_and_ticks_strictly_after() -> None:
    t0 = ms("2026-01-01T00:00:00")
    assert spec.ticks_after("*/2 * * * * *", "UTC", t0, 3) == [t0 + 2_000, t0 + 4_000, t0 + 6_000]
    assert spec.next_tick("* * * * *", "UTC", t0) == t0 + 60_000  # five fields: minutes


def test_due_ticks_are_bounded_to_the_newest() -> None:
    t0 = ms("2026-01-01T00:00:00")
    due, truncated = spec.due_ticks("* * * * * *", "UTC", t0, t0 + 9_500, 4)
    assert (due, truncated) == ([t0 + 6_000, t0 + 7_000, t0 + 8_000, t0 + 9_000], True)
    assert spec.due_ticks("* * * * * *", "UTC", t0, t0 + 2_000, 4) == ([t0, t0 + 1_000, t0 + 2_000], False)


@pytest.mark.parametrize("bad", ["", "x", "61 * * * *", "* * * * * * *", "0 0 30 2 *", "0 0 29 2 *", "*" * 300])
def test_bad_expressions_are_refused(bad: str) -> None:
    with pytest.raises(spec.ScheduleError):
        spec.check_cron(bad, "UTC", ms("2026-03-01T00:00:00"))


@pytest.mark.parametrize("zone", ["", "Mars/Olympus", "../../etc/passwd", "/etc/localtime", "x" * 100])
def test_unknown_zones_are_refused(zone: str) -> None:
    with pytest.raises(spec.ScheduleError):
        spec.zone(zone)


def test_targets() -> None:
    assert spec.parse_target("Svc/h") == spec.Target("Svc", None, "h")
    assert spec.parse_target("Wf/daily/run") == spec.Target("Wf", "daily", "run")
    for bad in ("Svc", "/h", "Svc/", "Obj//h"):
        with pytest.raises(spec.ScheduleError):
            spec.parse_target(bad)
    for bad in ("", "a b", "../x", "-x", "x" * 129):
        with pytest.raises(spec.ScheduleError):
            spec.check_id(bad)
