"""One listing of `GET /jobs`, page by page: what it found so far, when it is complete,
and the pages requested ahead of the one being read. No HTTP here (`client` asks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from watcher import payload
from watcher.models import TERMINAL_STATUSES, Job


class Sink(Protocol):
    """Where a listing puts the jobs it does not keep in memory (`staging.Staged`)."""

    count: int  # distinct jobs taken so far

    def take(self, jobs: Sequence[Job], total: int | None) -> list[Job]:
        """Take what it wants of a page's jobs (`total`: the window's, if the page
        said); the rest, to keep."""
        ...

    def among(self, srefs: Iterable[str]) -> set[str]:
        """Which of `srefs` it took."""
        ...


@dataclass(frozen=True, slots=True)
class Listing:
    jobs: dict[str, Job]  # by sref
    pages: int
    skipped: int
    # jobs counted, not parsed: settled ones listed again with the same status, and the
    # ones a listing for some jobs alone passed over
    unchanged: set[str] = field(default_factory=set)
    ended: dict[str, str] = field(default_factory=dict)  # sref -> status of those parsed
    sunk: int = 0  # jobs the sink took (not in `jobs`)


@dataclass(slots=True)
class Found:
    """What a listing has found so far, page by page."""

    jobs: dict[str, Job] = field(default_factory=dict)
    unchanged: set[str] = field(default_factory=set)  # settled jobs listed again
    skipped: int = 0
    records: int = 0  # on the pages so far, malformed ones included
    widest: int = 0  # the most records one page had
    sink: Sink | None = None

    @property
    def count(self) -> int:
        sunk = self.sink.count if self.sink else 0
        return len(self.jobs) + len(self.unchanged) + sunk

    def add(self, listed: payload.Page) -> bool:
        """Take a page in; True if it showed a job the listing had not seen yet."""
        before = self.count
        self.skipped += listed.skipped
        self.unchanged.update(listed.unchanged)
        for job in self.sink.take(listed.jobs, listed.total) if self.sink else listed.jobs:
            known = self.jobs.get(job.sref)
            if known is None or payload.newer(job, known):
                self.jobs[job.sref] = job
        self.records += listed.count
        self.widest = max(self.widest, listed.count)
        return self.count > before

    def complete(self, listed: payload.Page) -> bool:
        """Whether the listing ends with this page, which had no next link."""
        total = listed.total
        if total is not None:
            return self.count + self.skipped >= total or (
                self.records >= total and listed.count < self.widest
            )
        # Without a total, only a page shorter than the widest so far ends the
        # listing: a server that silently caps the page size makes every page "short".
        return listed.count < self.widest

    def listing(self, pages: int) -> Listing:
        if self.sink:  # listed unfinished, then ended: the ended record (in the sink) wins
            for sref in self.sink.among(self.jobs):
                del self.jobs[sref]
        ended = {j.sref: j.status for j in self.jobs.values() if j.status in TERMINAL_STATUSES}
        self.unchanged.difference_update(self.jobs)  # a shifted page can show a job both ways
        return Listing(
            jobs=self.jobs,
            pages=pages,
            skipped=self.skipped,
            unchanged=self.unchanged,
            ended=ended,
            sunk=self.sink.count if self.sink else 0,
        )


class ReadAhead:
    """Once a page tells the total, the pages after the next one are requested ahead, up
    to max_concurrency at a time; the listing still reads and judges them in order."""

    def __init__(
        self, fetch: Callable[[int], Awaitable[Any]], concurrency: int, max_pages: int
    ) -> None:
        self._fetch = fetch
        self._concurrency = concurrency
        self._max_pages = max_pages
        self._last = 0
        self._tasks: dict[int, asyncio.Future[Any]] = {}

    def pop(self, page: int) -> asyncio.Future[Any] | None:
        return self._tasks.pop(page, None)

    def request(self, page: int, total: int, widest: int) -> None:
        """`page` is the next to read; request those after it within the window."""
        pages = -(-total // widest)  # in integers: a total of 400 digits is no float
        self._last = min(max(self._last, pages), self._max_pages)
        for n in range(page + 1, min(page + self._concurrency, self._last + 1)):
            if n not in self._tasks:
                self._tasks[n] = asyncio.ensure_future(self._fetch(n))

    async def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
