"""What a terminal shows: ages, durations, one timestamp format, columns, colour."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import pytest

from watcher import terminal

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45.9, "45s"),
        (60, "1 min"),
        (3 * 60 + 59, "3 min"),
        (3600, "1h"),
        (3 * 3600 + 20 * 60, "3h 20m"),
        (86400, "1d"),
        (2 * 86400 + 4 * 3600 + 59, "2d 4h"),
        (-5, "0s"),
    ],
)
def test_durations_read_in_two_units_at_most(seconds: float, text: str) -> None:
    """Rounded down, the larger units first."""
    assert terminal.duration(seconds) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=2), "just now"),
        (timedelta(minutes=3, seconds=10), "3 min ago"),
        (timedelta(hours=26), "1d 2h ago"),
        (timedelta(minutes=-5), "in 5 min"),
    ],
)
def test_ages_are_relative_to_now(delta: timedelta, text: str) -> None:
    """Past times are "ago", times to come "in"."""
    assert terminal.ago(NOW - delta, NOW) == text
    assert terminal.ago((NOW - delta).isoformat(), NOW) == text


def test_one_timestamp_format_in_utc() -> None:
    """Whatever the offset given, the time printed is UTC in one format."""
    plus_two = timezone(timedelta(hours=2))
    assert terminal.stamp("2026-12-01T16:00:05+02:00") == "2026-12-01 14:00:05"
    assert terminal.stamp(datetime(2026, 12, 1, 16, 0, 5, tzinfo=plus_two)) == "2026-12-01 14:00:05"
    assert (terminal.stamp(None), terminal.when(None, NOW)) == ("-", "never")


def test_columns_align_on_the_escaped_text_and_ignore_colour() -> None:
    """Colour codes add no width; a control character from the API is escaped first."""
    rows: list[list[terminal.Cell]] = [["A", "B", "C"], [("x\x1b", "red"), "yy", "last"]]
    plain = terminal.table(rows, terminal.Paint(False))
    assert plain == ["A      B   C", "x\\x1b  yy  last"]
    painted = terminal.table(rows, terminal.Paint(True))
    assert painted[1] == "\x1b[31mx\\x1b\x1b[0m  yy  last"
    assert painted[0].startswith("\x1b[1mA    \x1b[0m")


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "env", "wanted"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
    ],
)
def test_colour_only_on_a_terminal_without_no_color(
    tty: bool, env: dict[str, str], wanted: bool
) -> None:
    assert terminal.colour_wanted(_Stream(tty), env) is wanted
