"""The poll's timetable: what counts as a step of the wall clock, where a run due before
a step falls after it, which jobs the scheduler moves, and the poll schedule's API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.proc import eventually
from watcher.schedule import (
    STEP_TOLERANCE,
    MonotonicScheduler,
    PollSchedule,
    clock_step,
    reaimed,
)

WALL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "now", "step"),
    [
        (1000.0, 1000.0, 0.0),
        (1000.0, 1000.0 + STEP_TOLERANCE, 0.0),  # slewing, or the two reads a moment apart
        (1000.0, 1000.0 - STEP_TOLERANCE, 0.0),
        (1000.0, 400.0, -600.0),  # back 10 minutes
        (1000.0, 11800.0, 10800.0),  # forward 3 hours
    ],
)
def test_a_step_is_a_change_of_the_offset_beyond_the_tolerance(
    before: float, now: float, step: float
) -> None:
    assert clock_step(before, now) == step


@pytest.mark.parametrize("step", [-600.0, -0.75, 0.0, 0.75, 10800.0])
def test_a_reaimed_run_is_as_far_away_by_the_stepped_clock_as_it_was(step: float) -> None:
    """Due 0.7 s from now by the wall clock; 0.2 s later the clock steps by `step`: the
    run is then due 0.5 s from now by the stepped clock, as the monotonic clock says."""
    next_run = WALL + timedelta(seconds=0.7)
    later = WALL + timedelta(seconds=0.2 + step)
    assert reaimed(next_run, step) - later == timedelta(seconds=0.5)


class Offsets:
    """The wall clock's offset from the monotonic clock, as the test steps it."""

    def __init__(self) -> None:
        self.value = 5000.0

    def __call__(self) -> float:
        return self.value


async def nothing() -> None:
    return None


async def settle() -> None:
    """Let the scheduler's wake-ups, queued on the loop, run."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
async def scheduler() -> AsyncIterator[tuple[MonotonicScheduler, Offsets]]:
    offsets = Offsets()
    sched = MonotonicScheduler(offset=offsets)
    soon = datetime.now(UTC) + timedelta(hours=1)  # far enough never to run in a test
    sched.add_job(nothing, "interval", hours=2, next_run_time=soon, id="every")
    sched.add_job(nothing, "cron", hour=3, id="at-three")
    sched.start()
    yield sched, offsets
    sched.shutdown(wait=False)
    await settle()


def next_runs(sched: MonotonicScheduler) -> dict[str, datetime]:
    return {job.id: job.next_run_time for job in sched.get_jobs()}


@pytest.mark.parametrize("step", [-600.0, 10800.0])
async def test_a_step_moves_interval_jobs_by_it_and_leaves_cron_jobs(
    scheduler: tuple[MonotonicScheduler, Offsets], step: float
) -> None:
    sched, offsets = scheduler
    before = next_runs(sched)
    offsets.value += step
    sched.wakeup()
    await settle()
    after = next_runs(sched)
    assert after["every"] - before["every"] == timedelta(seconds=step)
    assert after["at-three"] == before["at-three"]  # a cron time is a wall-clock time


async def test_drift_within_the_tolerance_moves_nothing(
    scheduler: tuple[MonotonicScheduler, Offsets],
) -> None:
    sched, offsets = scheduler
    before = next_runs(sched)
    offsets.value += STEP_TOLERANCE / 2
    sched.wakeup()
    await settle()
    assert next_runs(sched) == before


async def test_a_step_while_paused_is_applied_on_resume(
    scheduler: tuple[MonotonicScheduler, Offsets],
) -> None:
    sched, offsets = scheduler
    before = next_runs(sched)["every"]
    sched.pause()
    offsets.value -= 600
    sched.wakeup()
    await settle()
    assert next_runs(sched)["every"] == before
    sched.resume()
    await settle()
    assert next_runs(sched)["every"] == before - timedelta(minutes=10)


async def test_the_poll_schedule_polls_at_once_changes_interval_pauses_and_shuts_down() -> None:
    polls: list[int] = []

    async def poll() -> None:
        polls.append(len(polls))

    schedule = PollSchedule(poll, interval=0.05)
    schedule.start()
    await eventually(lambda: len(polls) >= 3, 10, "polls every 0.05 s")
    schedule.set_interval(0.02)
    seen = len(polls)
    await eventually(lambda: len(polls) >= seen + 3, 10, "polls every 0.02 s")
    schedule.pause()
    await settle()
    paused = len(polls)
    await asyncio.sleep(0.2)  # ten intervals: a running schedule would have polled
    assert len(polls) == paused
    await schedule.shutdown()
    assert not schedule.scheduler.running
