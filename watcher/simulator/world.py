"""The simulated account's state: its jobs, the fault knobs and request counters, the
test-run model (``perf``), the flaky-template knobs and the jobs started through
``POST /jobs``, which ``tick`` moves on with the clock.

Owns the job store (a dict by id plus a started_at-sorted index for date windows);
the HTTP layer in ``server.py`` only reads and renders it.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from watcher.simulator.perf import PerfModel, Snapshot
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
    # The perf knobs in force when the job was created: its test runs depend on them.
    perf: Snapshot | None = None
    # Set by World.fail_next: the status the job ends with instead of completed.
    forced_outcome: str | None = None
    # Started through POST /jobs: the world moves it on (see World.tick).
    launched: bool = False
    running_at: datetime | None = None
    ends_at: datetime | None = None
    outcome: str = "completed"

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
    # POST /jobs only: the next n valid starts answer create_fail_status, creating nothing.
    create_fail_next: int = 0
    create_fail_status: int = 500
    # POST /jobs only: seconds between creating the job and answering (a crash or a
    # timeout there leaves the caller not knowing that the job exists).
    create_delay: float = 0.0


RERUN_MODES = {"flaky": "completed", "broken": "failed"}


@dataclass
class Launches:
    """How jobs started through POST /jobs live, and what was asked of it.

    A started job is pending for ``pending_for`` simulated seconds, then running for
    ``run_for``, then ends (completed, or as ``World.fail_next``'s mode says).
    ``posts`` counts valid start requests per template (refused ones too);
    ``created`` lists the srefs of the jobs they created.
    """

    pending_for: float = 5.0
    run_for: float = 30.0
    posts: collections.Counter[str] = field(default_factory=collections.Counter)
    created: dict[str, list[str]] = field(default_factory=dict)


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
        self.perf = PerfModel()
        self.launches = Launches()
        self._doomed: collections.Counter[str] = collections.Counter()
        self._rerun_outcome: dict[str, str] = {}
        self._live: list[SimJob] = []
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
            perf=self.perf.snapshot(template),
        )
        if self._doomed[template] > 0:
            self._doomed[template] -= 1
            job.forced_outcome = "failed"
            if status == "completed":
                job.status = "failed"
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
        if status == "completed" and found.forced_outcome is not None:
            status = found.forced_outcome
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

    # -- performance knobs, reruns and jobs started through POST /jobs --------------

    def fail_next(self, template: str, count: int = 1, *, mode: str = "flaky") -> None:
        """The template's next ``count`` jobs (not started through POST /jobs) fail where
        they would have completed; from now on its POSTed jobs (reruns) complete
        (``mode="flaky"``) or fail too (``"broken"``) until ``heal``."""
        if mode not in RERUN_MODES:
            raise ValueError(f"mode: one of {', '.join(RERUN_MODES)}: {mode!r}")
        if count < 0:
            raise ValueError(f"count: must not be negative: {count!r}")
        self._doomed[template] = count
        self._rerun_outcome[template] = RERUN_MODES[mode]

    def heal(self, template: str) -> None:
        """Undo ``fail_next``: new jobs and reruns of the template complete again."""
        self._doomed.pop(template, None)
        self._rerun_outcome.pop(template, None)

    def flakes(self) -> dict[str, dict[str, object]]:
        """Per template touched by ``fail_next``: jobs still to fail, reruns' outcome."""
        return {
            template: {"fail_next": self._doomed[template], "rerun_outcome": outcome}
            for template, outcome in sorted(self._rerun_outcome.items())
        }

    def start_job(
        self,
        template: str,
        *,
        name: str | None = None,
        type: str = "Single",  # shadows the builtin: it is the API's own field name
        url: str = "",
        started_by: str = "Performance Analyzer API",
        run_type: str = "manual",
    ) -> SimJob:
        """What POST /jobs does: a pending job of ``template`` that the world moves on to
        running and then to its end as the clock passes (see ``tick``). It is never one
        of ``fail_next``'s jobs: it ends as the template's rerun mode says."""
        doomed = self._doomed[template]
        job = self.add_job(
            name=name or f"API job ({template})",
            template=template,
            type=type,
            url=url,
            started_by=started_by,
            run_type=run_type,
        )
        self._doomed[template], job.forced_outcome = doomed, None
        job.launched = True
        job.running_at = job.started_at + timedelta(seconds=self.launches.pending_for)
        job.ends_at = job.running_at + timedelta(seconds=self.launches.run_for)
        job.outcome = self._rerun_outcome.get(template, "completed")
        self.launches.created.setdefault(template, []).append(job.sref)
        self._live.append(job)
        self.tick()
        return job

    def tick(self) -> None:
        """Move started jobs on to where the clock says they are; the server calls it
        before every request. A job whose status was changed by hand is left alone."""
        if not self._live:
            return
        now = self.now()
        for job in list(self._live):
            if self._jobs.get(job.id) is not job or job.running_at is None:
                self._live.remove(job)
                continue
            if job.status == "pending" and now >= job.running_at:
                job.status, job.updated_at, job.page_count = "running", job.running_at, 1
            if job.status == "running" and job.ends_at is not None and now >= job.ends_at:
                job.status, job.updated_at = job.outcome, job.ends_at
                job.page_count = self.perf.run_count(job)
            if job.status not in ("pending", "running"):
                self._live.remove(job)

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
