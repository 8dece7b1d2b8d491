"""One cycle's fetch: the date window to read, and the unfinished jobs to re-read by sref.

Returns an `Observation` and writes nothing: if any request fails, the whole cycle
fails and the state stays as it was, so API trouble can never cause a false alert.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta

import structlog

from watcher.client import ApiError, Client, JobGone
from watcher.models import Job, JobState, Observation, Window
from watcher.settings import PollSettings

log = structlog.get_logger("watcher.poller")


def window(watermark: datetime | None, now: datetime, poll: PollSettings) -> Window:
    """From the last successful poll minus overlap (first ever: lookback) to now,
    reaching back no further than max_catch_up."""
    if watermark is None:
        start = now - timedelta(seconds=poll.lookback)
    else:
        start = min(watermark, now) - timedelta(seconds=poll.overlap)
    earliest = now - timedelta(seconds=poll.max_catch_up)
    if start < earliest:
        return Window(start=earliest, end=now, bounded=True)
    return Window(start=start, end=now)


def to_follow(
    open_jobs: Mapping[str, JobState], listed: set[str], now: datetime, poll: PollSettings
) -> tuple[list[str], list[str]]:
    """(srefs to re-read, srefs to stop following) among jobs last seen unfinished."""
    follow: list[str] = []
    abandon: list[str] = []
    limit = timedelta(seconds=poll.follow_for)
    for sref, state in open_jobs.items():
        if sref in listed:
            continue
        since = state.started_at or state.first_seen
        (abandon if now - since > limit else follow).append(sref)
    return follow, abandon


async def observe(
    client: Client,
    poll: PollSettings,
    watermark: datetime | None,
    open_jobs: Mapping[str, JobState],
    now: datetime,
) -> tuple[Observation, list[str]]:
    """Read the window and follow unfinished jobs; return the observation and the
    srefs to stop following (gone from the API, or followed for longer than follow_for)."""
    win = window(watermark, now, poll)
    if win.bounded:
        log.warning(
            "catch_up_bounded",
            last_poll=watermark.isoformat() if watermark else None,
            reaching_back_to=win.start.isoformat(),
            hint="poll.max_catch_up limits how far back a restart looks",
        )
    requests_before = client.requests
    listing = await client.list_jobs(win.start, win.end)
    jobs = {job.sref: job for job in listing.jobs}
    follow, unfollow = to_follow(open_jobs, set(jobs), now, poll)
    for sref in unfollow:
        log.warning(
            "job_follow_abandoned", sref=sref, status=open_jobs[sref].status, hint="poll.follow_for"
        )
    gone: list[str] = []

    async def reread(sref: str) -> Job | None:
        try:
            return await client.get_job(sref)
        except JobGone:
            log.warning("job_gone", sref=sref, status=open_jobs[sref].status)
            gone.append(sref)
            return None

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(reread(sref)) for sref in follow]
    except* ApiError as failed:
        raise failed.exceptions[0] from None
    for task in tasks:
        job = task.result()
        if job is not None:
            jobs[job.sref] = job
    observation = Observation(
        window=win,
        jobs=tuple(jobs.values()),
        gone=tuple(gone),
        pages=listing.pages,
        requests=client.requests - requests_before,
        skipped=listing.skipped,
    )
    return observation, unfollow + gone
