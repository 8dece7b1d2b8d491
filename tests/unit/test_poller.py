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


async def test_backfill_keeps_gets_when_the_span_is_past_max_pages() -> None:
    """Three followed jobs, a span of 50 known jobs: two pages, but api.max_pages is one
    (a listing past it fails)."""
    open_jobs = {f"jobs/{n}": state(f"jobs/{n}", NOW - (n + 2) * H) for n in range(3)}
    win = Window(NOW - H, NOW)
    assert await backfill_start(list(open_jobs), open_jobs, win, counting(50), 30, 1) is None
    assert await backfill_start(list(open_jobs), open_jobs, win, counting(50), 30, 2) is not None


async def test_backfill_needs_two_jobs_with_a_start() -> None:
    open_jobs = {"jobs/1": state("jobs/1", NOW - 2 * H), "jobs/2": state("jobs/2", None)}
    win = Window(NOW - H, NOW)
    assert await backfill_start(list(open_jobs), open_jobs, win, counting(0), 100) is None


class Counted:
    """The API's count of the jobs started in a span, over jobs started at `starts`;
    every span it is asked about is kept."""

    def __init__(self, starts: list[datetime], *, counts: bool = True) -> None:
        self.starts, self.counts, self.asked = starts, counts, list[tuple[datetime, datetime]]()

    async def count_jobs(self, start: datetime, end: datetime) -> int | None:
        self.asked.append((start, end))
        return sum(start <= s <= end for s in self.starts) if self.counts else None


STEP_POLL = PollSettings(interval=60, overlap=120, max_catch_up=86400)
DOWN_SINCE = NOW - 6 * H  # the last poll's watermark: down for six hours


def catch_up_window() -> Window:
    return window(DOWN_SINCE, NOW, STEP_POLL)


async def stepped(api: Counted, win: Window | None = None, since: datetime = DOWN_SINCE) -> Window:
    return await poller.stepped(api, win or catch_up_window(), since, STEP_POLL)


@pytest.fixture
def step_of_ten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poller, "STEP_JOBS", 10)


async def test_a_steady_window_is_not_counted() -> None:
    """The window of a cycle that follows the last one on time is read whole, unasked."""
    api = Counted([NOW - timedelta(seconds=n) for n in range(1000)])
    win = window(NOW - timedelta(seconds=60), NOW, STEP_POLL)
    assert await stepped(api, win, NOW - timedelta(seconds=60)) == win
    assert api.asked == []


@pytest.mark.usefixtures("step_of_ten")
async def test_a_catch_up_within_a_step_is_read_whole() -> None:
    api = Counted([DOWN_SINCE + n * H for n in range(1, 6)])
    assert await stepped(api) == catch_up_window()
    assert api.asked == [(DOWN_SINCE, NOW)]  # new jobs only: the overlap was read before


@pytest.mark.usefixtures("step_of_ten")
async def test_a_large_catch_up_reads_a_first_step_of_at_most_a_step_of_new_jobs() -> None:
    """Jobs every minute for six hours: the first step ends where ten have started."""
    starts = [DOWN_SINCE + timedelta(minutes=n) for n in range(1, 360)]
    api = Counted(starts)
    win = await stepped(api)
    assert win.catching_up
    assert win.start == catch_up_window().start
    assert DOWN_SINCE + timedelta(seconds=poller.MIN_STEP) <= win.end < NOW
    assert 0 < sum(DOWN_SINCE <= s <= win.end for s in starts) <= 10
    assert len(api.asked) <= poller.STEP_PROBES


@pytest.mark.usefixtures("step_of_ten")
async def test_a_burst_beyond_a_step_is_read_in_the_shortest_step() -> None:
    """A hundred jobs in one second, then one a minute: the step reaches MIN_STEP past
    the watermark, the least that moves the catch-up on, and holds the burst whole."""
    later = [DOWN_SINCE + timedelta(minutes=n) for n in range(2, 300)]
    api = Counted([DOWN_SINCE + timedelta(seconds=1)] * 100 + later)
    win = await stepped(api)
    assert win.catching_up
    assert win.end == DOWN_SINCE + timedelta(seconds=poller.MIN_STEP)
    assert len(api.asked) <= poller.STEP_PROBES


@pytest.mark.usefixtures("step_of_ten")
async def test_each_step_moves_the_catch_up_on_until_it_reaches_now() -> None:
    """Steps one after the other, each from its watermark minus the overlap: every job
    is in some step, no step holds more than ten new jobs, the last one ends now."""
    starts = [DOWN_SINCE + timedelta(seconds=37 * n) for n in range(1, 500)]
    api, watermark, read = Counted(starts), DOWN_SINCE, set[datetime]()
    for _ in range(200):
        win = await poller.stepped(api, window(watermark, NOW, STEP_POLL), watermark, STEP_POLL)
        new = [s for s in starts if watermark < s <= win.end]
        assert len(new) <= 10
        read.update(s for s in starts if win.start <= s <= win.end)
        assert win.end > watermark
        watermark = win.end
        if not win.catching_up:
            break
    assert watermark == NOW
    assert read == set(starts)


class CountsAll(Counted):
    """An API whose count ignores the dates: every job it has, whatever the span."""

    async def count_jobs(self, start: datetime, end: datetime) -> int | None:
        self.asked.append((start, end))
        return len(self.starts)


@pytest.mark.usefixtures("step_of_ten")
async def test_a_count_that_does_not_drop_with_the_span_reads_the_window_whole() -> None:
    """Whether nothing started after the shortest step (a burst at its start) or the API
    counts every job it has, the shortest step would hold as many as the whole window:
    the window is read whole."""
    api = CountsAll([DOWN_SINCE + timedelta(minutes=n) for n in range(1, 360)])
    assert await stepped(api) == catch_up_window()
    assert len(api.asked) <= poller.STEP_PROBES
    burst = Counted([DOWN_SINCE + timedelta(seconds=1)] * 100)
    assert await stepped(burst) == catch_up_window()


@pytest.mark.usefixtures("step_of_ten")
async def test_an_api_that_gives_no_count_is_read_whole() -> None:
    api = Counted([DOWN_SINCE + timedelta(minutes=n) for n in range(1, 360)], counts=False)
    assert await stepped(api) == catch_up_window()
    assert len(api.asked) == 1


@pytest.mark.usefixtures("step_of_ten")
async def test_a_catch_up_cut_by_max_catch_up_counts_from_the_window_start() -> None:
    """Down longer than max_catch_up: every job in the window is new."""
    since = NOW - 48 * H
    win = window(since, NOW, STEP_POLL)
    assert win.bounded
    api = Counted([win.start + timedelta(minutes=n) for n in range(1, 600)])
    step = await stepped(api, win, since)
    assert step.bounded
    assert step.catching_up
    assert api.asked[0] == (win.start, NOW)
