"""The API's JSON -> our `Job` values, tolerant of everything the documentation leaves open.

Unknown fields are ignored, unknown statuses kept, and one malformed record is logged
(naming it) and skipped while its neighbours are used. Only an envelope that cannot
be read at all raises `PayloadError`, which fails the cycle without changing state.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from watcher.models import KNOWN_STATUSES, Job

log = structlog.get_logger("watcher.payload")

_SREF = re.compile(r"/?(jobs/[^/?#\s]+)")
MAX_TEXT = 2000  # characters kept of any text field: a huge name must not bloat the state


class PayloadError(ValueError):
    """The response envelope is unusable (not an object, no `results`)."""


def _when(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("not an ISO 8601 date")
    try:
        parsed = datetime.fromisoformat(value.strip())
        # The API documents a mandatory offset; a date without one is read as UTC, its default.
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise ValueError("date out of range") from None
    except ValueError:
        raise ValueError("not an ISO 8601 date") from None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("not a string")
    return str(value)[:MAX_TEXT]


def _label(value: object) -> str:
    """A short text that repeats across jobs (status, type, template...): kept once."""
    return sys.intern(_text(value))


def _sref(value: object) -> str:
    match = _SREF.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("not a job reference like jobs/12345")
    return match.group(1)


def _status(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("not a non-empty string")
    if len(value) > 100:
        raise ValueError("longer than 100 characters")
    folded = value.strip().lower()
    return sys.intern(folded if folded in KNOWN_STATUSES else value)


def _count(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, float) and value.is_integer():
        count = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        count = int(value.strip())
    else:
        raise ValueError("not a whole number")
    if count < 0:
        raise ValueError("not a whole number of 0 or more")
    return count


# field in the API's record -> (our name, reader); a reader raises ValueError
_FIELDS: dict[str, tuple[str, Callable[[object], object]]] = {
    "sref": ("sref", _sref),
    "status": ("status", _status),
    "name": ("name", _text),
    "url": ("url", _text),
    "startedAt": ("started_at", _when),
    "updatedAt": ("updated_at", _when),
    "startedBy": ("started_by", _label),
    "type": ("type", _label),
    "pageCount": ("page_count", _count),
    "jobTemplateUri": ("template", _label),
    "runType": ("run_type", _label),
    "testRunsUri": ("test_runs_uri", _text),
}
_REQUIRED = ("sref", "status")


def _record_name(item: object) -> str:
    if isinstance(item, dict):
        sref = item.get("sref")
        if isinstance(sref, str):
            return sref[:100]
    return "?"


@functools.lru_cache(maxsize=4096)
def _usual_when(value: str) -> datetime | None:
    """A date as the API writes it, cached: jobs started in the same second share it."""
    return _when(value)


def _usual(item: object) -> Job | None:
    """The record as the API documents it, read fast; None if anything is unusual (then
    `_job` reads it field by field, and says what is wrong)."""
    if type(item) is not dict:
        return None
    get = item.get
    sref, status, count = get("sref"), get("status"), get("pageCount", 0)
    name, url, runs_uri = get("name", ""), get("url", ""), get("testRunsUri", "")
    started_by, kind = get("startedBy", ""), get("type", "")
    template, run_type = get("jobTemplateUri", ""), get("runType", "")
    started, updated = get("startedAt"), get("updatedAt")
    if not (
        type(sref) is str
        and type(status) is str
        and type(count) is int
        and type(name) is str
        and type(url) is str
        and type(runs_uri) is str
        and type(started_by) is str
        and type(kind) is str
        and type(template) is str
        and type(run_type) is str
        and (started is None or type(started) is str)
        and (updated is None or type(updated) is str)
        and status in KNOWN_STATUSES
        and count >= 0
    ):
        return None
    longest = max(len(name), len(url), len(runs_uri), len(started_by), len(template), len(kind))
    match = _SREF.fullmatch(sref)
    if match is None or longest > MAX_TEXT or len(run_type) > MAX_TEXT:
        return None
    try:
        started = started and _usual_when(started)
        updated = updated and _usual_when(updated)
    except ValueError:
        return None
    return Job(
        sref=sref if match.start(1) == 0 else match.group(1),
        name=name,
        status=sys.intern(status),
        started_at=started or None,
        updated_at=updated or None,
        url=sys.intern(url),  # the site a template tests: the same for all its jobs
        type=sys.intern(kind),
        run_type=sys.intern(run_type),
        started_by=sys.intern(started_by),
        page_count=count,
        template=sys.intern(template),
        test_runs_uri=runs_uri,
    )


def _job(item: object) -> Job:
    """A Job from one record; ValueError lists every problem (field: what is wrong)."""
    if not isinstance(item, dict):
        raise ValueError("record: not an object")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, (name, read) in _FIELDS.items():
        raw = item.get(key)
        if raw is None and key in _REQUIRED:
            problems.append(f"{key}: missing")
            continue
        try:
            values[name] = read(raw)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return Job(**values)


def parse_job(item: object, where: str) -> Job | None:
    """One job record, or None (logged, naming the record and the fields) if malformed."""
    return _usual(item) or _unusual(item, where)


def _unusual(item: object, where: str) -> Job | None:
    try:
        return _job(item)
    except ValueError as exc:
        log.warning("job_record_skipped", sref=_record_name(item), where=where, problems=str(exc))
        return None


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    count: int  # records on the page, malformed ones included
    skipped: int
    total: int | None
    next_url: str | None
    unchanged: list[str] = field(default_factory=list)  # settled jobs, not parsed


def _envelope(body: Any) -> Any:
    if not isinstance(body, dict) or "results" not in body:
        raise PayloadError("response has no 'results'")
    return body["results"]


def _next_link(meta: dict[str, Any]) -> str | None:
    links = meta.get("links")
    for candidate in (
        meta.get("next"),
        meta.get("nextPage"),
        links.get("next") if isinstance(links, dict) else None,
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def parse_list(body: Any, page: int, settled: Mapping[str, str] | None = None) -> Page:
    """One page of a listing. Records of jobs in `settled` (sref -> the terminal status
    they had) that still read that status are counted, not parsed: a terminal status is
    final, so nothing about them can have changed that matters."""
    results = _envelope(body)
    if isinstance(results, dict):
        log.warning("api_results_not_a_list", page=page)
        results = [results]
    if not isinstance(results, list):
        raise PayloadError("'results' is neither a list nor an object")
    meta = body.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    total = meta.get("paginationTotalResults")
    total = total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None
    jobs: list[Job] = []
    unchanged: list[str] = []
    for index, item in enumerate(results):
        if settled and type(item) is dict:
            sref = item.get("sref")
            if type(sref) is str and settled.get(sref, "") == item.get("status"):
                unchanged.append(sref)
                continue
        if job := _usual(item) or _unusual(item, f"page {page} item {index}"):
            jobs.append(job)
    return Page(
        jobs=jobs,
        count=len(results),
        skipped=len(results) - len(jobs) - len(unchanged),
        total=total,
        next_url=_next_link(meta),
        unchanged=unchanged,
    )


def parse_one(body: Any, sref: str) -> Job | None:
    job = parse_job(_envelope(body), f"GET {sref}")
    if job is not None and job.sref != sref:
        log.warning("job_sref_mismatch", asked=sref, answered=job.sref)
        return None
    return job


def parse_token(body: bytes) -> tuple[str, float] | None:
    """(access_token, lifetime in seconds) from an OAuth2 token response, or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        return None
    lifetime = data.get("expires_in")
    try:
        seconds = float(lifetime) if lifetime is not None else 300.0
    except (TypeError, ValueError):
        seconds = 300.0
    return token, seconds if seconds > 0 else 300.0


def newer(candidate: Job, known: Job) -> bool:
    """Which of two reads of one job (a page shift can show it twice) is more recent."""
    if candidate.updated_at and known.updated_at:
        return candidate.updated_at > known.updated_at
    return candidate.updated_at is not None


TEST_RUN_FIELDS = (
    "pageTitle",
    "url",
    "browser",
    "resultCode",
    "severity",
    "onLoad",
    "speedIndex",
    "domLoad",
    "renderStart",
    "visuallyComplete",
    "pageSize",
    "ranAt",
)


def parse_test_runs(body: Any) -> list[dict[str, object]]:
    """Test runs as plain values (strings, numbers, None) for templates; odd items skipped."""
    results = _envelope(body)
    if not isinstance(results, list):
        raise PayloadError("'results' is not a list")
    runs: list[dict[str, object]] = []
    for item in results:
        if not isinstance(item, dict):
            continue
        runs.append({name: _plain(item.get(name)) for name in TEST_RUN_FIELDS})
    return runs


def _plain(value: object) -> object:
    if isinstance(value, bool):
        return None
    if value is None or isinstance(value, int | float):
        return value
    return value[:MAX_TEXT] if isinstance(value, str) else None
