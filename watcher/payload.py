"""The API's JSON -> our `Job` values, tolerant of everything the documentation leaves open.

Unknown fields are ignored, unknown statuses kept, and one malformed record is logged
(naming it) and skipped while its neighbours are used. Only an envelope that cannot
be read at all raises `PayloadError`, which fails the cycle without changing state.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    parsed = datetime.fromisoformat(value.strip())
    # The API documents a mandatory offset; a date without one is read as UTC, its default.
    try:
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise ValueError("date out of range") from None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("not a string")
    return str(value)[:MAX_TEXT]


class _JobRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sref: str
    status: str = Field(min_length=1, max_length=100)
    name: str = ""
    url: str = ""
    startedAt: datetime | None = None
    updatedAt: datetime | None = None
    startedBy: str = ""
    type: str = ""
    pageCount: int = Field(0, ge=0)
    jobTemplateUri: str = ""
    runType: str = ""
    testRunsUri: str = ""

    @field_validator("sref", mode="before")
    @classmethod
    def _sref(cls, value: object) -> str:
        match = _SREF.fullmatch(value) if isinstance(value, str) else None
        if not match:
            raise ValueError("not a job reference like jobs/12345")
        return match.group(1)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return value.strip().lower() if value.strip().lower() in KNOWN_STATUSES else value

    @field_validator("startedAt", "updatedAt", mode="before")
    @classmethod
    def _date(cls, value: object) -> datetime | None:
        return _when(value)

    @field_validator(
        "name",
        "url",
        "startedBy",
        "type",
        "jobTemplateUri",
        "runType",
        "testRunsUri",
        mode="before",
    )
    @classmethod
    def _str(cls, value: object) -> str:
        return _text(value)

    @field_validator("pageCount", mode="before")
    @classmethod
    def _count(cls, value: object) -> object:
        return 0 if value is None else value

    def job(self) -> Job:
        return Job(
            sref=self.sref,
            name=self.name,
            status=self.status,
            started_at=self.startedAt,
            updated_at=self.updatedAt,
            url=self.url,
            type=self.type,
            run_type=self.runType,
            started_by=self.startedBy,
            page_count=self.pageCount,
            template=self.jobTemplateUri,
            test_runs_uri=self.testRunsUri,
        )


def _record_name(item: object) -> str:
    if isinstance(item, dict):
        sref = item.get("sref")
        if isinstance(sref, str):
            return sref[:100]
    return "?"


def parse_job(item: object, where: str) -> Job | None:
    """One job record, or None (logged, naming the record and the fields) if malformed."""
    try:
        return _JobRecord.model_validate(item).job()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()
        )
        log.warning("job_record_skipped", sref=_record_name(item), where=where, problems=problems)
        return None


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    count: int  # records on the page, malformed ones included
    skipped: int
    total: int | None
    next_url: str | None


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


def parse_list(body: Any, page: int) -> Page:
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
    jobs = [
        job for i, item in enumerate(results) if (job := parse_job(item, f"page {page} item {i}"))
    ]
    return Page(
        jobs=jobs,
        count=len(results),
        skipped=len(results) - len(jobs),
        total=total,
        next_url=_next_link(meta),
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
