"""`missed` on a cron `schedule` end to end: simulator -> daemon -> webhook on a clock the
test moves, across weekends and the DST changes of Europe/London and America/New_York.

Each alert's title carries the minutes since the scheduled time it missed, so a title
also says which scheduled time (in UTC) the watcher computed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Hook
from tests.pipeline.test_events import Clock, Harness, clock, harness, timed

__all__ = ["clock", "timed"]  # the fixtures, shared with test_events
from watcher.simulator.runner import SimulatorHandle

TEMPLATE = "jobTemplates/6789"
NIGHTLY = {"template": TEMPLATE, "name": "Nightly checkout", "run_type": "scheduled"}
WEEKDAYS_AT_2 = "0 2 * * 1-5"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]  # year, month, day, ...


def rule(schedule: str = WEEKDAYS_AT_2, timezone: str = "Europe/London") -> dict[str, Any]:
    return {
        "name": "nightly-missing",
        "match": {
            "event": "missed",
            "template": TEMPLATE,
            "schedule": schedule,
            "timezone": timezone,
            "grace": "45m",
        },
        "notify": ["hook"],
        "title": "missed {{ (event.stuck_for // 60) | int }}m",
    }


async def started(
    timed: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook, at: datetime, **kw: Any
) -> Harness:
    """A watcher whose first cycle (when watching begins) is at `at`."""
    clock.now = at
    h = harness(timed, tmp_path, clock, {"hook": hook.url}, [rule(**kw)])
    await h.cycle()
    return h


async def until(
    h: Harness, clock: Clock, end: datetime, step: timedelta, starts: Sequence[datetime] = ()
) -> None:
    """A cycle every `step` up to and including `end`: a daemon polling through it. A job
    of the template starts at each of `starts` (it appears in the simulator then, not
    before: a start seen ahead of its time would count early)."""
    waiting = sorted(starts)
    while clock.now + step <= end:
        clock.advance(seconds=step.total_seconds())
        while waiting and waiting[0] <= clock.now:
            h.world.add_job(status="running", started_at=waiting.pop(0), **NIGHTLY)
        await h.cycle()
    assert waiting == [], "a start after the end"


QUARTER = timedelta(minutes=15)


async def test_a_weekday_schedule_fires_once_when_its_run_does_not_start(
    timed: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook
) -> None:
    """June (BST, UTC+1): Monday's 02:00 run starts (no alert); Tuesday's does not (one
    alert at 02:45 local, 01:45 UTC, none repeated, a restart included); Wednesday to
    Friday run; the weekend, with no run, fires nothing."""
    h = await started(timed, tmp_path, clock, hook, utc(2026, 5, 31, 20))  # Sunday evening
    monday = utc(2026, 6, 1, 1, 5)  # 02:05 BST
    await until(h, clock, utc(2026, 6, 2, 1, 30), QUARTER, [monday])
    assert hook.received == []
    await until(h, clock, utc(2026, 6, 2, 1, 45), QUARTER)  # Tuesday 02:45 BST: no start
    assert hook.titles() == ["missed 45m"]
    await h.restart()
    await until(h, clock, utc(2026, 6, 3, 0), QUARTER)
    assert hook.titles() == ["missed 45m"]
    for day in (3, 4, 5):  # Wednesday to Friday, each at 02:01 BST
        await until(h, clock, utc(2026, 6, day + 1, 0), QUARTER, [utc(2026, 6, day, 1, 1)])
    await until(h, clock, utc(2026, 6, 8, 0, 30), timedelta(minutes=30))  # the weekend
    await h.close()
    assert hook.titles() == ["missed 45m"]


async def test_a_run_that_starts_late_within_grace_or_a_little_early_counts(
    timed: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook
) -> None:
    """02:40 (within grace) and 01:50 (early, closer to 02:00 than to the day before)
    both count for their 02:00; 02:50 seen after 02:45 comes too late for Thursday."""
    h = await started(timed, tmp_path, clock, hook, utc(2026, 6, 1, 0))  # Monday 01:00 BST
    monday = utc(2026, 6, 1, 1, 40)  # 02:40 BST
    tuesday = utc(2026, 6, 2, 0, 50)  # 01:50 BST
    wednesday = utc(2026, 6, 3, 1)  # 02:00 BST
    await until(h, clock, utc(2026, 6, 4, 1, 30), QUARTER, [monday, tuesday, wednesday])
    assert hook.received == []
    thursday = utc(2026, 6, 4, 1, 50)  # 02:50 BST: after the alert at 02:45
    await until(h, clock, utc(2026, 6, 4, 4), QUARTER, [thursday])
    await h.close()
    assert hook.titles() == ["missed 45m"]


@pytest.mark.parametrize(
    ("watch_from", "friday_start", "monday_slot"),
    [
        # London springs forward on Sunday 29 March 2026 (01:00 GMT -> 02:00 BST):
        # Friday's 02:00 is 02:00 UTC, Monday's is 01:00 UTC
        (utc(2026, 3, 26, 22), utc(2026, 3, 27, 2, 10), utc(2026, 3, 30, 1)),
        # and falls back on Sunday 25 October (02:00 BST -> 01:00 GMT): Friday's 02:00
        # is 01:00 UTC, Monday's 02:00 UTC
        (utc(2026, 10, 22, 22), utc(2026, 10, 23, 1, 10), utc(2026, 10, 26, 2)),
    ],
    ids=["spring-forward", "fall-back"],
)
async def test_london_weekdays_across_a_dst_change(
    timed: SimulatorHandle,
    tmp_path: Path,
    clock: Clock,
    hook: Hook,
    watch_from: datetime,
    friday_start: datetime,
    monday_slot: datetime,
) -> None:
    """Friday's run starts at 02:10 local; nothing over the weekend of the change; Monday's
    02:00 local (the other UTC offset) does not start: one alert, 45 minutes after it."""
    h = await started(timed, tmp_path, clock, hook, watch_from)
    await until(h, clock, monday_slot + timedelta(minutes=30), QUARTER, [friday_start])
    assert hook.received == []  # the weekend, and Monday before 02:45 local
    await until(h, clock, monday_slot + timedelta(hours=3), QUARTER)
    await h.close()
    assert hook.titles() == ["missed 45m"]


@pytest.mark.parametrize(
    ("monday_slot", "start", "alerts"),
    [
        # BST now: 02:05 local is 01:05 UTC; 02:05 UTC is 03:05 BST, after 02:45
        (utc(2026, 3, 30, 1), utc(2026, 3, 30, 1, 5), []),
        (utc(2026, 3, 30, 1), utc(2026, 3, 30, 2, 5), ["missed 45m"]),
        # GMT now: 02:05 local is 02:05 UTC; 01:05 UTC is 55 minutes early (45 count)
        (utc(2026, 10, 26, 2), utc(2026, 10, 26, 2, 5), []),
        (utc(2026, 10, 26, 2), utc(2026, 10, 26, 1, 5), ["missed 45m"]),
    ],
    ids=["spring-on-time", "spring-hour-off", "fall-on-time", "fall-hour-off"],
)
async def test_london_monday_after_a_change_runs_at_two_local(
    timed: SimulatorHandle,
    tmp_path: Path,
    clock: Clock,
    hook: Hook,
    monday_slot: datetime,
    start: datetime,
    alerts: list[str],
) -> None:
    """A start at 02:05 local on the Monday after a change is Monday's run; a start at
    02:05 of the offset before the change is an hour off, and Monday's run is missed."""
    h = await started(timed, tmp_path, clock, hook, monday_slot - timedelta(hours=6))
    await until(h, clock, monday_slot + timedelta(hours=3), QUARTER, [start])
    await h.close()
    assert hook.titles() == alerts


@pytest.mark.parametrize(
    ("schedule", "watch_from", "slot", "start"),
    [
        # New York springs forward on Sunday 8 March 2026 (02:00 EST -> 03:00 EDT): 02:30
        # does not exist that day; it is scheduled with the offset before, 07:30 UTC
        ("30 2 * * *", utc(2026, 3, 8, 0), utc(2026, 3, 8, 7, 30), None),
        # weekdays at 02:00: Friday 6 March 07:00 UTC (EST), Monday 9 March 06:00 (EDT)
        (WEEKDAYS_AT_2, utc(2026, 3, 6, 6), utc(2026, 3, 9, 6), utc(2026, 3, 6, 7, 5)),
        # and falls back on Sunday 1 November (02:00 EDT -> 01:00 EST): Friday 30 October
        # 06:00 UTC (EDT), Monday 2 November 07:00 UTC (EST)
        (WEEKDAYS_AT_2, utc(2026, 10, 30, 5), utc(2026, 11, 2, 7), utc(2026, 10, 30, 6, 5)),
    ],
    ids=["skipped-0230", "weekdays-spring", "weekdays-fall"],
)
async def test_new_york_across_a_dst_change(
    timed: SimulatorHandle,
    tmp_path: Path,
    clock: Clock,
    hook: Hook,
    schedule: str,
    watch_from: datetime,
    slot: datetime,
    start: datetime | None,
) -> None:
    """The one missed run is alerted 45 minutes after its scheduled time in UTC, once."""
    h = await started(
        timed, tmp_path, clock, hook, watch_from, schedule=schedule, timezone="America/New_York"
    )
    await until(h, clock, slot + timedelta(minutes=30), QUARTER, [start] if start else [])
    assert hook.received == []
    await until(h, clock, slot + timedelta(hours=2), QUARTER)
    await h.close()
    assert hook.titles() == ["missed 45m"]


async def test_new_york_a_time_repeated_by_the_fall_back_is_one_scheduled_time(
    timed: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook
) -> None:
    """Daily 01:30 on Sunday 1 November: 01:30 EDT (05:30 UTC) and 01:30 EST (06:30 UTC)
    are the same wall time; the run at 05:35 UTC is that day's run, no alert at 07:15."""
    h = await started(
        timed,
        tmp_path,
        clock,
        hook,
        utc(2026, 11, 1, 3),
        schedule="30 1 * * *",
        timezone="America/New_York",
    )
    await until(h, clock, utc(2026, 11, 2, 5), QUARTER, [utc(2026, 11, 1, 5, 35)])
    await h.close()
    assert hook.received == []
