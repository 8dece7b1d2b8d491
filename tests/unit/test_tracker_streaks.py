"""Failure streaks per template: the tracker counts them, `recovered` ends them, and
`consecutive: N` rules fire on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from watcher import render
from watcher.models import NEW, Event, EventKind, Job, JobState, MatchReason, TemplateState
from watcher.rules import evaluate, match
from watcher.settings import Rule
from watcher.tracker import Diff, diff

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)  # when the jobs started
NOW = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)  # the cycle being diffed
TEMPLATE = "jobTemplates/6789"
OTHER = "jobTemplates/1111"


def job(
    status: str,
    sref: str = "jobs/1",
    minute: int = 30,
    template: str = TEMPLATE,
    started: datetime | None = T0,
    name: str = "Nightly home",
) -> Job:
    """A job as the API reports it, last updated `minute` minutes after T0."""
    return Job(
        sref=sref,
        name=name,
        status=status,
        started_at=started,
        updated_at=T0 + timedelta(minutes=minute),
        template=template,
    )


def running(sref: str = "jobs/1", template: str = TEMPLATE) -> JobState:
    """The stored state of a job last seen running."""
    return JobState(
        sref=sref,
        status="running",
        status_since=T0,
        first_seen=T0,
        updated_at=T0 + timedelta(minutes=5),
        started_at=T0,
        template=template,
        name="Nightly home",
    )


def template_state(
    streak: int = 0, last_start: datetime | None = None, last_name: str = "", name: str = TEMPLATE
) -> TemplateState:
    return TemplateState(
        template=name,
        watching_since=T0 - timedelta(days=1),
        streak=streak,
        last_start=last_start,
        last_name=last_name,
    )


def ending(streak: int, ends: list[tuple[str, str, int]]) -> tuple[Diff, TemplateState]:
    """One cycle in which jobs last seen running end as (sref, status, minute), with the
    template's streak at `streak` before it; returns the diff and the template afterwards."""
    before = template_state(streak)
    result = diff(
        {sref: running(sref) for sref, _, _ in ends},
        [job(status, sref, minute) for sref, status, minute in ends],
        NOW,
        templates={TEMPLATE: before},
    )
    return result, result.templates.get(TEMPLATE, before)


def summary(events: list[Event]) -> list[tuple[str, str, str, int]]:
    return [(str(e.kind), e.job.sref, e.to_status, e.streak) for e in events]


# (case, streak before, jobs ending as (sref, status, minute),
#  events as (kind, sref, to, streak), streak after)
STREAKS = [
    (
        "a failure starts a streak",
        0,
        [("jobs/1", "failed", 30)],
        [("transition", "jobs/1", "failed", 1)],
        1,
    ),
    (
        "a failure extends a streak",
        2,
        [("jobs/1", "failed", 30)],
        [("transition", "jobs/1", "failed", 3)],
        3,
    ),
    (
        "an expiry is a failure too",
        1,
        [("jobs/1", "expired", 30)],
        [("transition", "jobs/1", "expired", 2)],
        2,
    ),
    (
        "completed after a streak is a recovery and resets it",
        3,
        [("jobs/1", "completed", 30)],
        [("transition", "jobs/1", "completed", 0), ("recovered", "jobs/1", "completed", 3)],
        0,
    ),
    (
        "completed without a streak is no recovery",
        0,
        [("jobs/1", "completed", 30)],
        [("transition", "jobs/1", "completed", 0)],
        0,
    ),
    (
        "cancelled does not break a streak",
        2,
        [("jobs/1", "cancelled", 30)],
        [("transition", "jobs/1", "cancelled", 0)],
        2,
    ),
    (
        "cancelled does not start a streak",
        0,
        [("jobs/1", "cancelled", 30)],
        [("transition", "jobs/1", "cancelled", 0)],
        0,
    ),
    (
        "a cancelled job between a failure and a completion is skipped",
        1,
        [("jobs/1", "failed", 10), ("jobs/2", "cancelled", 20), ("jobs/3", "completed", 30)],
        [
            ("transition", "jobs/1", "failed", 2),
            ("transition", "jobs/2", "cancelled", 0),
            ("transition", "jobs/3", "completed", 0),
            ("recovered", "jobs/3", "completed", 2),
        ],
        0,
    ),
    (
        "two failures in one cycle count one each",
        0,
        [("jobs/1", "failed", 20), ("jobs/2", "expired", 30)],
        [("transition", "jobs/1", "failed", 1), ("transition", "jobs/2", "expired", 2)],
        2,
    ),
    (
        "failures in one cycle are counted in order of updatedAt, not of the page",
        0,
        [("jobs/1", "failed", 30), ("jobs/2", "failed", 20)],
        [("transition", "jobs/1", "failed", 2), ("transition", "jobs/2", "failed", 1)],
        2,
    ),
    (
        "a completion updated after a failure in one cycle is a recovery",
        0,
        [("jobs/1", "completed", 40), ("jobs/2", "failed", 20)],
        [
            ("transition", "jobs/1", "completed", 0),
            ("transition", "jobs/2", "failed", 1),
            ("recovered", "jobs/1", "completed", 1),
        ],
        0,
    ),
    (
        "a failure updated after a completion in one cycle starts a new streak",
        2,
        [("jobs/1", "failed", 40), ("jobs/2", "completed", 20)],
        [
            ("transition", "jobs/1", "failed", 1),
            ("transition", "jobs/2", "completed", 0),
            ("recovered", "jobs/2", "completed", 2),
        ],
        1,
    ),
    (
        "a job still running leaves the streak alone",
        2,
        [("jobs/1", "running", 30)],
        [],
        2,
    ),
]


@pytest.mark.parametrize(
    ("streak", "ends", "events", "after"),
    [pytest.param(*case[1:], id=case[0]) for case in STREAKS],
)
def test_streak_table(
    streak: int,
    ends: list[tuple[str, str, int]],
    events: list[tuple[str, str, str, int]],
    after: int,
) -> None:
    """Each row: the events one cycle emits, with their streaks, and the streak it leaves."""
    result, template = ending(streak, ends)
    assert summary(result.events) == events
    assert template.streak == after


def test_recovery_carries_the_transition_it_follows() -> None:
    """A recovery names the job, its previous status and the time it completed."""
    result, _ = ending(1, [("jobs/1", "completed", 30)])
    transition, recovered = result.events
    assert (recovered.kind, recovered.job, recovered.from_status, recovered.at) == (
        EventKind.RECOVERED,
        transition.job,
        "running",
        transition.at,
    )


def test_recovery_key_differs_from_the_transition_key() -> None:
    """A recovery is its own event for the dedup, once per job."""
    result, _ = ending(1, [("jobs/1", "completed", 30)])
    assert [e.key for e in result.events] == [
        "transition:jobs/1:completed",
        "recovered:jobs/1:completed",
    ]


def test_jobs_that_ended_in_the_same_second_are_ordered_by_start() -> None:
    """Same updatedAt: the job that started later ended last. Here the later one
    completed after the other failed (a recovery), whatever the order of the page."""
    later = T0 + timedelta(minutes=10)
    for page in ([0, 1], [1, 0]):
        ends = [
            job("completed", "jobs/2", minute=30, started=later),
            job("failed", "jobs/1", minute=30, started=T0),
        ]
        result = diff(
            {"jobs/1": running("jobs/1"), "jobs/2": running("jobs/2")},
            [ends[n] for n in page],
            NOW,
            templates={TEMPLATE: template_state(0)},
        )
        assert [(e.kind, e.job.sref) for e in result.events if e.kind == "recovered"] == [
            (EventKind.RECOVERED, "jobs/2")
        ]
        assert result.templates[TEMPLATE].streak == 0


def test_the_end_orders_jobs_before_the_start() -> None:
    """A job that started first but ended last is counted last: it failed after the
    other completed, so the streak is 1 and nothing recovered."""
    result = diff(
        {"jobs/1": running("jobs/1"), "jobs/2": running("jobs/2")},
        [
            job("failed", "jobs/1", minute=40, started=T0),
            job("completed", "jobs/2", minute=20, started=T0 + timedelta(minutes=10)),
        ],
        NOW,
        templates={TEMPLATE: template_state(0)},
    )
    assert [e.kind for e in result.events] == [EventKind.TRANSITION] * 2
    assert result.templates[TEMPLATE].streak == 1


def test_first_sighting_of_a_failed_job_counts_in_the_streak() -> None:
    """A job first seen already failed (not baseline) is a transition from new with a streak."""
    result = diff({}, [job("failed")], NOW, templates={TEMPLATE: template_state(1)})
    assert summary(result.events) == [("transition", "jobs/1", "failed", 2)]
    assert result.events[0].from_status == NEW


def test_jobs_without_a_template_are_ignored_for_streaks() -> None:
    """A failure of a job without a template carries no streak and touches no template."""
    result = diff(
        {"jobs/1": running(template="")},
        [job("failed", template="")],
        NOW,
        templates={TEMPLATE: template_state(2)},
    )
    assert summary(result.events) == [("transition", "jobs/1", "failed", 0)]
    assert result.templates == {}


def test_streaks_are_kept_per_template() -> None:
    """A failure of one template neither extends nor breaks another template's streak."""
    result = diff(
        {"jobs/1": running(template=OTHER)},
        [job("failed", template=OTHER)],
        NOW,
        templates={TEMPLATE: template_state(2), OTHER: template_state(0, name=OTHER)},
    )
    assert summary(result.events) == [("transition", "jobs/1", "failed", 1)]
    assert set(result.templates) == {OTHER}


def test_template_first_failing_is_watched_since_now() -> None:
    """A template the watcher has never seen starts being watched in this cycle."""
    result = diff({}, [job("failed")], NOW)
    assert (result.templates[TEMPLATE].watching_since, result.templates[TEMPLATE].streak) == (
        NOW,
        1,
    )


def test_baseline_counts_ended_jobs_into_the_streak_silently() -> None:
    """The first run ever records earlier failures in the streak without emitting events."""
    result = diff(
        {}, [job("failed", "jobs/1", 10), job("expired", "jobs/2", 20)], NOW, baseline=True
    )
    assert (result.events, result.templates[TEMPLATE].streak) == ([], 2)


def test_baseline_completion_after_failure_resets_silently() -> None:
    """In the baseline a completion after a failure resets the streak with no recovery."""
    result = diff(
        {}, [job("completed", "jobs/1", 30), job("failed", "jobs/2", 20)], NOW, baseline=True
    )
    assert (result.events, result.templates[TEMPLATE].streak) == ([], 0)


def test_completion_after_a_baseline_failure_is_a_recovery() -> None:
    """A job completing in the cycle after a baseline failure recovers a streak of one."""
    first = diff({}, [job("failed", "jobs/1", 10)], NOW, baseline=True)
    later = NOW + timedelta(minutes=1)
    second = diff(
        {s.sref: s for s in first.states},
        [job("failed", "jobs/1", 10), job("completed", "jobs/2", 50)],
        later,
        templates=first.templates,
    )
    assert summary(second.events) == [
        ("transition", "jobs/2", "completed", 0),
        ("recovered", "jobs/2", "completed", 1),
    ]


# (case, template before as (last_start, last_name) or None, first-seen jobs as
#  (sref, name, started_at), last_start and last_name after)
LAST_START = [
    ("the first job sets the last start", None, [("jobs/1", "A", T0)], (T0, "A")),
    (
        "the newest start of one cycle wins",
        None,
        [("jobs/1", "A", T0 + timedelta(minutes=10)), ("jobs/2", "B", T0 + timedelta(minutes=5))],
        (T0 + timedelta(minutes=10), "A"),
    ),
    (
        "a newer start moves the last start",
        (T0, "K"),
        [("jobs/1", "A", T0 + timedelta(minutes=10))],
        (T0 + timedelta(minutes=10), "A"),
    ),
    (
        "an older start does not move it back",
        (T0 + timedelta(minutes=20), "K"),
        [("jobs/1", "A", T0 + timedelta(minutes=10))],
        (T0 + timedelta(minutes=20), "K"),
    ),
    ("a job without startedAt does not count", None, [("jobs/1", "A", None)], (None, "")),
]


@pytest.mark.parametrize(
    ("before", "seen", "after"),
    [pytest.param(*case[1:], id=case[0]) for case in LAST_START],
)
def test_last_start_table(
    before: tuple[datetime, str] | None,
    seen: list[tuple[str, str, datetime | None]],
    after: tuple[datetime | None, str],
) -> None:
    """Each row: a template's last start and last job name after first sightings."""
    known = template_state(0, *before) if before else template_state(0)
    result = diff(
        {},
        [job("running", sref, name=name, started=started) for sref, name, started in seen],
        NOW,
        templates={TEMPLATE: known},
    )
    template = result.templates.get(TEMPLATE, known)
    assert (template.last_start, template.last_name) == after


def test_last_start_follows_a_start_that_appears_later() -> None:
    """A known job whose startedAt arrives or moves later moves its template's last start."""
    known = template_state(0, T0, "Nightly home")
    moved = job("running", started=T0 + timedelta(minutes=10), minute=40)
    result = diff({"jobs/1": running()}, [moved], NOW, templates={TEMPLATE: known})
    assert result.templates[TEMPLATE].last_start == T0 + timedelta(minutes=10)


def test_last_start_never_moves_back() -> None:
    """An older start seen again leaves the template's last start where it was."""
    known = template_state(0, T0 + timedelta(hours=1), "Nightly home")
    result = diff({"jobs/1": running()}, [job("running")], NOW, templates={TEMPLATE: known})
    assert TEMPLATE not in result.templates


# (case, first-seen job, status_since expected)
SINCE = [
    ("running since it started", job("running"), T0),
    ("pending since now", job("pending"), NOW),
    ("running without startedAt since now", job("running", started=None), NOW),
    ("running with a future startedAt since now", job("running", started=NOW + timedelta(1)), NOW),
]


@pytest.mark.parametrize(
    ("observed", "since"), [pytest.param(*case[1:], id=case[0]) for case in SINCE]
)
def test_first_sighting_status_since(observed: Job, since: datetime) -> None:
    """Each row: when a job first seen started to be in its status."""
    (stored,) = diff({}, [observed], NOW).states
    assert stored.status_since == since


def rule(name: str = "r", **config: Any) -> Rule:
    return Rule.model_validate({"name": name, "notify": ["x"], "match": config})


def failure(to: str = "failed", streak: int = 1) -> Event:
    return Event(
        kind=EventKind.TRANSITION,
        job=job(to),
        from_status="running",
        to_status=to,
        at=NOW,
        streak=streak,
    )


# (case, rule's consecutive, repeat, event's to, event's streak, reason)
CONSECUTIVE = [
    ("below N", 3, "once", "failed", 2, MatchReason.WRONG_STREAK),
    ("the Nth failure", 3, "once", "failed", 3, MatchReason.MATCHED),
    ("after the Nth, once", 3, "once", "failed", 4, MatchReason.WRONG_STREAK),
    ("an expiry counts", 3, "once", "expired", 3, MatchReason.MATCHED),
    ("one in a row is any failure", 1, "once", "failed", 1, MatchReason.MATCHED),
    ("no streak at all", 1, "once", "failed", 0, MatchReason.WRONG_STREAK),
    ("below N, every", 3, "every", "failed", 2, MatchReason.WRONG_STREAK),
    ("the Nth, every", 3, "every", "failed", 3, MatchReason.MATCHED),
    ("after the Nth, every", 3, "every", "failed", 4, MatchReason.MATCHED),
    ("long after the Nth, every", 3, "every", "expired", 30, MatchReason.MATCHED),
    ("completed is no failure", 3, "once", "completed", 3, MatchReason.WRONG_STREAK),
    ("completed is no failure, every", 1, "every", "completed", 5, MatchReason.WRONG_STREAK),
    ("cancelled is no failure", 1, "every", "cancelled", 1, MatchReason.WRONG_STREAK),
    ("running is no failure", 1, "every", "running", 1, MatchReason.WRONG_STREAK),
]


@pytest.mark.parametrize(
    ("consecutive", "repeat", "to", "streak", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CONSECUTIVE],
)
def test_consecutive_table(
    consecutive: int, repeat: str, to: str, streak: int, reason: MatchReason
) -> None:
    """Each row: whether a `consecutive` rule takes a transition with a given streak."""
    configured = rule(consecutive=consecutive, repeat=repeat)
    assert match(configured.match, failure(to, streak), configured.name) is reason


def test_consecutive_repeat_defaults_to_once() -> None:
    """Without `repeat`, a `consecutive` rule fires on the Nth failure only."""
    configured = rule(consecutive=2)
    reasons = [match(configured.match, failure(streak=n)) for n in (1, 2, 3)]
    assert reasons == [MatchReason.WRONG_STREAK, MatchReason.MATCHED, MatchReason.WRONG_STREAK]


def test_evaluate_gives_the_streak_reason_per_rule() -> None:
    """evaluate says WRONG_STREAK for the consecutive rule and still matches the others."""
    rules = [rule("third", consecutive=3), rule("all", to=["failed"])]
    decisions = evaluate(failure(streak=2), rules)
    assert [(d.rule.name, d.reason) for d in decisions] == [
        ("third", MatchReason.WRONG_STREAK),
        ("all", MatchReason.MATCHED),
    ]


def test_consecutive_fires_on_the_tracked_streak() -> None:
    """Across cycles of failures, `consecutive: 2` fires on the second failure only."""
    configured = rule(consecutive=2)
    templates: dict[str, TemplateState] = {}
    fired = []
    for n in range(1, 5):
        sref = f"jobs/{n}"
        result = diff({sref: running(sref)}, [job("failed", sref)], NOW, templates=dict(templates))
        templates.update(result.templates)
        fired.append([match(configured.match, e) for e in result.events])
    assert fired == [
        [MatchReason.WRONG_STREAK],
        [MatchReason.MATCHED],
        [MatchReason.WRONG_STREAK],
        [MatchReason.WRONG_STREAK],
    ]


# (case, match of a rule for another event kind)
NOT_FOR_TRANSITIONS = [
    ("consecutive on stuck", {"event": "stuck", "after": "2h", "consecutive": 3}),
    ("consecutive on recovered", {"event": "recovered", "consecutive": 3}),
    (
        "consecutive on missed",
        {"event": "missed", "template": TEMPLATE, "every": "24h", "consecutive": 3},
    ),
    ("repeat on recovered", {"event": "recovered", "repeat": "every"}),
]


@pytest.mark.parametrize("config", [pytest.param(c[1], id=c[0]) for c in NOT_FOR_TRANSITIONS])
def test_consecutive_only_for_transitions(config: dict[str, Any]) -> None:
    """`consecutive` (and its `repeat`) on a rule for another event is a configuration error."""
    with pytest.raises(ValidationError, match="only for event transition"):
        Rule.model_validate({"name": "r", "notify": ["x"], "match": config})


@pytest.mark.parametrize("value", [0, -1])
def test_consecutive_must_be_positive(value: int) -> None:
    """`consecutive: 0` or below is a configuration error."""
    with pytest.raises(ValidationError):
        rule(consecutive=value)


TEST_RUN = {
    "pageTitle": "Home page",
    "url": "https://example.com/",
    "browser": "Chrome",
    "resultCode": 200,
    "severity": None,
    "onLoad": 1234,
    "speedIndex": None,
    "domLoad": 800,
    "renderStart": 300,
    "visuallyComplete": None,
    "pageSize": 5000,
    "ranAt": "2024-03-01T09:10:00+00:00",
}


def streak_events() -> list[Event]:
    """A failure with a streak, then a completion that recovers it."""
    failed, _ = ending(2, [("jobs/1", "failed", 20)])
    recovered, _ = ending(3, [("jobs/2", "completed", 30)])
    return [*failed.events, *recovered.events]


@pytest.mark.parametrize(
    "event", [pytest.param(e, id=f"{e.kind}-{e.to_status}") for e in streak_events()]
)
def test_default_templates_render_streak_events(event: Event) -> None:
    """The default title and body of each event kind the tracker makes render."""
    variables = render.context(event, "rule", "failure")
    title = render.render(render.DEFAULT_TITLES[event.kind], variables)
    body = render.render(render.DEFAULT_BODIES[event.kind], variables)
    assert event.job.name in title
    assert event.job.sref in body


def test_recovery_body_says_how_many_failures() -> None:
    """The default recovery body names the number of failures it ended."""
    result, _ = ending(3, [("jobs/1", "completed", 30)])
    recovered = result.events[-1]
    body = render.render(
        render.DEFAULT_BODIES[EventKind.RECOVERED], render.context(recovered, "rule", "failure")
    )
    assert "after 3 failed run(s)" in body


# (case, test runs, line expected in the body)
TEST_RUNS = [
    ("a run by its page title", [TEST_RUN], "- Home page [Chrome] result 200, onLoad 1234"),
    (
        "a run without a title by its URL",
        [{**TEST_RUN, "pageTitle": None}],
        "- https://example.com/ [Chrome] result 200, onLoad 1234",
    ),
    ("no runs, no heading", [], None),
]


@pytest.mark.parametrize(
    ("runs", "line"), [pytest.param(*case[1:], id=case[0]) for case in TEST_RUNS]
)
def test_transition_body_shows_test_runs(runs: list[dict[str, object]], line: str | None) -> None:
    """Each row: how the default transition body lists the test runs it was given."""
    result, _ = ending(0, [("jobs/1", "failed", 30)])
    (event,) = result.events
    body = render.render(
        render.DEFAULT_BODIES[EventKind.TRANSITION],
        render.context(event, "rule", "failure", test_runs=runs),
    )
    if line is None:
        assert "Test runs:" not in body
    else:
        assert f"Test runs:\n{line}" in body
