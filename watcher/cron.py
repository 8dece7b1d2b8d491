"""Cron schedules (a `missed` rule's `schedule`): crontab text -> APScheduler 3's
CronTrigger, and the latest scheduled time before an instant. Pure: `now` is always an
argument, nothing here runs jobs.

Two of APScheduler 3's cron differences from crontab would silently move a schedule,
so the text is checked and translated before `CronTrigger.from_crontab` sees it:

- day of week: APScheduler numbers Monday 0 (crontab: Sunday 0 or 7, Monday 1), so
  crontab's `1-5` would be Tuesday to Saturday. The field is rewritten as day names
  (`1-5` -> `mon,tue,wed,thu,fri`), which both read alike.
- day of month and day of week both given: crontab fires on either, APScheduler only on
  days that are both. Refused: give one of them.

Times are DST-correct through the trigger's `ZoneInfo`. A wall time skipped by a
spring-forward change is scheduled at the instant with the offset before the change
(01:30 in Europe/London on its last Sunday of March is 01:30 UTC, 02:30 BST);
a wall time repeated by a fall-back change is one scheduled time, its first occurrence
(a daily 01:30 runs once on the last Sunday of October), though APScheduler lists both.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab's numbering, 0 to 6
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # a schedule must fire at some time after this
_TICK = timedelta(microseconds=1)
_MINUTE = timedelta(minutes=1)


class CronError(ValueError):
    """Not a schedule the watcher can follow (the message says why)."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; CronError if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"{name!r} is not a time zone (an IANA name, e.g. Europe/London)") from None


def _day(text: str) -> int:
    value = text.strip().lower()
    if value.isdigit() and int(value) <= 7:
        return int(value)
    if value[:3] in _DAYS and len(value) == 3:
        return _DAYS.index(value)
    raise CronError(f"day of week {text!r} is not 0-7 or sun..sat")


def _weekdays(field: str) -> str:
    """Crontab's day-of-week field as day names, which APScheduler reads as crontab does."""
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        part, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise CronError(f"day of week {item!r}: step {step_text!r} is not a positive number")
        step = int(step_text) if slash else 1
        if part == "*":
            first, last = 0, 6
        elif "-" in part:
            start, end = part.split("-", 1)
            first, last = _day(start), _day(end)
            if last == 0 and first > 0:  # fri-sun, 5-0: Sunday as 7
                last = 7
            if first > last:
                raise CronError(f"day of week range {part!r} goes backwards")
        else:
            first = _day(part)
            last = 7 if slash else first
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_DAYS[day] for day in sorted(days))


@functools.lru_cache(maxsize=256)
def trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """The CronTrigger of a 5-field crontab expression (minute hour day month weekday) in
    `timezone`; CronError naming the problem if it is not one, or if it never fires."""
    where = zone(timezone)
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} has {len(fields)} fields, not 5 (minute hour day month weekday)"
        )
    if fields[2] != "*" and fields[4] != "*":
        raise CronError(
            f"{expression!r} gives both a day of month and a day of week (crontab fires on"
            " either, APScheduler on days that are both): give one, the other *"
        )
    fields[4] = _weekdays(fields[4])
    try:
        made = CronTrigger.from_crontab(" ".join(fields), timezone=where)
    except ValueError as exc:
        raise CronError(f"{expression!r} is not a cron expression: {exc}") from None
    if made.get_next_fire_time(None, EPOCH) is None:
        raise CronError(f"{expression!r} never fires")
    return made


def _repeated(at: datetime, where: ZoneInfo) -> bool:
    """Whether `at`'s local wall time already happened an hour or so before (fall-back)."""
    local = at.astimezone(where)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _last_fire(cron: CronTrigger, floor: datetime, limit: datetime) -> datetime | None:
    """The latest fire time of `cron` in [floor, limit] (UTC), found by bisection (cron
    times are whole minutes): a few dozen trigger calls whatever the span."""
    first: datetime | None = cron.get_next_fire_time(None, floor)
    if first is None or first > limit:
        return None
    low: datetime = first.astimezone(UTC)  # a fire time <= limit
    high = limit + _TICK  # none in [high, limit]
    while high - low > _MINUTE:
        middle = low + (high - low) / 2
        found: datetime | None = cron.get_next_fire_time(None, middle)
        if found is not None and found < high:
            low = found.astimezone(UTC)
        else:
            high = middle
    return low


def latest(cron: CronTrigger, floor: datetime, limit: datetime) -> datetime | None:
    """The latest scheduled time (UTC) in [floor, limit]: a fire time of `cron` that is
    not the second occurrence of a wall time repeated by a fall-back change."""
    where = cron.timezone
    floor, limit = floor.astimezone(UTC), limit.astimezone(UTC)
    while True:
        found = None
        for span in _SPANS:  # most schedules fire within a day: a short bisection first
            found = _last_fire(cron, max(floor, limit - span) if span else floor, limit)
            if found is not None or (span and limit - span <= floor):
                break
        if found is None or not _repeated(found, where):
            return found
        limit = found - _TICK


_SPANS = (timedelta(days=1), timedelta(days=32), None)
