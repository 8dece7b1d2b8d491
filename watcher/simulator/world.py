"""The simulated account's state: its jobs, the fault knobs and request counters.

Owns the job store (a dict by id plus a started_at-sorted index for date windows);
the HTTP layer in ``server.py`` only reads and renders it.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from watcher.simulator.tokens import TokenStore

STATUSES = ("pending", "running", "failed", "completed", "cancelled", "expired")
TERMINAL = frozenset({"failed", "completed", "cancelled", "expired"})


def iso(dt: datetime) -> str:
    """Render a date the way the API does: UTC, seconds precision, ``+00:00``."""
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def to_utc_seconds(dt: datetime) -> datetime:
    """Normalise a stored date to UTC whole seconds.

    The API only shows seconds, so the world keeps exactly what it shows: a date
    filter then agrees with the rendered ``startedAt`` at the window's edges.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"date must be timezone-aware: {dt!r}")
    return dt.astimezone(UTC).replace(microsecond=0)


@dataclass
class SimJob:
    """One job as the simulator holds it; ``to_json`` gives the API's object."""

    id: int
    name: str
    status: str
    started_at: datetime
    updated_at: datetime
    template: str = "jobTemplates/1"
    type: str = "Single"
    run_type: str = "manual"
    started_by: str = "Joe Bloggs"
    url: str = ""
    page_count: int = 0

    @property
    def sref(self) -> str:
        return f"jobs/{self.id}"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.url,
            "startedAt": iso(self.started_at),
            "updatedAt": iso(self.updated_at),
            "startedBy": self.started_by,
            "type": self.type,
            "pageCount": self.page_count,
            "status": self.status,
            "sref": self.sref,
            "jobTemplateUri": self.template,
            "runType": self.run_type,
            "testRunsUri": f"testRuns?job=jobs%2F{self.id}",
        }


@dataclass
class Faults:
    """Knobs that make the simulated API misbehave; change them at any time."""

    down: bool = False
    fail_next: int = 0
    fail_status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    truncate_next: int = 0
    nest_next: int = 0  # 2xx bodies given a field nested deeper than any reader goes
    malformed: set[str] = field(default_factory=set)
    page_size_cap: int | None = None
    token_ttl: float = 3600.0
    next_links: bool = False
    omit_total: bool = False
    # Not in the original brief: lets a client's token-refresh error path be tested.
    token_fail_next: int = 0


JobRef = SimJob | int | str


class World:
    """All jobs of one simulated account, plus faults, counters and tokens."""

    def __init__(
        self, *, clock: Callable[[], datetime] | None = None, first_id: int = 1000
    ) -> None:
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.faults = Faults()
        self.requests: collections.Counter[str] = collections.Counter()
        self.tokens = TokenStore()
        self._next_id = first_id
        self._jobs: dict[int, SimJob] = {}
        # (started_at, id) ascending; reversed it is the API's newest-first order.
        self._order: list[tuple[datetime, int]] = []

    def now(self) -> datetime:
        return to_utc_seconds(self.clock())

    def add_job(
        self,
        *,
        name: str = "Job",
        status: str = "pending",
        template: str = "jobTemplates/1",
        type: str = "Single",  # shadows the builtin: it is the API's own field name
        run_type: str = "manual",
        started_by: str = "Joe Bloggs",
        url: str = "",
        started_at: datetime | None = None,
    ) -> SimJob:
        """Create a job; ``started_at`` defaults to the clock's now."""
        now = self.now()
        start = now if started_at is None else to_utc_seconds(started_at)
        job = SimJob(
            id=self._next_id,
            name=name,
            status=status,
            started_at=start,
            updated_at=max(now, start),
            template=template,
            type=type,
            run_type=run_type,
            started_by=started_by,
            url=url,
            page_count=1 if status in ("running", "completed") else 0,
        )
        self._next_id += 1
        self._jobs[job.id] = job
        bisect.insort(self._order, (job.started_at, job.id))
        return job

    def resolve(self, job: JobRef) -> SimJob:
        """Find a job by object, id, ``"jobs/<id>"`` or ``"<id>"``; KeyError if absent."""
        if isinstance(job, SimJob):
            job_id = job.id
        elif isinstance(job, int):
            job_id = job
        else:
            text = job.removeprefix("jobs/")
            if not text.isdigit():
                raise KeyError(job)
            job_id = int(text)
        found = self._jobs.get(job_id)
        if found is None:
            raise KeyError(job)
        return found

    def set_status(self, job: JobRef, status: str) -> SimJob:
        """Change a job's status now; entering or staying in running adds a result page."""
        found = self.resolve(job)
        found.status = status
        found.updated_at = max(self.now(), found.started_at)
        if status == "running":
            found.page_count += 1
        return found

    def progress(self, job: JobRef, pages: int = 1) -> SimJob:
        """A running job produced more results: pageCount grows, updatedAt moves."""
        found = self.resolve(job)
        found.page_count += pages
        found.updated_at = max(self.now(), found.started_at)
        return found

    def get(self, job_id: int) -> SimJob | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[SimJob]:
        """Every job, newest first."""
        return [self._jobs[i] for _, i in reversed(self._order)]

    def _bounds(self, start: datetime | None, end: datetime | None) -> tuple[int, int]:
        lo = 0 if start is None else bisect.bisect_left(self._order, start, key=_started)
        hi = (
            len(self._order) if end is None else bisect.bisect_right(self._order, end, key=_started)
        )
        return lo, max(lo, hi)

    def jobs_between(self, start: datetime | None, end: datetime | None) -> list[SimJob]:
        """Jobs whose startedAt is within [start, end] (either may be open), newest first."""
        lo, hi = self._bounds(start, end)
        return [self._jobs[i] for _, i in reversed(self._order[lo:hi])]

    def page(
        self,
        start: datetime | None,
        end: datetime | None,
        *,
        template: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[SimJob], int]:
        """One page of ``jobs_between`` (optionally one template) and the window's total.

        Without a template filter this touches only the page's items, so serving
        100k-job windows page by page stays cheap.
        """
        lo, hi = self._bounds(start, end)
        if template is None:
            top = hi - offset
            keys = self._order[max(lo, top - limit) : max(lo, top)]
            return [self._jobs[i] for _, i in reversed(keys)], hi - lo
        matching = [
            job
            for job in (self._jobs[i] for _, i in reversed(self._order[lo:hi]))
            if job.template == template
        ]
        return matching[offset : offset + limit], len(matching)

    def remove(self, job_id: JobRef) -> None:
        """The job disappears, as if deleted upstream; unknown jobs are ignored."""
        try:
            job = self._jobs.pop(self.resolve(job_id).id)
        except KeyError:
            return
        index = bisect.bisect_left(self._order, (job.started_at, job.id))
        del self._order[index]

    def __len__(self) -> int:
        return len(self._jobs)


def _started(key: tuple[datetime, int]) -> datetime:
    return key[0]
