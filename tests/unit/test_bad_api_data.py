"""Property: whatever a page of job records looks like, parsing plus diffing never
crashes, never invents a transition, and names every record it skips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.models import JobState
from watcher.payload import parse_list
from watcher.tracker import diff

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
KNOWN = {f"jobs/{n}": "running" for n in range(6)}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.text(min_size=5000, max_size=6000),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers()),
    st.sampled_from(
        [
            "2026-13-01T00:00:00+00:00",
            "yesterday",
            "0001-01-01T00:00:00+05:00",
            "2026-03-29T01:30:00-23:59",
            "2026-03-29T01:30:00",
            "9999-12-31T23:59:59Z",
        ]
    ),
)
FIELDS = ["sref", "status", "name", "startedAt", "updatedAt", "pageCount", "type", "runType"]


def record(n: int, status: str) -> dict[str, Any]:
    return {
        "sref": f"jobs/{n}",
        "name": f"Job {n}",
        "status": status,
        "type": "Single",
        "startedAt": "2026-03-29T00:00:00+00:00",
        "updatedAt": "2026-03-29T01:00:00+00:00",
        "pageCount": 1,
        "runType": "manual",
        "jobTemplateUri": "jobTemplates/1",
    }


@st.composite
def pages(draw: st.DrawFn) -> list[Any]:
    items: list[Any] = []
    for n in range(6):
        item = record(n, draw(st.sampled_from(["running", "failed", "completed", "zombie"])))
        for _ in range(draw(st.integers(0, 2))):
            field = draw(st.sampled_from(FIELDS))
            if draw(st.booleans()):
                item.pop(field, None)
            else:
                item[field] = draw(junk)
        items.append(item)
        if draw(st.integers(0, 5)) == 0:
            items.append(dict(item))  # the same sref twice, as a shifting page shows it
    items += draw(st.lists(junk, max_size=3))  # records that are not even objects
    return items


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_any_page_parses_and_diffs_without_false_transitions(items: list[Any]) -> None:
    """Events only for records whose readable status differs; every skip is logged."""
    previous = {
        sref: JobState(
            sref=sref,
            status=status,
            status_since=NOW - timedelta(hours=1),
            first_seen=NOW - timedelta(hours=1),
        )
        for sref, status in KNOWN.items()
    }
    with structlog.testing.capture_logs() as logged:
        page = parse_list({"results": items, "meta": {}}, 1)
    skipped = [e for e in logged if e["event"] == "job_record_skipped"]
    assert len(skipped) == page.skipped
    assert all(e["where"].startswith("page 1 item ") for e in skipped)
    result = diff(previous, page.jobs, NOW)
    parsed = {job.sref: job.status for job in page.jobs}
    for event in result.events:
        assert event.job.sref in parsed
        assert event.to_status == parsed[event.job.sref]
        assert event.from_status in ("new", KNOWN.get(event.job.sref))
        assert event.to_status != KNOWN.get(event.job.sref)
