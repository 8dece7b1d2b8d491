"""One cycle's fetch: the date window to read, and the unfinished jobs to re-read by sref.

Returns an `Observation` and writes nothing: if any request fails, the whole cycle
fails and the state stays as it was, so API trouble can never cause a false alert.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Container, Mapping
from datetime import datetime, timedelta

import structlog

from watcher.client import ApiError, Client, JobGone
from watcher.models import Job, JobState, Observation, Window
from watcher.paging import Listing, Sink
from watcher.settings import PollSettings
from watcher.settled import ByStatus, with_ended

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
    open_jobs: Mapping[str, JobState], listed: Container[str], now: datetime, poll: PollSettings
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


KnownBetween = Callable[[datetime, datetime], Awaitable[int]]


async def backfill_start(
    follow: list[str],
    open_jobs: Mapping[str, JobState],
    win: Window,
    known_between: KnownBetween,
    page_size: int,
) -> datetime | None:
    """Where to widen the window back to, when listing the jobs started since the oldest
    followed one takes fewer requests than one GET per followed job; else None."""
    starts = [s for sref in follow if (s := open_jobs[sref].started_at) is not None]
    if len(starts) < 2:
        return None
    oldest = min(starts)
    pages = math.ceil((await known_between(oldest, win.start) + 1) / page_size)
    return oldest if pages < len(follow) else None


async def observe(
    client: Client,
    poll: PollSettings,
    watermark: datetime | None,
    open_jobs: Mapping[str, JobState],
    now: datetime,
    settled: ByStatus,
    known_between: KnownBetween | None = None,
    sink: Sink | None = None,
) -> Observation:
    """Read the window and follow unfinished jobs. Ended jobs in `settled` that read the
    same are counted, not parsed.

    Followed jobs are re-read by sref, or, when it is cheaper (`known_between` counts
    the jobs the store knows in a span), by listing the span back to the oldest one.
    The observation names the srefs to stop following: gone from the API, or followed
    for longer than follow_for. A `sink` takes the window's jobs it wants out of the
    observation (the first poll's ended jobs: `staging`).
    """
    win = window(watermark, now, poll)
    if win.bounded:
        log.warning(
            "catch_up_bounded",
            last_poll=watermark.isoformat() if watermark else None,
            reaching_back_to=win.start.isoformat(),
            hint="poll.max_catch_up limits how far back a restart looks",
        )
    requests_before = client.requests
    listing = await client.list_jobs(win.start, win.end, settled, sink=sink)
    follow, unfollow = to_follow(open_jobs, listing.jobs, now, poll)
    for sref in unfollow:
        log.warning(
            "job_follow_abandoned", sref=sref, status=open_jobs[sref].status, hint="poll.follow_for"
        )
    back = (
        await backfill_start(follow, open_jobs, win, known_between, client.page_size)
        if known_between
        else None
    )
    if back is not None:
        extra = await client.list_jobs(back, win.start, with_ended(settled, listing.ended))
        log.info(
            "window_widened", back_to=back.isoformat(), followed=len(follow), pages=extra.pages
        )
        listing = _merged(listing, extra)
        follow = [sref for sref in follow if sref not in listing.jobs]
    reread, gone = await _reread(client, follow, open_jobs)
    listing.jobs.update(reread)
    return Observation(
        window=win,
        jobs=tuple(listing.jobs.values()),
        pages=listing.pages,
        requests=client.requests - requests_before,
        skipped=listing.skipped,
        unchanged=listing.unchanged,
        ended=listing.ended,
        staged=listing.sunk,
        unfollow=(*unfollow, *gone),
    )


def _merged(window: Listing, back: Listing) -> Listing:
    """The window's listing and the listing of the span behind it, as one."""
    jobs = {**back.jobs, **window.jobs}
    return Listing(
        jobs=jobs,
        pages=window.pages + back.pages,
        skipped=window.skipped + back.skipped,
        unchanged=(window.unchanged | back.unchanged) - jobs.keys(),
        ended={**back.ended, **window.ended},
        sunk=window.sunk + back.sunk,
    )


async def _reread(
    client: Client, follow: list[str], open_jobs: Mapping[str, JobState]
) -> tuple[dict[str, Job], list[str]]:
    """Each followed job by its sref: (the jobs read, the srefs the API no longer knows).
    A job whose record is unusable this time is neither."""
    gone: list[str] = []

    async def one(sref: str) -> Job | None:
        try:
            return await client.get_job(sref)
        except JobGone:
            log.warning("job_gone", sref=sref, status=open_jobs[sref].status)
            gone.append(sref)
            return None

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(sref)) for sref in follow]
    except* ApiError as failed:
        raise failed.exceptions[0] from None
    found = (task.result() for task in tasks)
    return {job.sref: job for job in found if job is not None}, gone
