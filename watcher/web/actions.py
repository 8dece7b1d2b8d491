"""The writes that the API and the page's forms offer, checked before anything is
written: add or expire a silence, acknowledge a job or a template, requeue a given-up
alert. Each takes plain values (parsed from JSON or a form) and returns what the API
answers; bad input raises `people.Refused` naming the culprit, an unknown id `Missing`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from watcher import people
from watcher.people import Ack, Refused, Silence
from watcher.settings import Duration
from watcher.web import Console

MAX_SILENCE = timedelta(days=366)
EPOCH = datetime(1970, 1, 2, tzinfo=UTC)
DURATION: TypeAdapter[float] = TypeAdapter(Duration)  # "90s", "4h", "2d" or seconds


class Missing(LookupError):
    """No such silence, acknowledgement or alert; the message says which."""


class Conflict(Refused):
    """The thing exists but is not in a state that allows it (retrying a sent alert)."""


def authorized(console: Console, header: str | None) -> bool:
    """Whether `header` (an Authorization header's value, or a form's token) carries
    the configured token; False when none is configured. Constant time."""
    if console.token is None or not header:
        return False
    presented = header.removeprefix("Bearer ").strip().encode()
    return hmac.compare_digest(presented, console.token.get_secret_value().encode())


def _time(what: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise Refused(f"{what}: must be an ISO 8601 time with its offset")
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise Refused(f"{what}: {value[:40]!r} is not an ISO 8601 time") from None
    if found.tzinfo is None:
        raise Refused(f"{what}: {value[:40]!r} needs a UTC offset (Z or +01:00)")
    return found


def _duration(what: str, value: object) -> timedelta:
    try:
        seconds = DURATION.validate_python(value)
    except ValidationError:
        raise Refused(f"{what}: {str(value)[:40]!r} is not a duration (90s, 4h, 2d)") from None
    if seconds <= 0:
        raise Refused(f"{what}: must be longer than 0s")
    return timedelta(seconds=seconds)


def since(what: str, text: str, now: datetime, *, assume_utc: bool = False) -> datetime:
    """A time to read from: a duration back from `now` (90m, 2d) or an ISO 8601 time,
    which needs its offset unless `assume_utc`."""
    try:
        return now - timedelta(seconds=DURATION.validate_python(text))
    except (ValidationError, OverflowError):
        pass
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(f"{what}: {text[:40]!r} is neither a duration (1d) nor an ISO time") from None
    if found.tzinfo is None:
        if not assume_utc:
            raise Refused(f"{what}: {text[:40]!r} needs a UTC offset (Z or +01:00)")
        found = found.replace(tzinfo=UTC)
    return found


def _known(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Refused(f"{unknown[0]}: unknown field (known: {', '.join(sorted(allowed))})")


def silence_from(body: Mapping[str, Any], now: datetime) -> Silence:
    """A silence from `matchers` ([{key, value}] or {key: value}), `starts_at` (default
    now), `ends_at` or `duration`, `comment` (required), `author`."""
    _known(body, {"matchers", "starts_at", "ends_at", "duration", "comment", "author"})
    given = body.get("matchers")
    if isinstance(given, Mapping):
        pairs = [(str(k), v) for k, v in given.items()]
    elif isinstance(given, list):
        if not all(isinstance(m, Mapping) and set(m) == {"key", "value"} for m in given):
            raise Refused("matchers: each must be {key, value}")
        pairs = [(str(m["key"]), m["value"]) for m in given]
    else:
        raise Refused("matchers: a list of {key, value}, or an object of key: value")
    matchers = people.matchers(pairs)
    starts = _time("starts_at", body["starts_at"]) if body.get("starts_at") else now
    if body.get("ends_at") and body.get("duration"):
        raise Refused("ends_at: give ends_at or duration, not both")
    if body.get("ends_at"):
        ends = _time("ends_at", body["ends_at"])
    elif body.get("duration"):
        ends = starts + _duration("duration", body["duration"])
    else:
        raise Refused("ends_at: give ends_at or duration")
    if ends <= starts:
        raise Refused("ends_at: must be after starts_at")
    if ends - starts > MAX_SILENCE:
        raise Refused(f"ends_at: a silence lasts at most {MAX_SILENCE.days} days")
    comment = people.checked_text("comment", body.get("comment", ""))
    if not comment.strip():
        raise Refused("comment: say why (it is shown to whoever wonders where the alerts went)")
    author = people.checked_text("author", body.get("author") or "api")
    return Silence(0, matchers, starts, ends, author=author, comment=comment)


async def add_silence(console: Console, body: Mapping[str, Any]) -> dict[str, Any]:
    now = console.clock()
    silence = silence_from(body, now)
    number = await console.store.add_silence(silence, now)
    return replace(silence, id=number, created_at=now).report(now)


async def expire_silence(console: Console, number: int) -> dict[str, Any]:
    now = console.clock()
    found = await console.store.expire_silence(number, now)
    if found is None:
        raise Missing(f"silence {number}: no such silence")
    return found.report(now)


async def add_ack(console: Console, body: Mapping[str, Any]) -> dict[str, Any]:
    """An acknowledgement of `job` or `template` (of `account`, default: the only one),
    with `comment` and `author`."""
    _known(body, {"job", "template", "account", "comment", "author"})
    job, template = body.get("job") or "", body.get("template") or ""
    if bool(job) == bool(template):
        raise Refused(f"job: give a job or a template, {'not both' if job else 'one of them'}")
    account = body.get("account") or (console.accounts[0] if len(console.accounts) == 1 else "")
    if account not in console.accounts:
        raise Refused(f"account: {str(account)[:60]!r} is not a configured account")
    store = console.store.scoped(account)
    comment = people.checked_text("comment", body.get("comment", ""))
    author = people.checked_text("author", body.get("author") or "api")
    if job:
        states = await store.states([people.checked_text("job", job)])
        if job not in states:
            raise Refused(f"job: {job[:60]!r} is not a job the watcher knows")
        ack = Ack(0, account, job=job, status=states[job].status, author=author, comment=comment)
    else:
        known = await store.templates()
        state = known.get(people.checked_text("template", template))
        if state is None:
            raise Refused(f"template: {template[:60]!r} is not a template the watcher knows")
        ack = Ack(
            0,
            account,
            template=template,
            streak=state.streak,
            last_start=state.last_start.timestamp() if state.last_start else None,
            author=author,
            comment=comment,
        )
    now = console.clock()
    number = await console.store.add_ack(ack, now)
    # as read back: the job keeps the status just read, no run of the template since
    return replace(ack, id=number, created_at=now, now_status=ack.status or None).report()


async def expire_ack(console: Console, number: int) -> dict[str, Any]:
    found = await console.store.expire_ack(number, console.clock())
    if found is None:
        raise Missing(f"ack {number}: no such acknowledgement")
    return found.report()


async def retry(console: Console, number: int) -> dict[str, Any]:
    """Requeue one given-up alert; delivery is told at once."""
    requeued = await console.store.requeue([number], console.clock())
    if not requeued:
        known = await console.store.alert_records(EPOCH, ids=[number])
        if not known:
            raise Missing(f"alert {number}: no such alert")
        raise Conflict(f"alert {number}: is {known[0].state}, only a given-up alert is requeued")
    console.wake()
    return {"id": number, "state": "pending"}
