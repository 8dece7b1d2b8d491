"""The poller's pure parts: the window to read, the jobs to follow, when to widen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher import poller
from watcher.models import JobState, Window
from watcher.poller import backfill_start, to_follow, window
from watcher.settings import PollSettings

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
POLL = PollSettings(lookback=3600, overlap=120, max_catch_up=86400, follow_for=7200)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("watermark", "expected"),
    [
        (None, Window(NOW - H, NOW)),  # first poll ever: lookback
        (NOW - timedelta(minutes=1), Window(NOW - timedelta(minutes=3), NOW)),  # overlap
        (NOW - 30 * H, Window(NOW - 24 * H, NOW, bounded=True)),  # max_catch_up
        (NOW + H, Window(NOW - timedelta(minutes=2), NOW)),  # a watermark from the future
    ],
    ids=["first", "overlap", "bounded", "future-watermark"],
)
def test_window(watermark: datetime | None, expected: Window) -> None:
    """From the last poll minus overlap (first: lookback) to now, at most max_catch_up."""
    assert window(watermark, NOW, POLL) == expected


def state(sref: str, started: datetime | None, first_seen: datetime = NOW) -> JobState:
    return JobState(
        sref=sref,
        status="running",
        status_since=first_seen,
        first_seen=first_seen,
        started_at=started,
    )


def test_to_follow_rereads_unlisted_jobs_and_abandons_old_ones() -> None:
    """A listed job needs no re-read; one older than follow_for is given up."""
    open_jobs = {
        "jobs/1": state("jobs/1", NOW - H),
        "jobs/2": state("jobs/2", NOW - 3 * H),
        "jobs/3": state("jobs/3", NOW - H),
        "jobs/4": state("jobs/4", None, first_seen=NOW - 3 * H),  # no start: first seen
    }
    follow, abandon = to_follow(open_jobs, {"jobs/3"}, NOW, POLL)
    assert (follow, sorted(abandon)) == (["jobs/1"], ["jobs/2", "jobs/4"])


def counting(n: int) -> poller.KnownBetween:
    async def known_between(_start: datetime, _end: datetime) -> int:
        return n

    return known_between


async def test_backfill_widens_when_listing_takes_fewer_requests() -> None:
    """Three followed jobs, a span of 50 known jobs: one page (100 a page) beats 3 GETs."""
    open_jobs = {f"jobs/{n}": state(f"jobs/{n}", NOW - (n + 2) * H) for n in range(3)}
    win = Window(NOW - H, NOW)
    spans: list[tuple[datetime, datetime]] = []

    async def known_between(start: datetime, end: datetime) -> int:
        spans.append((start, end))
        return 50

    oldest = NOW - 4 * H
    assert await backfill_start(list(open_jobs), open_jobs, win, known_between, 100) == oldest
    assert spans == [(oldest, win.start)]


async def test_backfill_keeps_gets_when_they_are_fewer() -> None:
    """Two followed jobs in a span of 1,000 known jobs: 2 GETs beat 11 pages."""
    open_jobs = {f"jobs/{n}": state(f"jobs/{n}", NOW - (n + 2) * H) for n in range(2)}
    win = Window(NOW - H, NOW)
    assert await backfill_start(list(open_jobs), open_jobs, win, counting(1000), 100) is None


async def test_backfill_needs_two_jobs_with_a_start() -> None:
    open_jobs = {"jobs/1": state("jobs/1", NOW - 2 * H), "jobs/2": state("jobs/2", None)}
    win = Window(NOW - H, NOW)
    assert await backfill_start(list(open_jobs), open_jobs, win, counting(0), 100) is None
