"""One cycle's fetch: the date window to read, and the unfinished jobs to re-read by sref.

Returns an `Observation` and writes nothing: if any request fails, the whole cycle
fails and the state stays as it was, so API trouble can never cause a false alert.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Container, Mapping
from datetime import datetime, timedelta
from typing import Protocol

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


STEP_JOBS = 20_000  # jobs a catch-up step lists at most: a cycle holds its new jobs
STEP_PROBES = 6  # counts asked of the API to place a step's end
MIN_STEP = 60.0  # seconds a step reaches past the last watermark: the next one moves on


def catching_up(win: Window, poll: PollSettings) -> bool:
    """Longer than a steady cycle's window by more than an interval: polls were missed
    (a restart, an outage), and the window may hold more jobs than a cycle should."""
    return (win.end - win.start).total_seconds() > 2 * poll.interval + poll.overlap


class Counter(Protocol):
    async def count_jobs(self, start: datetime, end: datetime) -> int | None: ...


async def stepped(client: Counter, win: Window, since: datetime, poll: PollSettings) -> Window:
    """`win`, or its first step when polls were missed and the API counts more than
    STEP_JOBS jobs started after `since` (the last poll's watermark; the overlap before
    it was listed then): the window up to where about STEP_JOBS have. Each step is a
    cycle of its own, committed, and the next one starts at its end minus the overlap.
    A step reaches MIN_STEP past `since` at least, so that the catch-up always moves on
    (a burst of more jobs than that within it is read whole)."""
    if not catching_up(win, poll):
        return win
    since = max(since, win.start)  # max_catch_up may have cut the window after it
    least = since + timedelta(seconds=MIN_STEP)
    end, total = win.end, await client.count_jobs(since, win.end)
    whole, probes = total, 1
    while total is not None and total > STEP_JOBS and end > least:
        if probes == STEP_PROBES:
            end, total = least, None  # not counted
            break
        # where STEP_JOBS would end if the jobs were spread evenly, a tenth short of it
        share = 0.9 * STEP_JOBS / total
        end = max(least, (since + (end - since) * share).replace(microsecond=0))
        total = await client.count_jobs(since, end)
        probes += 1
    # The shortest step holding as many as the whole window: none started after it (a
    # burst), or the API's count ignores the dates. Steps would gain nothing.
    full = total is not None and whole is not None and total >= whole
    if end >= win.end or (end == least and full):
        return win
    log.info(
        "catch_up_step",
        window_start=win.start.isoformat(),
        step_end=end.isoformat(),
        behind=round((win.end - end).total_seconds()),
        new_jobs=total,
        hint="a catch-up too large for one cycle is read in steps, each committed",
    )
    return Window(start=win.start, end=end, bounded=win.bounded, catching_up=True)


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
    max_pages: int | None = None,
) -> datetime | None:
    """Where to widen the window back to, when listing the jobs started since the oldest
    followed one takes fewer requests than one GET per followed job, and no more than
    `max_pages` pages (a listing past them fails: after a large catch-up, say); else
    None."""
    starts = [s for sref in follow if (s := open_jobs[sref].started_at) is not None]
    if len(starts) < 2:
        return None
    oldest = min(starts)
    pages = math.ceil((await known_between(oldest, win.start) + 1) / page_size)
    fits = max_pages is None or pages <= max_pages
    return oldest if fits and pages < len(follow) else None


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
    if watermark is not None:  # a first poll looks back a set span, and stages its jobs
        win = await stepped(client, win, watermark, poll)
    if win.bounded:
        log.warning(
            "catch_up_bounded",
            last_poll=watermark.isoformat() if watermark else None,
            reaching_back_to=win.start.isoformat(),
            hint="poll.max_catch_up limits how far back a restart looks",
        )
    requests_before = client.requests
    listing = await client.list_jobs(win.start, win.end, settled, sink=sink)
    # A step short of now leaves the jobs followed from before to the last step: they
    # are read once, as they are now.
    follow, unfollow = (
        ([], []) if win.catching_up else to_follow(open_jobs, listing.jobs, now, poll)
    )
    for sref in unfollow:
        log.warning(
            "job_follow_abandoned", sref=sref, status=open_jobs[sref].status, hint="poll.follow_for"
        )
    back = (
        await backfill_start(
            follow, open_jobs, win, known_between, client.page_size, client.max_pages
        )
        if known_between
        else None
    )
    if back is not None:
        # The span behind the window is listed for the followed jobs alone: the others
        # there were listed by the cycles that read it (a catch-up's steps, say), and
        # parsing them all again would hold them all.
        ended = with_ended(settled, listing.ended)
        extra = await client.list_jobs(back, win.start, ended, only=set(follow))
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
