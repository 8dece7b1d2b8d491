"""The API's JSON -> our `Job` values, tolerant of everything the documentation leaves open.

Unknown fields are ignored, unknown statuses kept, and one malformed record is logged
(naming it) and skipped while its neighbours are used, even a record that no JSON
reader takes (`salvage` reads the body around it). Only a body that cannot be read
around its records (a ValueError from the decoders, which the client retries) or an
envelope without `results` (`PayloadError`) fails the cycle, without changing state.

A page is decoded by msgspec straight from its bytes into typed records of the
documented shape; a page of another shape, and any record with an unusual value, goes
to the field-by-field reader, which says what is wrong. Both read a page the same.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import structlog
from msgspec.structs import asdict

from watcher import fast, salvage
from watcher.models import KNOWN_STATUSES, Job

if TYPE_CHECKING:
    from watcher.settled import ByStatus

log = structlog.get_logger("watcher.payload")

# An id of printable characters: it goes into URLs and log lines as it came.
_SREF = re.compile(r"/?(jobs/[^/?#\s\x00-\x1f\x7f-\x9f\ud800-\udfff]+)")
# Python's JSON reader makes lone surrogates of `\ud800` escapes (and of their UTF-8
# bytes), which no UTF-8 writer takes: not the state store, not the outbox's encoder.
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_TEXT = 2000  # characters kept of any text field: a huge name must not bloat the state
# What a next link may hold to be requested as it came: the characters of RFC 3986.
_URL = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
MAX_TOTAL = 2**63 - 1  # a larger paginationTotalResults is no count a server made
DEFAULT_TOKEN_LIFETIME = 300.0  # seconds, when the token response gives none that is usable


MAX_SKIPPED_LINES = 10  # a line for each malformed record of a page; the rest are counted


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


def _writable(text: str) -> str:
    """The text with each lone surrogate as U+FFFD, so that UTF-8 can write it."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("not a string")
    return _writable(str(value)[:MAX_TEXT])


def _sref(value: object) -> str:
    match = _SREF.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("not a job reference like jobs/12345")
    return match.group(1)


def _start(value: object) -> datetime:
    """A job's start: every job has one (the date filter reads it), so "" is missing too."""
    started = _when(value)
    if started is None:
        raise ValueError("missing")
    return started


def _status(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("not a non-empty string")
    if len(value) > 100:
        raise ValueError("longer than 100 characters")
    folded = value.strip().lower()
    return folded if folded in KNOWN_STATUSES else _writable(value)


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
    "startedAt": ("started_at", _start),
    "updatedAt": ("updated_at", _when),
    "startedBy": ("started_by", _text),
    "type": ("type", _text),
    "pageCount": ("page_count", _count),
    "jobTemplateUri": ("template", _text),
    "runType": ("run_type", _text),
    "testRunsUri": ("test_runs_uri", _text),
}
_REQUIRED = ("sref", "status", "name", "startedAt")  # null or absent: the record is malformed


def _record_name(item: object) -> str:
    if type(item) is salvage.Unreadable:
        return item.sref
    if isinstance(item, dict):
        sref = item.get("sref")
        if isinstance(sref, str):
            return sref[:100]
    return "?"


_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]


class Record(msgspec.Struct, gc=False):
    """A job record of the documented shape, under the API's field names: what a page
    is decoded into, in C, straight from the bytes. Dates stay text, read by `_when`.
    A value out of these bounds sends the record to the tolerant reader."""

    sref: str
    status: str
    name: _Text
    startedAt: str  # the API's names
    url: _Text | None = None
    updatedAt: str | None = None
    startedBy: _Text | None = None
    type: _Text | None = None
    pageCount: Annotated[int, msgspec.Meta(ge=0)] | None = None
    jobTemplateUri: _Text | None = None
    runType: _Text | None = None
    testRunsUri: _Text | None = None


class _Meta(msgspec.Struct, gc=False):
    """The keys of a page's meta that are read; the rest is skipped, never built (a meta
    of a million keys costs no memory)."""

    paginationTotalResults: Any = None
    next: Any = None
    nextPage: Any = None
    links: Any = None


class _Listing(msgspec.Struct, gc=False):
    results: list[Record]
    meta: _Meta | None = None


_decode_listing = msgspec.json.Decoder(_Listing).decode
_decode_record = msgspec.json.Decoder(Record).decode
_encode = msgspec.json.Encoder().encode


def _without_nul(body: bytes) -> bytes:
    """The body with each escaped NUL (`\\u0000`) as U+FFFD: PostgreSQL's text holds no
    NUL, so a job name with one would fail every write of the state. Most bodies have
    no backslash at all: looking for that one byte first (memchr) costs a tenth of the
    search for the six-byte escape, which would be a quarter of the decoding."""
    if b"\\" in body and b"\\u0000" in body:
        return body.replace(b"\\u0000", b"\\ufffd")
    return body


def decode_listing(body: bytes) -> Any:
    """A page of `GET /jobs`: typed records when every record has the documented shape
    (the usual case); else plain JSON, read around any record that no reader takes,
    records of the documented shape typed. `salvage.BrokenBody` (a ValueError) if the
    page cannot be read around its records."""
    body = _without_nul(body)
    try:
        return _decode_listing(body)
    except (msgspec.DecodeError, RecursionError):  # another shape, or not for msgspec
        return salvage.read(body, _typed_record)


def decode_body(body: bytes) -> Any:
    """Any body of the API as plain JSON for the tolerant readers; a record under
    `results` that no reader takes becomes a `salvage.Unreadable` in its place.
    `salvage.BrokenBody` (a ValueError) if the body cannot be read around its records."""
    return salvage.read(_without_nul(body), salvage.plain_record)


def _typed_record(record: bytes, at: int) -> Any:
    """A record of the documented shape typed, as the fast path reads it; else plain."""
    try:
        return _decode_record(record)
    except (msgspec.DecodeError, RecursionError):
        return salvage.plain_record(record, at)


def _as_record(item: object) -> Record | None:
    """A record that Python's reader made, typed, if it has the documented shape."""
    if type(item) is not dict:
        return None
    try:
        record = msgspec.convert(item, Record)
    except msgspec.ValidationError:
        return None
    return record if _writable_record(record) else None


def _writable_record(record: Record) -> bool:
    """Whether UTF-8 can write every text of a record that Python's reader made (it lets
    lone surrogates through; msgspec's reader refuses them). Encoding it is the test that
    UTF-8 writers apply, and costs less than looking at each text."""
    try:
        _encode(record)
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _usual_when(value: str) -> datetime | None:
    """A date as the API writes it, cached: jobs started in the same second share it."""
    return _when(value)


def _documented(record: Record) -> Job | None:
    """The record read fast; None if anything is unusual (then `_job` reads it field by
    field, and says what is wrong)."""
    status, match = record.status, _SREF.fullmatch(record.sref)
    if status not in KNOWN_STATUSES or match is None:
        return None
    try:
        started = _usual_when(record.startedAt)
        updated = record.updatedAt and _usual_when(record.updatedAt)
    except ValueError:
        return None
    if started is None:
        return None
    sref = record.sref if match.start(1) == 0 else match.group(1)
    return fast.job(record, sref, started, updated or None)


def _job(item: object) -> Job:
    """A Job from one record; ValueError lists every problem (field: what is wrong)."""
    if type(item) is salvage.Unreadable:
        raise ValueError(f"record: {item.problem}")
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


def parse_job(item: object, where: str, *, say: bool = True) -> Job | None:
    """One job record, or None if malformed (logged unless `say` is false, naming the
    record and the fields)."""
    record = _as_record(item)
    job = _documented(record) if record is not None else None
    return job or _unusual(item, where, say)


def _unusual(item: object, where: str, say: bool = True) -> Job | None:
    try:
        return _job(item)
    except ValueError as exc:
        if say:
            log.warning(
                "job_record_skipped", sref=_record_name(item), where=where, problems=str(exc)
            )
        return None


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    count: int  # records on the page, malformed ones included
    skipped: int
    total: int | None
    next_url: str | None
    # jobs counted, not parsed: settled ones (their srefs as the settled jobs' map holds
    # them), and with `only`, the others
    unchanged: list[str] = field(default_factory=list)


def _envelope(body: Any) -> Any:
    if not isinstance(body, dict) or "results" not in body:
        raise PayloadError("response has no 'results'")
    return body["results"]


def _next_link(meta: dict[str, Any], page: int) -> str | None:
    links = meta.get("links")
    for candidate in (
        meta.get("next"),
        meta.get("nextPage"),
        links.get("next") if isinstance(links, dict) else None,
    ):
        if isinstance(candidate, str) and candidate:
            if _URL.fullmatch(candidate):
                return candidate
            # The client requests a link as it came: spaces, line breaks or other text
            # would be a broken request at best. Page numbers still reach the next page.
            log.warning("api_next_link_ignored", page=page, problem="not written as a URL")
            return None
    return None


def _total(meta: dict[str, Any]) -> int | None:
    total = meta.get("paginationTotalResults")
    return total if type(total) is int and 0 <= total <= MAX_TOTAL else None


def _page_parts(body: Any, page: int) -> tuple[list[Any], dict[str, Any]]:
    """The records and the meta of a page, decoded typed (`decode_listing`) or plain."""
    results: Any
    if type(body) is _Listing:
        results, meta = body.results, asdict(body.meta) if body.meta else None
    else:
        results = _envelope(body)
        if isinstance(results, dict):
            log.warning("api_results_not_a_list", page=page)
            results = [results]
        if not isinstance(results, list):
            raise PayloadError("'results' is neither a list nor an object")
        meta = body.get("meta")
    return results, meta if isinstance(meta, dict) else {}


def _identity(item: object) -> tuple[object, object]:
    """(sref, status) of a plain record, as they came."""
    if type(item) is dict:
        return item.get("sref"), item.get("status")
    return None, None


def _unsettled(
    results: list[Any], typed: bool, settled: ByStatus
) -> tuple[Sequence[int], list[str]]:
    """(the places of the records to read, the settled jobs that read the status they
    had, as the srefs that `settled` holds: counted, not read). A record without a
    status is read."""
    if typed:  # every record is a `Record`: most of them settled in a steady cycle
        return fast.unsettled(results, settled)
    places: list[int] = []
    unchanged: list[str] = []
    for index, item in enumerate(results):
        sref, status = (item.sref, item.status) if type(item) is Record else _identity(item)
        srefs = settled.get(status) if type(status) is str else None
        own = srefs.get(sref) if srefs is not None and type(sref) is str else None
        if own is None:
            places.append(index)
        else:
            unchanged.append(own)
    return places, unchanged


def _among(
    results: list[Any],
    places: Sequence[int],
    only: Container[str],
    settled: ByStatus | None,
    passed: list[str],
) -> list[int]:
    """Of the records at `places`, the places of those to parse: a job in `only`, a
    settled job that reads another status now (settled jobs hold what the store holds),
    a record without a readable sref (counted as malformed). The others' srefs go to
    `passed`: counted, not parsed."""
    held = list(settled.values()) if settled else []
    kept: list[int] = []
    for index in places:
        item = results[index]
        sref = item.sref if type(item) is Record else _identity(item)[0]
        if type(sref) is str and sref not in only and not any(sref in h for h in held):
            passed.append(sref)
        else:
            kept.append(index)
    return kept


def parse_list(
    body: Any, page: int, settled: ByStatus | None = None, only: Container[str] | None = None
) -> Page:
    """One page of a listing. Records of jobs in `settled` (by the terminal status they
    had) that still read that status are counted, not parsed: a terminal status is
    final, so nothing about them can have changed that matters. With `only`, so are
    the records of every other job (a listing for some jobs alone)."""
    results, meta = _page_parts(body, page)
    places: Sequence[int] = range(len(results))
    unchanged: list[str] = []
    if settled:
        places, unchanged = _unsettled(results, type(body) is _Listing, settled)
    if only is not None:
        places = _among(results, places, only, settled, unchanged)
    jobs: list[Job] = []
    malformed = 0
    for index in places:
        item = results[index]
        say = malformed < MAX_SKIPPED_LINES
        if type(item) is Record:
            # An unusual typed record goes back to the plain values it was decoded from
            # (dates are kept as text): the tolerant reader sees what it would have seen.
            job = _documented(item) or _unusual(asdict(item), f"page {page} item {index}", say)
        else:
            job = parse_job(item, f"page {page} item {index}", say=say)
        if job:
            jobs.append(job)
        else:
            malformed += 1
    if malformed > MAX_SKIPPED_LINES:
        log.warning(
            "job_records_skipped_not_listed", page=page, records=malformed - MAX_SKIPPED_LINES
        )
    return Page(
        jobs=jobs,
        count=len(results),
        skipped=len(results) - len(jobs) - len(unchanged),
        total=_total(meta),
        next_url=_next_link(meta, page),
        unchanged=unchanged,
    )


def listing_total(body: Any) -> int | None:
    """The number of records a listing's pages hold together, as its meta says; None
    if it says none (or nothing usable). Its records are not read."""
    return _total(_page_parts(body, 1)[1])


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
    except (ValueError, RecursionError):  # not JSON, or nested past the reader
        return None
    if not isinstance(data, dict):
        return None
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        return None
    return token, _lifetime(data.get("expires_in"))


def parse_started(body: bytes) -> str | None:
    """The new job's sref from an answer of `POST /jobs` (`{"results": {"jobUri":
    "jobs/98765"}}`), or None when the answer names none."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    results = data.get("results") if isinstance(data, dict) else None
    uri = results.get("jobUri") if isinstance(results, dict) else None
    match = _SREF.fullmatch(uri.strip()) if isinstance(uri, str) and len(uri) < MAX_TEXT else None
    return match.group(1) if match else None


def _lifetime(value: object) -> float:
    if value is None or isinstance(value, bool):  # true is no number of seconds
        return DEFAULT_TOKEN_LIFETIME
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past any float
        return DEFAULT_TOKEN_LIFETIME
    return seconds if seconds > 0 else DEFAULT_TOKEN_LIFETIME


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
    "dataStartDuration",
    "downloadDuration",
    "objectCount",
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
    return _writable(value[:MAX_TEXT]) if isinstance(value, str) else None
