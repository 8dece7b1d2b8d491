"""`missed` on a cron schedule: which scheduled time a template missed, across the DST
changes of Europe/London and America/New_York, weekday schedules, grace, early and late
starts, and keys that make each missed run one alert across cycles and restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watcher import render
from watcher.models import EventKind, TemplateState
from watcher.settings import Rule
from watcher.timers import missed, missed_slot

TEMPLATE = "jobTemplates/6789"
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)


def utc(month: int, day: int, hour: int, minute: int = 0, year: int = 2024) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def scheduled(
    schedule: str, timezone: str = "UTC", grace: str = "0s", name: str = "nightly", **more: Any
) -> Rule:
    match = {"event": "missed", "template": TEMPLATE, "schedule": schedule, "grace": grace}
    if timezone != "UTC":
        match["timezone"] = timezone
    return Rule.model_validate({"name": name, "notify": ["x"], "match": match | more})


def template(last_start: datetime | None = None, since: datetime = LONG_AGO) -> TemplateState:
    return TemplateState(
        template=TEMPLATE, watching_since=since, last_start=last_start, last_name="Nightly"
    )


# (case, schedule, time zone, now, the scheduled time judged): no job since long ago, grace 0
SLOTS = [
    # Europe/London: clocks go forward on 31 March 2024 at 01:00 UTC (01:00 GMT -> 02:00 BST)
    (
        "London 01:30, the day before",
        "30 1 * * *",
        "Europe/London",
        utc(3, 31, 1, 29),
        utc(3, 30, 1, 30),
    ),
    # 01:30 does not exist that day: the instant with the offset before the change, 02:30 BST
    (
        "London 01:30 that does not exist",
        "30 1 * * *",
        "Europe/London",
        utc(3, 31, 1, 30),
        utc(3, 31, 1, 30),
    ),
    (
        "London 01:30 BST, the day after",
        "30 1 * * *",
        "Europe/London",
        utc(4, 1, 0, 30),
        utc(4, 1, 0, 30),
    ),
    (
        "London 02:00, first BST morning",
        "0 2 * * *",
        "Europe/London",
        utc(3, 31, 1, 0),
        utc(3, 31, 1, 0),
    ),
    (
        "London 02:00, a minute early",
        "0 2 * * *",
        "Europe/London",
        utc(3, 31, 0, 59),
        utc(3, 30, 2, 0),
    ),
    # and back on 27 October 2024 at 01:00 UTC (02:00 BST -> 01:00 GMT): 01:00-02:00 twice
    (
        "London 01:30 BST, first of two",
        "30 1 * * *",
        "Europe/London",
        utc(10, 27, 0, 30),
        utc(10, 27, 0, 30),
    ),
    (
        "London 01:30 GMT, the repeat is no run",
        "30 1 * * *",
        "Europe/London",
        utc(10, 27, 1, 45),
        utc(10, 27, 0, 30),
    ),
    (
        "London 01:30 GMT, the day after",
        "30 1 * * *",
        "Europe/London",
        utc(10, 28, 1, 30),
        utc(10, 28, 1, 30),
    ),
    (
        "London 02:00 GMT on the day",
        "0 2 * * *",
        "Europe/London",
        utc(10, 27, 2, 0),
        utc(10, 27, 2, 0),
    ),
    (
        "London 02:00, the hour before it",
        "0 2 * * *",
        "Europe/London",
        utc(10, 27, 1, 59),
        utc(10, 26, 1, 0),
    ),
    # America/New_York: forward on 10 March 2024 at 07:00 UTC (02:00 EST -> 03:00 EDT)
    (
        "New York 02:30 that does not exist",
        "30 2 * * *",
        "America/New_York",
        utc(3, 10, 7, 30),
        utc(3, 10, 7, 30),
    ),
    (
        "New York 02:30, not yet",
        "30 2 * * *",
        "America/New_York",
        utc(3, 10, 7, 29),
        utc(3, 9, 7, 30),
    ),
    (
        "New York 02:30 EDT, the day after",
        "30 2 * * *",
        "America/New_York",
        utc(3, 11, 6, 30),
        utc(3, 11, 6, 30),
    ),
    (
        "New York 01:30 EST before the change",
        "30 1 * * *",
        "America/New_York",
        utc(3, 10, 6, 30),
        utc(3, 10, 6, 30),
    ),
    # and back on 3 November 2024 at 06:00 UTC (02:00 EDT -> 01:00 EST): 01:00-02:00 twice
    (
        "New York 01:30 EDT, first of two",
        "30 1 * * *",
        "America/New_York",
        utc(11, 3, 5, 30),
        utc(11, 3, 5, 30),
    ),
    (
        "New York 01:30 EST, the repeat is no run",
        "30 1 * * *",
        "America/New_York",
        utc(11, 3, 6, 45),
        utc(11, 3, 5, 30),
    ),
    (
        "New York 02:00 EST on the day",
        "0 2 * * *",
        "America/New_York",
        utc(11, 3, 7, 0),
        utc(11, 3, 7, 0),
    ),
    (
        "New York 02:00 EST, the day after",
        "0 2 * * *",
        "America/New_York",
        utc(11, 4, 7, 0),
        utc(11, 4, 7, 0),
    ),
    # weekdays only (crontab 1-5 is Monday to Friday; APScheduler alone: Tuesday to Saturday)
    (
        "weekdays: Saturday judges Friday",
        "0 2 * * 1-5",
        "Europe/London",
        utc(3, 9, 12),
        utc(3, 8, 2),
    ),
    (
        "weekdays: Monday before 02:00 judges Friday",
        "0 2 * * 1-5",
        "Europe/London",
        utc(3, 11, 1),
        utc(3, 8, 2),
    ),
    ("weekdays: Monday 02:00", "0 2 * * 1-5", "Europe/London", utc(3, 11, 2), utc(3, 11, 2)),
    ("weekdays: first BST Monday", "0 2 * * mon-fri", "Europe/London", utc(4, 1, 1), utc(4, 1, 1)),
    (
        "weekdays: Sunday of the change judges Friday",
        "0 2 * * 1-5",
        "Europe/London",
        utc(3, 31, 12),
        utc(3, 29, 2),
    ),
    ("Sundays as 0", "0 2 * * 0", "America/New_York", utc(3, 12, 12), utc(3, 10, 7)),
    ("Sundays as 7", "0 2 * * 7", "America/New_York", utc(3, 12, 12), utc(3, 10, 7)),
    ("UTC by default", "0 2 * * *", "UTC", utc(7, 1, 2), utc(7, 1, 2)),
]


@pytest.mark.parametrize(
    ("schedule", "timezone", "now", "slot"), [pytest.param(*c[1:], id=c[0]) for c in SLOTS]
)
def test_scheduled_time_judged(schedule: str, timezone: str, now: datetime, slot: datetime) -> None:
    """Each row: the latest scheduled time at or before now (grace 0), in UTC."""
    assert missed_slot(template(), scheduled(schedule, timezone), now) == slot


# (case, grace, now, the template's last start, the scheduled time missed or None), for a
# daily 02:00 Europe/London schedule (02:00 UTC in March)
STARTS = [
    ("on time", "30m", utc(3, 5, 3), utc(3, 5, 2), None),
    ("within grace", "30m", utc(3, 5, 3), utc(3, 5, 2, 29), None),
    ("a little early, within grace before", "30m", utc(3, 5, 3), utc(3, 5, 1, 40), None),
    ("exactly grace early", "30m", utc(3, 5, 3), utc(3, 5, 1, 30), None),
    ("earlier than grace before", "30m", utc(3, 5, 3), utc(3, 5, 1, 29), utc(3, 5, 2)),
    ("the day before only", "30m", utc(3, 5, 3), utc(3, 4, 2), utc(3, 5, 2)),
    ("late, but seen before it was judged", "30m", utc(3, 5, 3), utc(3, 5, 2, 45), None),
    ("never started", "30m", utc(3, 5, 3), None, utc(3, 5, 2)),
    (
        "grace not over yet: the day before is judged, and ran",
        "30m",
        utc(3, 5, 2, 29),
        utc(3, 4, 2),
        None,
    ),
    ("grace just over", "30m", utc(3, 5, 2, 30), utc(3, 4, 2), utc(3, 5, 2)),
    ("grace 0: a minute early is another run", "0s", utc(3, 5, 3), utc(3, 5, 1, 59), utc(3, 5, 2)),
    ("grace 0: on the minute", "0s", utc(3, 5, 3), utc(3, 5, 2), None),
]


@pytest.mark.parametrize(
    ("grace", "now", "last_start", "slot"), [pytest.param(*c[1:], id=c[0]) for c in STARTS]
)
def test_which_starts_count(
    grace: str, now: datetime, last_start: datetime | None, slot: datetime | None
) -> None:
    """Each row: a start from grace before a scheduled time onwards counts for it."""
    configured = scheduled("0 2 * * *", "Europe/London", grace)
    assert missed_slot(template(last_start), configured, now) == slot


# (case, last start, the scheduled time missed or None): every 10 minutes, grace 30m, at 12:30
FREQUENT = [
    ("the run before does not count for the next", utc(3, 5, 11, 50), utc(3, 5, 12)),
    ("early by less than half the interval counts", utc(3, 5, 11, 56), None),
    ("early by half the interval counts", utc(3, 5, 11, 55), None),
    ("late by more than the interval still counts", utc(3, 5, 12, 15), None),
]


@pytest.mark.parametrize(("last_start", "slot"), [pytest.param(*c[1:], id=c[0]) for c in FREQUENT])
def test_early_starts_count_for_the_nearest_run(
    last_start: datetime, slot: datetime | None
) -> None:
    """Each row: `early` is grace but at most half the time since the previous run."""
    configured = scheduled("*/10 * * * *", grace="30m")
    assert missed_slot(template(last_start), configured, utc(3, 5, 12, 30)) == slot


def test_scheduled_times_before_watching_began_are_not_judged() -> None:
    """A template watched from 02:10 has not missed 02:00's run: the watcher was not there."""
    configured = scheduled("0 2 * * *", grace="30m")
    assert missed_slot(template(None, since=utc(3, 5, 2, 10)), configured, utc(3, 5, 12)) is None
    assert missed_slot(template(None, since=utc(3, 5, 2)), configured, utc(3, 5, 12)) == utc(
        3, 5, 2
    )


def keys_over(rule: Rule, known: TemplateState, start: datetime, end: datetime) -> list[str]:
    """The new event keys that cycles every 5 minutes from start to end would record."""
    recorded: list[str] = []
    now = start
    while now <= end:
        for event in missed({TEMPLATE: known}, [rule], now):
            if event.key not in recorded:
                recorded.append(event.key)
        now += 5 * MINUTE
    return recorded


def test_each_missed_run_is_one_alert_across_cycles() -> None:
    """A template that stops: each missed scheduled time gives one key, however many
    cycles see it (here weekdays, over a week with the spring-forward change)."""
    configured = scheduled("0 2 * * 1-5", "Europe/London", "45m")
    keys = keys_over(configured, template(utc(3, 22, 2)), utc(3, 22, 12), utc(4, 2, 12))
    missed_at = [utc(3, 25, 2), utc(3, 26, 2), utc(3, 27, 2), utc(3, 28, 2), utc(3, 29, 2)]
    missed_at += [utc(4, 1, 1), utc(4, 2, 1)]  # 02:00 BST
    assert keys == [
        f"missed:{TEMPLATE}:missed:nightly:{int(t.timestamp()) // 60}" for t in missed_at
    ]


def test_the_repeated_hour_gives_no_second_alert() -> None:
    """A daily 01:30 in New York on the day clocks go back is one run, alerted once."""
    configured = scheduled("30 1 * * *", "America/New_York", "15m")
    keys = keys_over(configured, template(utc(11, 1, 5, 30)), utc(11, 2, 12), utc(11, 3, 12))
    assert keys == [
        f"missed:{TEMPLATE}:missed:nightly:{int(utc(11, 2, 5, 30).timestamp()) // 60}",
        f"missed:{TEMPLATE}:missed:nightly:{int(utc(11, 3, 5, 30).timestamp()) // 60}",
    ]


def test_a_job_on_time_prevents_the_event() -> None:
    """Runs that start on schedule give no event at any cycle."""
    configured = scheduled("0 2 * * *", "Europe/London", "30m")
    for day in range(1, 8):
        known = template(utc(3, day, 2, 1))  # this morning's run, a minute late
        cycles = [utc(3, day, 2, 31) + m * MINUTE for m in range(0, 23 * 60, 7)]
        assert [e for now in cycles for e in missed({TEMPLATE: known}, [configured], now)] == []


def test_keys_are_stable_across_restarts() -> None:
    """The key names the scheduled time (UTC epoch minutes), not the cycle: a restarted
    watcher, later, with the same stored state, makes the same key (already recorded)."""
    configured = scheduled("0 2 * * *", "Europe/London", "30m")
    known = {TEMPLATE: template(utc(3, 4, 2))}
    before = missed(known, [configured], utc(3, 5, 2, 35))
    after = missed(known, [scheduled("0 2 * * *", "Europe/London", "30m")], utc(3, 5, 9, 12))
    assert [e.key for e in before] == [e.key for e in after]
    assert [e.seq for e in after] == [int(utc(3, 5, 2).timestamp()) // 60]


def test_after_a_long_downtime_only_the_latest_missed_run_fires() -> None:
    """Ten days down with no run: one event, for the latest scheduled time, its
    stuck_for the time since then."""
    configured = scheduled("0 2 * * *", grace="30m")
    (event,) = missed({TEMPLATE: template(utc(3, 1, 2))}, [configured], utc(3, 11, 3))
    assert (event.seq, event.stuck_for) == (int(utc(3, 11, 2).timestamp()) // 60, 3600.0)


def test_missed_run_event_fields_and_default_text() -> None:
    """The event names the template's last job and start; the default body renders."""
    configured = scheduled("0 2 * * *", grace="30m")
    (event,) = missed({TEMPLATE: template(utc(3, 4, 2))}, [configured], utc(3, 5, 2, 30))
    assert (event.kind, event.rule, event.job.name, event.job.started_at, event.stuck_for) == (
        EventKind.MISSED,
        "nightly",
        "Nightly",
        utc(3, 4, 2),
        1800.0,
    )
    variables = render.context(event, "nightly", "warning")
    body = render.render(render.DEFAULT_BODIES[EventKind.MISSED], variables)
    assert "started when due: none for 0.5 hours" in body
    assert (
        render.render(render.DEFAULT_TITLES[EventKind.MISSED], variables) == "Nightly did not run"
    )


def test_every_and_schedule_rules_on_one_template() -> None:
    """An every rule and a schedule rule on one template are judged each by its own."""
    rules = [
        scheduled("0 2 * * *", grace="30m", name="cron"),
        Rule.model_validate(
            {
                "name": "daily",
                "notify": ["x"],
                "match": {"event": "missed", "template": TEMPLATE, "every": "24h"},
            }
        ),
    ]
    events = missed({TEMPLATE: template(utc(3, 4, 1))}, rules, utc(3, 5, 2, 30))
    assert [e.rule for e in events] == ["cron", "daily"]
