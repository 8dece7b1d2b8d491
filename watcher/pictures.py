"""What a series' chart shows, for an alert and for the status page: `chart.Series`
built from a `regressed`/`improved` alert's queued variables (its recent runs, baseline
and limit travel with it, so a chart is drawn at send time without a store read) or
from a stored series' state and its rule's thresholds. Pure: no I/O, no clock.

A run is drawn flagged when it is above the limit the chart shows (the band's top), so
the picture never contradicts itself; the detector's evidence is `watcher explain`'s.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from watcher import baseline, chart, fast
from watcher.models import PERF_KINDS, Alert
from watcher.store import SeriesRow

SVG_TYPE = "image/svg+xml"
_UNITS = {"pageSize": "B", "objectCount": ""}
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")

State = Literal["learning", "ok", "regressed"]


def unit(metric: str) -> str:
    """A metric's unit as the chart labels it: timings come in seconds."""
    return _UNITS.get(metric, "s" if metric in baseline.TIME_METRICS else "")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _flags(values: Sequence[float], limit: float | None) -> list[bool]:
    return [limit is not None and v > limit for v in values]


def from_perf(perf: Mapping[str, Any]) -> chart.Series | None:
    """The chart of a regressed/improved event's variables; None without any run (an
    alert queued before charts, or odd data: the alert goes without a picture)."""
    raw = perf.get("runs")
    numbers = (_number(v) for v in raw) if isinstance(raw, list) else ()
    values = [n for n in numbers if n is not None]
    if not values:
        return None
    metric = str(perf.get("metric") or "")
    median, limit = _number(perf.get("baseline")), _number(perf.get("limit"))
    page = perf.get("page_title") or perf.get("page_url") or ""
    browser = perf.get("browser") or ""
    title = f"{page} {metric}" + (f" ({browser})" if browser else "")
    return chart.Series(
        title=title,
        unit=unit(metric),
        values=values,
        flagged=_flags(values, limit),
        median=median,
        limit=limit if median is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Attachment:
    """A chart as a file for a channel: its name and its SVG text."""

    name: str
    svg: str


def for_alert(alert: Alert, number: int = 1) -> Attachment | None:
    """The chart of a regressed/improved alert, from the variables it was queued with;
    None for other alerts and for those that carry no runs. `number` tells a digest's
    charts apart. ValueError if the variables are not the queued shape."""
    if alert.kind not in PERF_KINDS or not alert.variables:
        return None
    variables = fast.named_variables(json.loads(alert.variables))
    series = from_perf(variables["event"])
    if series is None:
        return None
    metric = _NAME_UNSAFE.sub("-", str(variables["event"].get("metric") or "series"))[:40]
    return Attachment(name=f"{alert.kind}-{metric}-{number}.svg", svg=chart.svg(series))


@dataclass(frozen=True, slots=True)
class Standing:
    """A stored series as the status page and the API show it."""

    state: State
    latest: float | None  # the last value judged
    median: float | None  # the baseline's (None while learning)
    limit: float | None
    runs: int  # values in the baseline
    needed: int  # min_runs: values a baseline needs before any verdict
    recent: tuple[float, ...]  # oldest first, up to baseline.RECENT
    series: chart.Series


def standing(row: SeriesRow, thresholds: baseline.Thresholds) -> Standing:
    """A stored series against its rule's thresholds. ValueError if its state is
    unreadable (the caller shows it as such)."""
    state = baseline.SeriesState.from_json(row.state)
    band = baseline.band(state.baseline, thresholds)
    recent = (state.baseline + state.since + state.pending)[-baseline.RECENT :]
    median = band.median if band else None
    limit = band.limit if band else None
    shown: State = "learning" if band is None else "regressed" if state.regressed else "ok"
    _template, _page, browser, metric = row.key
    title = f"{metric} ({browser})" if browser else metric
    return Standing(
        state=shown,
        latest=recent[-1] if recent else None,
        median=median,
        limit=limit,
        runs=len(state.baseline),
        needed=thresholds.min_runs,
        recent=recent,
        series=chart.Series(
            title=title,
            unit=unit(metric),
            values=recent,
            flagged=_flags(recent, limit),
            median=median,
            limit=limit,
        ),
    )
