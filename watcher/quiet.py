"""Quiet hours: the `delivery.quiet_hours` windows and when an alert held by them may go out.

Pure: wall times become instants through zoneinfo (DST-correct), `now` is always an argument.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from watcher.models import Severity

MAX_CHAIN = 14  # windows followed one into the next before giving up (an always-quiet setup)
SEVERITIES = tuple(s.value for s in Severity)
_DAY = 24 * 60
_LAST_START = _DAY - 1


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_WEEKDAYS = list(Weekday)  # index = date.weekday()
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NAMES = {name: Weekday(name[:3]) for name in _FULL_NAMES} | {day.value: day for day in Weekday}


def _minutes(value: str, latest: int) -> int:
    found = re.fullmatch(r"([01]\d|2[0-4]):([0-5]\d)", value)
    minutes = int(found[1]) * 60 + int(found[2]) if found else -1
    if not 0 <= minutes <= latest:
        last = f"{latest // 60:02d}:{latest % 60:02d}"
        raise ValueError(f"{value!r} is not a time HH:MM from 00:00 to {last}")
    return minutes


class QuietWindow(BaseModel):
    """Alerts of `severities` wait while local time in `timezone` is from `start` to `end`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Weekday] = Field(default_factory=lambda: list(Weekday), min_length=1)
    start: str
    end: str
    timezone: str = "UTC"
    severities: list[str] = Field(default_factory=lambda: list(SEVERITIES), min_length=1)

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value  # pydantic then says it is not a list
        days = []
        for day in value:
            found = _DAY_NAMES.get(day.strip().lower()) if isinstance(day, str) else None
            if found is None:
                raise ValueError(f"{day!r} is not a day (mon, tue, ... sun)")
            days.append(found)
        return days

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 reads 22:00 as 1320
            raise ValueError(f'{value} is not HH:MM; quote times in YAML ("22:00", not 22:00)')
        if isinstance(value, str):
            _minutes(value, _LAST_START if info.field_name == "start" else _DAY)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"{value!r} is not a time zone") from None
        return value

    @field_validator("severities")
    @classmethod
    def _severities(cls, value: list[str]) -> list[str]:
        for severity in value:
            if severity.lower() not in SEVERITIES:
                raise ValueError(f"{severity!r} is not a severity ({', '.join(SEVERITIES)})")
        return [severity.lower() for severity in value]

    @model_validator(mode="after")
    def _not_empty(self) -> QuietWindow:
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start!r}; the window would be empty")
        return self

    def spans(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The UTC [start, end) of each occurrence of this window that could contain `at`."""
        zone = ZoneInfo(self.timezone)
        start, end = _minutes(self.start, _LAST_START), _minutes(self.end, _DAY)
        if end < start:
            end += _DAY  # runs past midnight into the next day
        today = at.astimezone(zone).date()
        for back in (2, 1, 0):
            day = today - timedelta(days=back)
            if _WEEKDAYS[day.weekday()] in self.days:
                yield _instant(day, start, zone), _instant(day, end, zone)


def _instant(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """Local wall time `minutes` past midnight of `day` -> UTC (gap: its end; overlap: fold 0)."""
    day += timedelta(days=minutes // _DAY)
    hour, minute = divmod(minutes % _DAY, 60)
    wall = datetime(day.year, day.month, day.day, hour, minute)
    utc = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first occurrence
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc
    # In a spring-forward gap: the first instant whose local wall time is at or past `wall`.
    low = int(wall.replace(tzinfo=zone, fold=1).timestamp())  # before the gap
    high = int(utc.timestamp())  # after the gap (fold=0 used the old offset)
    while high - low > 1:
        middle = (low + high) // 2
        local = datetime.fromtimestamp(middle, zone).replace(tzinfo=None)
        low, high = (middle, high) if local < wall else (low, middle)
    return datetime.fromtimestamp(high, UTC)


def held_until(now: datetime, severity: str, windows: Sequence[QuietWindow]) -> datetime | None:
    """If an alert of `severity` raised at `now` (aware, any tz) falls in a quiet window that
    holds that severity, the aware UTC datetime when the window (or a chain of
    overlapping/adjacent windows) ends; else None."""
    if now.utcoffset() is None:
        raise ValueError(f"{now.isoformat()} has no time zone")
    holding = [window for window in windows if severity in window.severities]
    at, until = now.astimezone(UTC), None
    for _ in range(MAX_CHAIN):
        ends = [e for w in holding for s, e in w.spans(at) if s <= at < e]
        if not ends:
            break
        at = until = max(ends)
    return until
