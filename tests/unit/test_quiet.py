"""Quiet hours: which alerts a window holds back and the exact UTC instant it lets them go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from watcher.quiet import MAX_CHAIN, QuietWindow, Weekday, held_until

LONDON = "Europe/London"
NEW_YORK = "America/New_York"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def window(spec: str, timezone: str = "UTC", severities: list[str] | None = None) -> QuietWindow:
    """'sat,sun 00:00-24:00' (days optional) -> a QuietWindow."""
    *days, times = spec.split()
    start, end = times.split("-")
    fields: dict[str, Any] = {"start": start, "end": end, "timezone": timezone}
    if days:
        fields["days"] = days[0].split(",")
    if severities is not None:
        fields["severities"] = severities
    return QuietWindow(**fields)


# 2026-03-02 is a Monday; 2026-03-06 a Friday.
BASIC = [
    ("inside", "09:00-17:00", utc(2026, 3, 2, 10), utc(2026, 3, 2, 17)),
    ("at start", "09:00-17:00", utc(2026, 3, 2, 9), utc(2026, 3, 2, 17)),
    ("at end", "09:00-17:00", utc(2026, 3, 2, 17), None),
    ("before", "09:00-17:00", utc(2026, 3, 2, 8, 59, 59), None),
    ("listed day", "mon 09:00-17:00", utc(2026, 3, 2, 10), utc(2026, 3, 2, 17)),
    ("unlisted day", "mon 09:00-17:00", utc(2026, 3, 3, 10), None),
    ("full day names", "Monday,TUESDAY 09:00-17:00", utc(2026, 3, 3, 10), utc(2026, 3, 3, 17)),
    ("past midnight, evening", "22:00-06:00", utc(2026, 3, 2, 23), utc(2026, 3, 3, 6)),
    ("past midnight, morning", "22:00-06:00", utc(2026, 3, 3, 5), utc(2026, 3, 3, 6)),
    ("past midnight, midday", "22:00-06:00", utc(2026, 3, 3, 12), None),
    ("starts fri, sat morning", "fri 22:00-06:00", utc(2026, 3, 7, 3), utc(2026, 3, 7, 6)),
    ("starts fri, fri morning", "fri 22:00-06:00", utc(2026, 3, 6, 3), None),
    ("24:00 is end of day", "mon 18:00-24:00", utc(2026, 3, 2, 23, 59), utc(2026, 3, 3)),
    ("24:00 excludes next day", "mon 18:00-24:00", utc(2026, 3, 3), None),
    ("whole day", "mon 00:00-24:00", utc(2026, 3, 2), utc(2026, 3, 3)),
    ("one minute", "12:00-12:01", utc(2026, 3, 2, 12, 0, 59), utc(2026, 3, 2, 12, 1)),
]


@pytest.mark.parametrize(
    ("spec", "now", "expected"), [case[1:] for case in BASIC], ids=[case[0] for case in BASIC]
)
def test_basic_windows(spec: str, now: datetime, expected: datetime | None) -> None:
    """Inside/outside, days of week, past midnight and 24:00 in UTC."""
    assert held_until(now, "info", [window(spec)]) == expected


# London: 2026-03-29 01:00 GMT -> 02:00 BST (01:00Z); 2026-10-25 02:00 BST -> 01:00 GMT (01:00Z).
# New York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z); 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).
DST = [
    (
        "LON weekend, sat, 23h sunday",
        LONDON,
        "sat,sun 00:00-24:00",
        utc(2026, 3, 28, 12),
        utc(2026, 3, 29, 23),
    ),
    (
        "LON weekend, sun after jump",
        LONDON,
        "sat,sun 00:00-24:00",
        utc(2026, 3, 29, 2),
        utc(2026, 3, 29, 23),
    ),
    ("LON weekend, monday BST", LONDON, "sat,sun 00:00-24:00", utc(2026, 3, 29, 23), None),
    ("LON weekend, fri GMT", LONDON, "sat,sun 00:00-24:00", utc(2026, 3, 27, 23, 59), None),
    (
        "LON weekend, 25h sunday",
        LONDON,
        "sat,sun 00:00-24:00",
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 26),
    ),
    (
        "LON weekend, sat starts BST",
        LONDON,
        "sat,sun 00:00-24:00",
        utc(2026, 10, 23, 23),
        utc(2026, 10, 26),
    ),
    ("LON weekend, fri 23:59 BST", LONDON, "sat,sun 00:00-24:00", utc(2026, 10, 23, 22, 59), None),
    ("LON nightly, 7h night", LONDON, "22:00-06:00", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 5)),
    (
        "LON nightly, 9h night",
        LONDON,
        "22:00-06:00",
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 25, 6),
    ),
    (
        "LON nightly, starts 22:00 BST",
        LONDON,
        "22:00-06:00",
        utc(2026, 10, 24, 21),
        utc(2026, 10, 25, 6),
    ),
    ("LON nightly, before 22:00 BST", LONDON, "22:00-06:00", utc(2026, 10, 24, 20, 59), None),
    ("LON start in gap", LONDON, "sun 01:30-03:00", utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)),
    ("LON before gap start", LONDON, "sun 01:30-03:00", utc(2026, 3, 29, 0, 59), None),
    (
        "NY weekend, 23h sunday",
        NEW_YORK,
        "sat,sun 00:00-24:00",
        utc(2026, 3, 7, 5),
        utc(2026, 3, 9, 4),
    ),
    (
        "NY weekend, 25h sunday",
        NEW_YORK,
        "sat,sun 00:00-24:00",
        utc(2026, 11, 1, 6, 30),
        utc(2026, 11, 2, 5),
    ),
    (
        "NY weekend, sat starts EDT",
        NEW_YORK,
        "sat,sun 00:00-24:00",
        utc(2026, 10, 31, 4),
        utc(2026, 11, 2, 5),
    ),
    ("NY weekend, monday EST", NEW_YORK, "sat,sun 00:00-24:00", utc(2026, 11, 2, 5), None),
    ("NY nightly, spring", NEW_YORK, "22:00-06:00", utc(2026, 3, 8, 7, 30), utc(2026, 3, 8, 10)),
    (
        "NY nightly, spring start EST",
        NEW_YORK,
        "22:00-06:00",
        utc(2026, 3, 8, 3),
        utc(2026, 3, 8, 10),
    ),
    ("NY nightly, fall", NEW_YORK, "22:00-06:00", utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 11)),
    (
        "NY nightly, fall start EDT",
        NEW_YORK,
        "22:00-06:00",
        utc(2026, 11, 1, 2),
        utc(2026, 11, 1, 11),
    ),
    ("NY nightly, fall after end", NEW_YORK, "22:00-06:00", utc(2026, 11, 1, 11), None),
    ("NY start 02:30 in gap", NEW_YORK, "sun 02:30-04:00", utc(2026, 3, 8, 7), utc(2026, 3, 8, 8)),
    ("NY before gap start", NEW_YORK, "sun 02:30-04:00", utc(2026, 3, 8, 6, 59, 59), None),
    (
        "NY end 02:30 in gap",
        NEW_YORK,
        "sun 01:00-02:30",
        utc(2026, 3, 8, 6, 30),
        utc(2026, 3, 8, 7),
    ),
    (
        "NY start ambiguous, fold 0",
        NEW_YORK,
        "sun 01:30-03:00",
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 8),
    ),
    ("NY before ambiguous start", NEW_YORK, "sun 01:30-03:00", utc(2026, 11, 1, 5, 29), None),
    (
        "NY end ambiguous, fold 0",
        NEW_YORK,
        "sun 00:00-01:30",
        utc(2026, 11, 1, 4),
        utc(2026, 11, 1, 5, 30),
    ),
    ("NY second 01:00 is after end", NEW_YORK, "sun 00:00-01:30", utc(2026, 11, 1, 6), None),
]


@pytest.mark.parametrize(
    ("zone", "spec", "now", "expected"), [c[1:] for c in DST], ids=[c[0] for c in DST]
)
def test_dst_edges(zone: str, spec: str, now: datetime, expected: datetime | None) -> None:
    """Wall times convert through zoneinfo: 23h/25h days, gap -> its end, overlap -> fold 0."""
    assert held_until(now, "info", [window(spec, zone)]) == expected


CHAINS = [
    ("adjacent", ["22:00-02:00", "02:00-06:00"], utc(2026, 3, 2, 23), utc(2026, 3, 3, 6)),
    ("overlapping", ["20:00-23:00", "22:00-01:00"], utc(2026, 3, 2, 21), utc(2026, 3, 3, 1)),
    (
        "inside the second only",
        ["20:00-23:00", "22:00-01:00"],
        utc(2026, 3, 2, 23, 30),
        utc(2026, 3, 3, 1),
    ),
    ("nested", ["20:00-23:00", "21:00-22:00"], utc(2026, 3, 2, 21, 30), utc(2026, 3, 2, 23)),
    ("one minute apart", ["22:00-02:00", "02:01-06:00"], utc(2026, 3, 2, 23), utc(2026, 3, 3, 2)),
    (
        "three in a row",
        ["mon 18:00-24:00", "tue 00:00-08:00", "tue 08:00-09:00"],
        utc(2026, 3, 2, 19),
        utc(2026, 3, 3, 9),
    ),
    (
        "weekend then monday",
        ["sat,sun 00:00-24:00", "mon 00:00-07:00"],
        utc(2026, 3, 7, 1),
        utc(2026, 3, 9, 7),
    ),
    (
        "always quiet stops at the cap",
        ["00:00-24:00"],
        utc(2026, 3, 2, 10),
        utc(2026, 3, 2) + timedelta(days=MAX_CHAIN),
    ),
]


@pytest.mark.parametrize(
    ("specs", "now", "expected"), [c[1:] for c in CHAINS], ids=[c[0] for c in CHAINS]
)
def test_chained_windows(specs: list[str], now: datetime, expected: datetime | None) -> None:
    """Overlapping or touching windows are held through to the end of the whole chain."""
    assert held_until(now, "info", [window(spec) for spec in specs]) == expected


SEVERITY_CASES = [
    ("default holds failure", None, "failure", utc(2026, 3, 2, 17)),
    ("listed", ["info", "success"], "success", utc(2026, 3, 2, 17)),
    ("not listed", ["info", "success"], "failure", None),
    ("not listed warning", ["info", "success"], "warning", None),
    ("listed in any case", ["INFO"], "info", utc(2026, 3, 2, 17)),
]


@pytest.mark.parametrize(
    ("held", "severity", "expected"),
    [c[1:] for c in SEVERITY_CASES],
    ids=[c[0] for c in SEVERITY_CASES],
)
def test_severities(held: list[str] | None, severity: str, expected: datetime | None) -> None:
    """Only the severities a window lists are held back by it."""
    quiet = window("09:00-17:00", severities=held)
    assert held_until(utc(2026, 3, 2, 10), severity, [quiet]) == expected


def test_chain_only_through_windows_holding_the_severity() -> None:
    """A touching window that does not hold the severity does not extend the hold."""
    windows = [window("22:00-02:00"), window("02:00-06:00", severities=["info"])]
    assert held_until(utc(2026, 3, 2, 23), "failure", windows) == utc(2026, 3, 3, 2)
    assert held_until(utc(2026, 3, 2, 23), "info", windows) == utc(2026, 3, 3, 6)


@pytest.mark.parametrize(
    "now",
    [datetime(2026, 3, 2, 11, tzinfo=ZoneInfo("Europe/Berlin")), utc(2026, 3, 2, 10)],
    ids=["berlin", "utc"],
)
def test_now_in_any_zone_answer_in_utc(now: datetime) -> None:
    """`now` may be in any time zone; the answer is an aware UTC datetime."""
    until = held_until(now, "info", [window("09:00-17:00")])
    assert until == utc(2026, 3, 2, 17)
    assert until is not None
    assert until.tzinfo is UTC


def test_no_windows_and_naive_now() -> None:
    """No windows holds nothing; a naive `now` is a programming error."""
    assert held_until(utc(2026, 3, 2, 10), "info", []) is None
    with pytest.raises(ValueError, match="has no time zone"):
        held_until(datetime(2026, 3, 2, 10), "info", [window("09:00-17:00")])


def test_defaults_and_normalised_values() -> None:
    """Defaults are every day, UTC and all four severities; names are normalised."""
    quiet = QuietWindow(start="22:00", end="06:00")
    assert quiet.days == list(Weekday)
    assert quiet.timezone == "UTC"
    assert quiet.severities == ["info", "success", "warning", "failure"]
    assert window("Sunday,SAT,mon 01:00-02:00").days == [Weekday.SUN, Weekday.SAT, Weekday.MON]


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("hour 25", {"start": "25:00"}, "'25:00' is not a time HH:MM from 00:00 to 23:59"),
    ("minute 60", {"end": "12:60"}, "'12:60' is not a time HH:MM from 00:00 to 24:00"),
    ("one-digit hour", {"start": "7:00"}, "'7:00' is not a time"),
    ("words", {"end": "noon"}, "'noon' is not a time"),
    ("start 24:00", {"start": "24:00"}, "'24:00' is not a time HH:MM from 00:00 to 23:59"),
    ("end 24:01", {"end": "24:01"}, "'24:01' is not a time HH:MM from 00:00 to 24:00"),
    ("unquoted YAML time", {"start": 1320}, "1320 is not HH:MM; quote times"),
    ("end == start", {"start": "06:00", "end": "06:00"}, "start and end are both '06:00'"),
    ("bad zone", {"timezone": "Europe/Londn"}, "'Europe/Londn' is not a time zone"),
    ("empty zone", {"timezone": ""}, "'' is not a time zone"),
    ("unknown day", {"days": ["sat", "funday"]}, "'funday' is not a day"),
    ("day not a list", {"days": "sat"}, "valid list"),
    ("no days", {"days": []}, "at least 1 item"),
    ("unknown severity", {"severities": ["critical"]}, "'critical' is not a severity"),
    ("no severities", {"severities": []}, "at least 1 item"),
    ("unknown key", {"tz": "UTC"}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(
    ("fields", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_windows(fields: dict[str, Any], message: str) -> None:
    """Bad values are rejected with a message naming the value."""
    with pytest.raises(ValidationError, match=message):
        QuietWindow(**{"start": "22:00", "end": "06:00", **fields})


def test_window_is_frozen() -> None:
    """A window cannot be changed once built."""
    quiet = window("22:00-06:00")
    with pytest.raises(ValidationError, match="frozen"):
        quiet.start = "23:00"  # type: ignore[misc]
