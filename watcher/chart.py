"""A small chart of one performance series, as SVG written by hand: its recent values
(oldest left), the baseline's band (median to the flagging limit) and the flagged runs.
No plotting library: the picture is a few dozen elements, and text, so it goes into an
e-mail attachment, a chat upload or the status page (inline, allowed by its CSP as an
image) alike. Pure: values in, text out; every label is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 480, 160
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 44, 12, 22, 18
_OK, _BAD, _BAND, _LINE, _INK = "#2f9e5b", "#d64545", "#e8eef7", "#4a6fa5", "#1c2430"


@dataclass(frozen=True, slots=True)
class Series:
    """What a chart shows: `values` oldest first, `flagged` their flags (same length),
    the baseline `median` and `limit` (None before the baseline has enough runs)."""

    title: str
    unit: str
    values: Sequence[float]
    flagged: Sequence[bool]
    median: float | None = None
    limit: float | None = None


def svg(series: Series) -> str:
    """The chart as a standalone SVG document."""
    values = [v for v in series.values if math.isfinite(v)]
    if not values:
        return _frame(series, "")
    top, bottom = _range(values, series)
    y = _Scale(top, bottom)
    step = (WIDTH - _PAD_LEFT - _PAD_RIGHT) / max(1, len(series.values) - 1)
    parts: list[str] = []
    if series.median is not None and series.limit is not None:
        upper, lower = y(series.limit), y(series.median)
        parts.append(
            f'<rect x="{_PAD_LEFT}" y="{upper:.1f}" width="{WIDTH - _PAD_LEFT - _PAD_RIGHT}"'
            f' height="{max(0.5, lower - upper):.1f}" fill="{_BAND}"/>'
            f'<line x1="{_PAD_LEFT}" x2="{WIDTH - _PAD_RIGHT}" y1="{lower:.1f}" y2="{lower:.1f}"'
            f' stroke="{_LINE}" stroke-dasharray="4 3"/>'
        )
    points = [
        (_PAD_LEFT + n * step, y(v), flag)
        for n, (v, flag) in enumerate(zip(series.values, series.flagged, strict=True))
        if math.isfinite(v)
    ]
    path = " ".join(f"{x:.1f},{py:.1f}" for x, py, _ in points)
    parts.append(f'<polyline points="{path}" fill="none" stroke="{_LINE}" stroke-width="1.5"/>')
    for x, py, flag in points:
        colour = _BAD if flag else _OK
        parts.append(f'<circle cx="{x:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"/>')
    parts.append(_axis(top, bottom, y, series.unit))
    return _frame(series, "".join(parts))


def _range(values: Sequence[float], series: Series) -> tuple[float, float]:
    """The value at the top and at the bottom of the plot, with a margin."""
    shown = [*values, *(v for v in (series.median, series.limit) if v is not None)]
    high, low = max(shown), min(shown)
    margin = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    return high + margin, max(0.0, low - margin) if low >= 0 else low - margin


@dataclass(frozen=True, slots=True)
class _Scale:
    top: float
    bottom: float

    def __call__(self, value: float) -> float:
        span = self.top - self.bottom or 1.0
        inner = HEIGHT - _PAD_TOP - _PAD_BOTTOM
        return _PAD_TOP + (self.top - value) / span * inner


def _axis(top: float, bottom: float, y: _Scale, unit: str) -> str:
    labels = []
    for value in (top, (top + bottom) / 2, bottom):
        labels.append(
            f'<text x="{_PAD_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end"'
            f' font-size="10" font-family="sans-serif" fill="{_INK}">'
            f"{escape(quantity(value, unit))}</text>"
        )
    return "".join(labels)


def quantity(value: float, unit: str) -> str:
    """A value as the chart labels it: times under a second in milliseconds."""
    if unit == "s" and value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.3g} {unit}".strip()


def _frame(series: Series, body: str) -> str:
    title = escape(series.title)
    label = escape(series.title, {'"': "&quot;"})
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>'
        f'<text x="{_PAD_LEFT}" y="14" font-size="12" font-family="sans-serif"'
        f' fill="{_INK}">{title}</text>{body}</svg>'
    )
