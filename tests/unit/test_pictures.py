"""What a series' chart shows: from an alert's queued variables (its runs, baseline and
limit; hostile page names escaped; alerts queued without them) and from a stored
series (learning, ok, regressed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from watcher import baseline, chart, fast, pictures
from watcher.models import Alert, Event, EventKind, Job, Severity
from watcher.store import SeriesRow

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
NS = {"s": "http://www.w3.org/2000/svg"}
RED, GREEN = "#d64545", "#2f9e5b"
HOSTILE = '<script>alert(1)</script>"&'
KEY = ("jobTemplates/6789", "https://shop.example.com/checkout?q=<b>", "Chrome", "onLoad")
PERF: dict[str, object] = {
    "metric": "onLoad",
    "value": 2.1,
    "baseline": 1.5,
    "delta": 0.6,
    "percent": 40.0,
    "page_title": "Checkout",
    "page_url": "https://shop.example.com/checkout",
    "browser": "Chrome",
    "runs": [1.5, 1.49, 1.52, 2.08, 2.1],
    "limit": 1.65,
}


def queued(perf: dict[str, object] | None, kind: EventKind = EventKind.REGRESSED) -> Alert:
    """An alert as the outbox keeps it, its variables written by `fast.variable_list`."""
    job = Job(sref="jobs/1", name="Nightly", status="completed", template=KEY[0])
    event = Event(kind, job, "completed", "x", T0, seq=1, perf=perf)
    return Alert(
        kind=kind,
        rule="slower",
        channel="team",
        severity=Severity.WARNING,
        sref=job.sref,
        variables=fast.variable_list(event, None),
    )


def colours(svg: str) -> list[str | None]:
    root = ET.fromstring(svg)  # noqa: S314  # our own output
    return [c.get("fill") for c in root.findall("s:circle", NS)]


def test_an_alert_s_chart_is_drawn_from_the_variables_it_was_queued_with() -> None:
    chart = pictures.for_alert(queued(PERF))
    assert chart is not None
    assert chart.name == "regressed-onLoad-1.svg"
    assert colours(chart.svg) == [GREEN] * 3 + [RED] * 2
    assert "Checkout onLoad (Chrome)" in chart.svg


def test_a_hostile_page_name_is_text_in_the_chart() -> None:
    chart = pictures.for_alert(queued({**PERF, "page_title": HOSTILE, "metric": "../x y"}))
    assert chart is not None
    assert "<script>" not in chart.svg
    assert "&lt;script&gt;" in chart.svg
    assert chart.name == "regressed--x-y-1.svg"  # nothing of a path in a file name
    ET.fromstring(chart.svg)  # noqa: S314  # still well-formed


def test_no_limit_no_band_and_no_red_and_no_runs_no_chart() -> None:
    chart = pictures.for_alert(queued({**PERF, "limit": None}))
    assert chart is not None
    assert colours(chart.svg) == [GREEN] * 5
    assert pictures.for_alert(queued({**PERF, "runs": []})) is None
    assert pictures.for_alert(queued({**PERF, "runs": ["x", None, True]})) is None
    assert pictures.for_alert(queued(None, EventKind.TRANSITION)) is None


def test_an_alert_queued_without_perf_variables_has_no_chart() -> None:
    alert = queued(PERF)
    alert.variables = alert.variables[: alert.variables.rindex(",{")] + "]"  # no perf object
    assert pictures.for_alert(alert) is None


def test_units_by_metric() -> None:
    assert [pictures.unit(m) for m in ("onLoad", "pageSize", "objectCount", "x")] == [
        "s",
        "B",
        "",
        "",
    ]


def stored(values: tuple[float, ...], **state: object) -> SeriesRow:
    series = baseline.SeriesState(baseline=values, **state)  # type: ignore[arg-type]
    return SeriesRow(KEY, series.to_json().decode(), 0, T0)


def test_a_stored_series_is_learning_ok_or_regressed() -> None:
    thresholds = baseline.Thresholds.for_metric("onLoad", min_runs=6)
    learning = pictures.standing(stored((1.5, 1.6)), thresholds)
    assert (learning.state, learning.median, learning.latest, learning.needed) == (
        "learning",
        None,
        1.6,
        6,
    )
    steady = (1.5, 1.52, 1.48, 1.5, 1.51, 1.49)
    ok = pictures.standing(stored(steady), thresholds)
    assert ok.state == "ok"
    assert ok.median == 1.5
    assert ok.limit is not None
    assert ok.limit > 1.5
    slow = pictures.standing(stored(steady, regressed=True, since=(2.2, 2.3)), thresholds)
    assert slow.state == "regressed"
    assert slow.latest == 2.3
    assert colours(chart.svg(slow.series)) == [GREEN] * 6 + [RED] * 2
