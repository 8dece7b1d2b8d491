"""When the daemon polls: APScheduler 3, with interval jobs held to the monotonic clock.

APScheduler reckons due times by the wall clock, which NTP, a VM resume or a migration
can step; this module owns the scheduler and moves interval jobs with each step, so a
poll comes every interval, measured on the monotonic clock, whatever the wall clock does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED
from apscheduler.triggers.interval import IntervalTrigger

log = structlog.get_logger("watcher.schedule")

POLL = "poll"  # the poll job's id
# Seconds. A change of the wall clock against the monotonic clock beyond this is a step;
# below it, it is NTP slewing (at most 0.5 ms a second), which needs no correction.
STEP_TOLERANCE = 0.5


def clock_offset() -> float:
    """How far the wall clock is ahead of the monotonic clock; only setting the wall
    clock (a step) or slewing it changes this."""
    return time.time() - time.monotonic()


def clock_step(before: float, now: float, tolerance: float = STEP_TOLERANCE) -> float:
    """The seconds by which the wall clock stepped between two `clock_offset()`s
    (negative: back), or 0.0 if it did not."""
    step = now - before
    return step if abs(step) > tolerance else 0.0


def reaimed(next_run: datetime, step: float) -> datetime:
    """The wall-clock time of a run due at `next_run` before the wall clock stepped by
    `step` seconds: the same moment on the monotonic clock, so as long left to wait."""
    return next_run + timedelta(seconds=step)


class MonotonicScheduler(AsyncIOScheduler):  # type: ignore[misc]  # APScheduler 3 has no types
    """An AsyncIOScheduler whose interval jobs keep their interval on the monotonic clock.

    It wakes on asyncio's timers, which run on the monotonic clock, so it wakes when a
    job is due by that clock; then, before it picks the due jobs by the wall clock, it
    moves every interval job's next run by the step the wall clock took since it last
    looked. Cron and date jobs name moments on the wall clock: they are left as they are.
    """

    def __init__(self, offset: Callable[[], float] = clock_offset) -> None:
        super().__init__(timezone=UTC)
        self._clock_offset = offset
        self._offset = offset()

    # APScheduler 3's one place where due jobs are picked and the next wake-up is set
    # (pyproject keeps APScheduler below 4, whose scheduler is another design).
    def _process_jobs(self) -> float | None:
        if self.state == STATE_PAUSED:  # a step while paused is applied on resume
            return None
        self._follow_step()
        wait: float | None = super()._process_jobs()
        if clock_step(self._offset, self._clock_offset()):
            # A step while the jobs were looked at made this wait wrong: look again now.
            return 0.0
        return wait

    def _follow_step(self) -> None:
        offset = self._clock_offset()
        step = clock_step(self._offset, offset)
        self._offset = offset
        if step:
            moved = self._move_interval_jobs(step)
            log.warning("clock_step", seconds=round(step, 3), jobs_moved=moved)

    def _move_interval_jobs(self, step: float) -> list[str]:
        moved: list[str] = []
        for job in self.get_jobs():
            if isinstance(job.trigger, IntervalTrigger) and job.next_run_time is not None:
                self.modify_job(job.id, next_run_time=reaimed(job.next_run_time, step))
                moved.append(str(job.id))
        return moved


class PollSchedule:
    """The poll job: the first run at once, then one every `interval` seconds; never two
    at a time, and a late run still runs, once."""

    def __init__(self, poll: Callable[[], Awaitable[None]], interval: float) -> None:
        self.scheduler = MonotonicScheduler()
        self.scheduler.add_job(
            poll,
            "interval",
            seconds=interval,
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,  # runs missed while a cycle ran long make one run, not a burst
            # No grace limit: the executor measures lateness by the wall clock, where a
            # step forward would look like a miss and the poll would be skipped.
            misfire_grace_time=None,
            id=POLL,
        )

    def start(self) -> None:
        """Start polling; call inside the running event loop."""
        self.scheduler.start()

    def set_interval(self, interval: float) -> None:
        """Poll every `interval` seconds from now on; the next poll is one interval away."""
        self.scheduler.reschedule_job(POLL, trigger="interval", seconds=interval)

    def pause(self) -> None:
        """No new poll starts; the one in flight goes on."""
        self.scheduler.pause()

    async def shutdown(self) -> None:
        """Stop the scheduler. Call it once the poll in flight has ended or been given up:
        the asyncio executor cancels running jobs, whatever `wait` says."""
        self.scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a callback on the loop
