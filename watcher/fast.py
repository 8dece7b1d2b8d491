"""The speed tricks of the hot paths, in one place, behind plain functions.

A first cycle over a window of 100k jobs builds 100k jobs and job states and tens of
thousands of alerts: here records are built positionally (a keyword call costs more),
labels that repeat across jobs are interned, dates become timestamps once, template
variables travel as one list, and the garbage collector pauses for a cycle. The rest
of the code builds records by keyword; `tests/unit/test_fast.py` holds every builder
here to its keyword twin, so a field reordered in a model fails a test.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import msgspec

from watcher.models import DEFAULT_ACCOUNT, PERF_KINDS, Alert, Event, EventKind, Job, JobState

if TYPE_CHECKING:
    from watcher.payload import Record
    from watcher.settings import Rule
    from watcher.settled import ByStatus

P = ParamSpec("P")
T = TypeVar("T")


def job(record: Record, sref: str, started: datetime | None, updated: datetime | None) -> Job:
    """A `Job` from a record of the documented shape whose sref and dates are read."""
    intern = sys.intern  # status, url, type...: a handful of values shared by every job
    return Job(
        sref,
        record.name or "",
        intern(record.status),
        started,
        updated,
        intern(record.url or ""),
        intern(record.type or ""),
        intern(record.runType or ""),
        intern(record.startedBy or ""),
        record.pageCount or 0,
        intern(record.jobTemplateUri or ""),
        record.testRunsUri or "",
    )


def unsettled(records: Sequence[Record], settled: ByStatus) -> tuple[list[int], list[str]]:
    """(the places of the records to read, the srefs that `settled` holds of the jobs
    that read the status they are settled with): `payload._unsettled`'s loop as
    comprehensions. A steady cycle's records are mostly settled, and a loop that
    branches for each of them costs more than the decoding of the page."""
    get = settled.get
    own = [srefs.get(r.sref) if (srefs := get(r.status)) else None for r in records]
    unchanged = [sref for sref in own if sref is not None]
    return [i for i, sref in enumerate(own) if sref is None], unchanged


def first_state(job: Job, now: datetime) -> JobState:
    """A job seen for the first time, as of `first_since`."""
    return JobState(
        job.sref,
        job.status,
        first_since(job, now),
        now,
        job.updated_at,
        job.started_at,
        job.template,
        job.name,
    )


def first_since(job: Job, now: datetime) -> datetime:
    """Since when a job seen for the first time has had its status: first seen running,
    it has run since it started; otherwise, since now."""
    started = job.started_at
    return started if job.status == "running" and started is not None and started < now else now


def alerts(
    event: Event, fired: Sequence[Rule], variables: str, account: str = DEFAULT_ACCOUNT
) -> list[Alert]:
    """One alert per firing rule and channel, queued with the event's `variables`."""
    job, kind = event.job, event.kind
    resolvable = kind is EventKind.STUCK
    return [
        Alert(
            kind,
            rule.name,
            channel,
            rule.severity,
            job.sref,
            job.template,
            event.to_status,
            event.seq,
            resolvable or rule.drop_if_resolved,
            variables,
            rule.title,
            rule.body,
            account=account,
        )
        for rule in fired
        for channel in rule.notify
    ]


# The template variables of an event as the outbox keeps them: one JSON list in this
# order (a third of the time the nested objects take to encode). A file format: append.
JOB_VARIABLES = (
    "name",
    "url",
    "status",
    "type",
    "run_type",
    "started_at",
    "updated_at",
    "started_by",
    "page_count",
    "sref",
    "id",
    "template",
    "test_runs_uri",
    "test_runs",
)
EVENT_VARIABLES = ("kind", "from", "to", "at", "streak", "stuck_for")
# regressed and improved only: one more item, an object of these (alerts queued before
# them, and other events, have none: every template sees them, None, or [] for runs)
PERF_VARIABLES = (
    "metric",
    "value",
    "baseline",
    "delta",
    "percent",
    "page_title",
    "page_url",
    "browser",
    "runs",
    "limit",  # the flagging limit: with `runs` and `baseline`, what the chart draws
)
_NO_PERF: dict[str, Any] = dict.fromkeys(PERF_VARIABLES)
# The flake filter's links (`job.rerun_of`, `job.rerun`), in the same trailing object
# under "job" when a job has one; "" for every other job.
JOB_LINKS = ("rerun_of", "rerun")
_NO_LINKS: dict[str, Any] = dict.fromkeys(JOB_LINKS, "")
_encode = msgspec.json.Encoder().encode  # a tenth of the time json.dumps takes


@functools.lru_cache(maxsize=4096)
def _iso(value: datetime | None) -> str:
    """A storm's jobs share their dates to the second (the decoder reads each once)."""
    return value.isoformat() if value else ""


def variable_list(event: Event, test_runs: list[dict[str, object]] | None) -> str:
    """The values of JOB_VARIABLES then EVENT_VARIABLES, as JSON; for regressed and
    improved, then an object of PERF_VARIABLES (and their `to` is their kind: their
    status is the series' id, for their key)."""
    job = event.job
    perf = event.kind in PERF_KINDS
    values: list[Any] = [
        job.name,
        job.url,
        job.status,
        job.type,
        job.run_type,
        _iso(job.started_at),
        _iso(job.updated_at),
        job.started_by,
        job.page_count,
        job.sref,
        job.id,
        job.template,
        job.test_runs_uri,
        test_runs or [],
        str(event.kind),
        event.from_status,
        str(event.kind) if perf else event.to_status,
        _iso(event.at),
        event.streak,
        event.stuck_for,
    ]
    extra: dict[str, Any] = {}
    if perf:
        given = event.perf or {}
        extra = {name: given.get(name) for name in PERF_VARIABLES}
    if job.rerun_of or job.rerun:
        extra["job"] = {"rerun_of": job.rerun_of, "rerun": job.rerun}
    if extra:
        values.append(extra)
    return _encode(values).decode()


def named_variables(values: list[Any]) -> dict[str, dict[str, Any]]:
    """`variable_list`'s values back under their names, as templates see them."""
    split = len(JOB_VARIABLES)
    width = split + len(EVENT_VARIABLES)
    perf: dict[str, Any] = _NO_PERF
    links: dict[str, Any] = _NO_LINKS
    if len(values) == width + 1 and isinstance(values[-1], dict):
        extra = values[-1]
        perf = {name: extra.get(name) for name in PERF_VARIABLES}
        if isinstance(given := extra.get("job"), dict):
            links = {name: str(given.get(name) or "") for name in JOB_LINKS}
        values = values[:-1]
    if len(values) != width:
        raise ValueError(f"{len(values)} values for {width} variables")
    event = dict(zip(EVENT_VARIABLES, values[split:], strict=True))
    event.update(perf)
    if event["runs"] is None:
        event["runs"] = []
    job = dict(zip(JOB_VARIABLES, values[:split], strict=True))
    job.update(links)
    return {"job": job, "event": event}


class Stamps(dict[datetime, float]):
    """datetime -> timestamp, each worked out once: a window's jobs share their dates to
    the second, and a stored row has two or three of them."""

    def __missing__(self, key: datetime) -> float:
        value = self[key] = key.timestamp()
        return value


class Dates(dict[float, datetime]):
    """timestamp -> UTC datetime, each made once: the rows of a store's jobs share their
    dates (the `now` of the cycle that wrote them, starts to the second), and the states
    of the followed jobs live from one cycle to the next."""

    def __missing__(self, key: float) -> datetime:
        value = self[key] = datetime.fromtimestamp(key, UTC)
        return value


def collector_paused(
    work: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run a coroutine with the garbage collector paused: a window of new jobs allocates
    millions of objects and no reference cycles, and collections set off by them would
    rescan the growing heap again and again (0.5 s of a 100k-job first cycle)."""

    @functools.wraps(work)
    async def paused(*args: P.args, **kwargs: P.kwargs) -> T:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return await work(*args, **kwargs)
        finally:
            if collecting:
                gc.enable()

    return paused


def freeze_loaded() -> None:
    """What is loaded by now (libraries, apprise's plugins, settings, templates) lives as
    long as the process: keep it out of every collection that a large cycle sets off."""
    gc.freeze()
