"""What a person reads in a terminal: one timestamp format (UTC), ages ("3 min ago"),
durations ("3h 20m"), aligned columns, and colour only where it is wanted: on a
terminal, with NO_COLOR unset or empty (https://no-color.org).

Pure: the clock, and whether the stream is a terminal, come in as arguments. Text from
the API or from a person is escaped (logs.escape_controls) before it is measured or
painted, so that only our own colour codes ever reach the terminal raw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from watcher.logs import escape_controls

STAMP = "%Y-%m-%d %H:%M:%S"  # every time printed, in UTC; column headers say "(UTC)"
_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33"}


def colour_wanted(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Colour on a terminal only, and not when NO_COLOR is set to anything but ""."""
    return stream.isatty() and not env.get("NO_COLOR")


@dataclass(frozen=True, slots=True)
class Paint:
    """Wraps text in a colour's codes when `on`; otherwise gives it back as it is."""

    on: bool = False

    def __call__(self, text: str, style: str) -> str:
        if not self.on or not style or not text:
            return text
        return f"\x1b[{_CODES[style]}m{text}\x1b[0m"


def _utc(value: datetime | str) -> datetime:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def stamp(value: datetime | str | None) -> str:
    """A time as STAMP, in UTC; "-" for none."""
    return _utc(value).strftime(STAMP) if value else "-"


def duration(seconds: float) -> str:
    """`45s`, `12 min`, `3h`, `3h 20m`, `2d 4h`: two units at most, rounded down."""
    whole = max(int(seconds), 0)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes} min" if minutes else f"{secs}s"


def ago(value: datetime | str | None, now: datetime) -> str:
    """How long before `now`: "just now", "3 min ago"; "in 5 min" for a time to come."""
    if not value:
        return "-"
    seconds = (now - _utc(value)).total_seconds()
    if seconds < 0:
        return f"in {duration(-seconds)}"
    return "just now" if seconds < 5 else f"{duration(seconds)} ago"


def when(value: datetime | str | None, now: datetime) -> str:
    """A time and its age: `2026-12-01 14:03:05 (3 min ago)`; "never" for none."""
    return f"{stamp(value)} ({ago(value, now)})" if value else "never"


Cell = str | tuple[str, str]  # text, or (text, style)


def table(rows: Sequence[Sequence[Cell]], paint: Paint, indent: str = "") -> list[str]:
    """Rows as aligned columns, the first one a header (bold); the last column as long as
    it is. Widths are measured on the escaped text, before any colour is added."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i][0]) for row in cells) for i in range(len(cells[0]) - 1)]
    lines = []
    for number, row in enumerate(cells):
        padded = [(text.ljust(w), style) for (text, style), w in zip(row, widths, strict=False)]
        parts = [*padded, row[-1]]
        painted = [paint(text, "bold" if number == 0 else style) for text, style in parts]
        lines.append((indent + "  ".join(painted)).rstrip())
    return lines


def _cell(cell: Cell) -> tuple[str, str]:
    text, style = (cell, "") if isinstance(cell, str) else cell
    return escape_controls(text), style
