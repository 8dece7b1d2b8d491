"""Timers: `stuck` (a job stays too long in a status) and `missed` (a template stops
running), as events with a rule, a sequence number and a stable key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from watcher import render
from watcher.models import Event, EventKind, Job, JobState, MatchReason, TemplateState
from watcher.rules import evaluate
from watcher.settings import Rule
from watcher.timers import missed, stuck, watched_templates
from watcher.tracker import diff

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)  # the cycle's clock
TEMPLATE = "jobTemplates/6789"
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


def rule(name: str = "r", repeat_after: str | None = None, **match: Any) -> Rule:
    config: dict[str, Any] = {"name": name, "notify": ["x"], "match": match}
    if repeat_after is not None:
        config["repeat_after"] = repeat_after
    return Rule.model_validate(config)


def stuck_rule(
    name: str = "stuck", after: str = "2h", repeat_after: str | None = None, **match: Any
) -> Rule:
    return rule(name, repeat_after, event="stuck", after=after, **match)


def missed_rule(
    name: str = "nightly",
    template: str | list[str] = TEMPLATE,
    every: str = "24h",
    grace: str = "30m",
) -> Rule:
    return rule(name, event="missed", template=template, every=every, grace=grace)


def job(status: str = "running", sref: str = "jobs/1") -> Job:
    return Job(
        sref=sref,
        name="Nightly home",
        status=status,
        started_at=NOW - 10 * HOUR,
        updated_at=NOW - MINUTE,
        template=TEMPLATE,
    )


def state(status: str = "running", since: timedelta = 3 * HOUR, sref: str = "jobs/1") -> JobState:
    """A stored job that has been in `status` for `since` at NOW."""
    return JobState(
        sref=sref,
        status=status,
        status_since=NOW - since,
        first_seen=NOW - 10 * HOUR,
        updated_at=NOW - MINUTE,
        started_at=NOW - 10 * HOUR,
        template=TEMPLATE,
        name="Nightly home",
    )


def stuck_events(
    rules: list[Rule], status: str = "running", since: timedelta = 3 * HOUR, now: datetime = NOW
) -> list[Event]:
    return stuck([job(status)], {"jobs/1": state(status, since)}, rules, now)


# (case, rule, status, time in it, fires)
STUCK = [
    ("running past after", stuck_rule(after="2h"), "running", 3 * HOUR, True),
    ("running exactly after", stuck_rule(after="2h"), "running", 2 * HOUR, True),
    (
        "running a second short of after",
        stuck_rule(after="2h"),
        "running",
        2 * HOUR - SECOND,
        False,
    ),
    ("pending is watched by default", stuck_rule(after="2h"), "pending", 3 * HOUR, True),
    ("running not yet long enough", stuck_rule(after="2h"), "running", 90 * MINUTE, False),
    ("running not listed", stuck_rule(status=["pending"]), "running", 3 * HOUR, False),
    ("pending not listed", stuck_rule(status="running"), "pending", 3 * HOUR, False),
    ("listed status", stuck_rule(status="running"), "running", 3 * HOUR, True),
    ("failed has ended", stuck_rule(), "failed", 30 * HOUR, False),
    ("completed has ended", stuck_rule(), "completed", 30 * HOUR, False),
    ("cancelled has ended", stuck_rule(), "cancelled", 30 * HOUR, False),
    ("expired has ended", stuck_rule(), "expired", 30 * HOUR, False),
    ("an unknown status is never listed", stuck_rule(), "Exploded", 30 * HOUR, False),
]


@pytest.mark.parametrize(
    ("configured", "status", "since", "fires"),
    [pytest.param(*case[1:], id=case[0]) for case in STUCK],
)
def test_stuck_table(configured: Rule, status: str, since: timedelta, fires: bool) -> None:
    """Each row: whether a job in a status for some time is stuck for one rule."""
    events = stuck_events([configured], status, since)
    assert [(e.kind, e.rule, e.to_status) for e in events] == (
        [(EventKind.STUCK, configured.name, status)] if fires else []
    )


def test_stuck_needs_a_stored_state() -> None:
    """A job the store knows nothing about is not judged."""
    assert stuck([job()], {}, [stuck_rule()], NOW) == []


def test_stuck_for_is_in_seconds() -> None:
    """stuck_for is how long the job has been in its status, in seconds."""
    (event,) = stuck_events([stuck_rule()], since=150 * MINUTE)
    assert event.stuck_for == 9000.0


def test_stuck_event_fields() -> None:
    """A stuck event carries the job, its status as from and to, the rule and now."""
    (event,) = stuck_events([stuck_rule("slow")], "pending")
    assert (event.job, event.from_status, event.to_status, event.rule, event.at) == (
        job("pending"),
        "pending",
        "pending",
        "slow",
        NOW,
    )


# (case, repeat_after, time in the status, seq)
SEQ = [
    ("first alert", "1h", 2 * HOUR, 0),
    ("just before the first reminder", "1h", 3 * HOUR - MINUTE, 0),
    ("first reminder", "1h", 3 * HOUR, 1),
    ("third reminder", "1h", 5 * HOUR + 30 * MINUTE, 3),
    ("no repeat_after at first", None, 2 * HOUR, 0),
    ("no repeat_after ever after", None, 200 * HOUR, 0),
]


@pytest.mark.parametrize(
    ("repeat_after", "since", "seq"), [pytest.param(*case[1:], id=case[0]) for case in SEQ]
)
def test_stuck_seq_table(repeat_after: str | None, since: timedelta, seq: int) -> None:
    """Each row: which reminder a stuck event is, for a rule with after 2h."""
    (event,) = stuck_events([stuck_rule(repeat_after=repeat_after)], since=since)
    assert event.seq == seq


def test_stuck_key_is_stable_without_repeat_after() -> None:
    """Without repeat_after one stay in a status is one event, however long it lasts."""
    keys = {e.key for h in (2, 3, 50) for e in stuck_events([stuck_rule()], since=h * HOUR)}
    assert keys == {"stuck:jobs/1:running:stuck:0"}


def test_stuck_key_is_stable_within_a_reminder_period() -> None:
    """Cycles within one repeat_after period give the same event."""
    configured = stuck_rule(repeat_after="1h")
    keys = {
        e.key for m in (0, 20, 59) for e in stuck_events([configured], since=2 * HOUR + m * MINUTE)
    }
    assert len(keys) == 1


def test_stuck_reminder_is_a_new_event() -> None:
    """With repeat_after, each period after the first gives a new key."""
    configured = stuck_rule(repeat_after="1h")
    keys = [e.key for h in (2, 3, 4) for e in stuck_events([configured], since=h * HOUR)]
    assert keys == [
        "stuck:jobs/1:running:stuck:0",
        "stuck:jobs/1:running:stuck:1",
        "stuck:jobs/1:running:stuck:2",
    ]


def test_stuck_event_matches_only_its_own_rule() -> None:
    """evaluate takes a stuck event for its rule, OTHER_RULE for other stuck rules."""
    rules = [stuck_rule("a"), stuck_rule("b"), rule("failures")]
    (event, _) = stuck_events(rules)
    assert [(d.rule.name, d.reason) for d in evaluate(event, rules)] == [
        ("a", MatchReason.MATCHED),
        ("b", MatchReason.OTHER_RULE),
        ("failures", MatchReason.WRONG_EVENT),
    ]


# (case, time in the status, rules that fire)
TWO_RULES = [
    ("before either", 90 * MINUTE, []),
    ("past the shorter only", 3 * HOUR, ["warn"]),
    ("past both", 5 * HOUR, ["warn", "page"]),
]


@pytest.mark.parametrize(
    ("since", "fired"), [pytest.param(*case[1:], id=case[0]) for case in TWO_RULES]
)
def test_two_stuck_rules_fire_independently(since: timedelta, fired: list[str]) -> None:
    """Each row: two stuck rules with different `after` each give their own event."""
    rules = [stuck_rule("warn", after="2h"), stuck_rule("page", after="4h")]
    events = stuck_events(rules, since=since)
    assert [e.rule for e in events] == fired
    assert len({e.key for e in events}) == len(fired)


def test_new_status_restarts_the_clock() -> None:
    """A job stuck pending that starts running is not stuck any more."""
    moved = msgspec.structs.replace(job("running"), updated_at=NOW)
    result = diff({"jobs/1": state("pending")}, [moved], NOW)
    after = {s.sref: s for s in result.states}
    assert (after["jobs/1"].status_since, stuck([moved], after, [stuck_rule()], NOW)) == (NOW, [])


def test_stuck_in_a_new_status_is_a_new_event() -> None:
    """Stuck again in the next status gives a key of its own."""
    configured = stuck_rule(repeat_after="1h")
    (pending,) = stuck_events([configured], "pending")
    moved = msgspec.structs.replace(job("running"), updated_at=NOW)
    after = {s.sref: s for s in diff({"jobs/1": state("pending")}, [moved], NOW).states}
    later = NOW + 3 * HOUR
    (running,) = stuck([moved], after, [configured], later)
    assert (pending.key, running.key) == (
        "stuck:jobs/1:pending:stuck:1",
        "stuck:jobs/1:running:stuck:1",
    )


def template(
    last_start: datetime | None = None,
    watching_since: datetime = NOW - 30 * 24 * HOUR,
    last_name: str = "",
    name: str = TEMPLATE,
) -> TemplateState:
    return TemplateState(
        template=name, watching_since=watching_since, last_start=last_start, last_name=last_name
    )


# (case, template state, fires) for every 24h, grace 30m
MISSED = [
    ("last start past every + grace", template(NOW - 25 * HOUR), True),
    ("last start within every + grace", template(NOW - 24 * HOUR - 20 * MINUTE), False),
    ("last start exactly every + grace ago", template(NOW - 24 * HOUR - 30 * MINUTE), False),
    ("last start recent", template(NOW - HOUR), False),
    ("never seen, watched long enough", template(None, NOW - 25 * HOUR), True),
    ("never seen, watched briefly", template(None, NOW - HOUR), False),
]


@pytest.mark.parametrize(
    ("known", "fires"), [pytest.param(*case[1:], id=case[0]) for case in MISSED]
)
def test_missed_table(known: TemplateState, fires: bool) -> None:
    """Each row: whether a template is overdue for a `missed` rule (every 24h, grace 30m)."""
    events = missed({TEMPLATE: known}, [missed_rule()], NOW)
    assert [(e.kind, e.rule, e.job.template) for e in events] == (
        [(EventKind.MISSED, "nightly", TEMPLATE)] if fires else []
    )


def test_missed_counts_from_a_known_start_before_watching_began() -> None:
    """A last start known from before the template's state was created is still the anchor.

    SPEC: no job has started for every + grace "since the last one (or since the watcher
    began watching it)"; a template first seen through a job that had started earlier has
    last_start < watching_since, and its first gap must count from that start.
    """
    known = template(NOW - 25 * HOUR, watching_since=NOW - 23 * HOUR)
    assert [e.rule for e in missed({TEMPLATE: known}, [missed_rule()], NOW)] == ["nightly"]


def test_missed_key_is_stable_for_one_gap() -> None:
    """Cycle after cycle, one gap (the same last start) is one event."""
    known = {TEMPLATE: template(NOW - 25 * HOUR)}
    keys = {e.key for h in (0, 1, 48) for e in missed(known, [missed_rule()], NOW + h * HOUR)}
    assert len(keys) == 1


def test_a_new_start_ends_the_gap() -> None:
    """Right after a new start, the template is not overdue."""
    known = {TEMPLATE: template(NOW - HOUR)}
    assert missed(known, [missed_rule()], NOW) == []


def test_a_new_start_makes_a_new_gap() -> None:
    """Overdue again after a new start is a new event with a new key."""
    (first,) = missed({TEMPLATE: template(NOW - 25 * HOUR)}, [missed_rule()], NOW)
    later = NOW + 30 * HOUR
    (second,) = missed({TEMPLATE: template(NOW)}, [missed_rule()], later)
    assert first.key != second.key


def test_missed_event_fields() -> None:
    """A missed event names the template's last job and start, and how long it is overdue."""
    start = NOW - 25 * HOUR
    (event,) = missed({TEMPLATE: template(start, last_name="Nightly home")}, [missed_rule()], NOW)
    assert (
        event.job.name,
        event.job.template,
        event.job.started_at,
        event.job.sref,
        event.to_status,
        event.at,
        event.stuck_for,
    ) == ("Nightly home", TEMPLATE, start, "", "missed", NOW, 25 * 3600.0)


def test_missed_event_names_the_template_without_a_job() -> None:
    """A template never seen run is named by itself."""
    (event,) = missed({TEMPLATE: template(None, NOW - 25 * HOUR)}, [missed_rule()], NOW)
    assert (event.job.name, event.job.started_at) == (TEMPLATE, None)


def test_two_missed_rules_on_one_template_are_two_events() -> None:
    """Each missed rule watching a template gives its own event and key."""
    rules = [missed_rule("daily", every="24h"), missed_rule("twice-daily", every="12h")]
    events = missed({TEMPLATE: template(NOW - 25 * HOUR)}, rules, NOW)
    assert [e.rule for e in events] == ["daily", "twice-daily"]
    assert events[0].key != events[1].key


def test_missed_event_matches_only_its_own_rule() -> None:
    """evaluate takes a missed event for its rule, OTHER_RULE for other missed rules."""
    rules = [missed_rule("a"), missed_rule("b"), rule("failures")]
    (event, _) = missed({TEMPLATE: template(NOW - 25 * HOUR)}, rules, NOW)
    assert [(d.rule.name, d.reason) for d in evaluate(event, rules)] == [
        ("a", MatchReason.MATCHED),
        ("b", MatchReason.OTHER_RULE),
        ("failures", MatchReason.WRONG_EVENT),
    ]


KNOWN = ["jobTemplates/6789", "jobTemplates/6790", "jobTemplates/1234"]

# (case, the rules' template patterns, templates watched -> rule names)
WATCHED = [
    (
        "an exact name is watched even if never seen",
        [["jobTemplates/9999"]],
        {"jobTemplates/9999": ["r0"]},
    ),
    ("an exact name that is known", [[TEMPLATE]], {TEMPLATE: ["r0"]}),
    (
        "a glob matches known names",
        [["jobTemplates/67*"]],
        {"jobTemplates/6789": ["r0"], "jobTemplates/6790": ["r0"]},
    ),
    ("a glob matching nothing watches nothing", [["jobTemplates/5*"]], {}),
    ("a ? glob", [["jobTemplates/123?"]], {"jobTemplates/1234": ["r0"]}),
    (
        "two rules on one template",
        [[TEMPLATE], ["jobTemplates/6*"]],
        {TEMPLATE: ["r0", "r1"], "jobTemplates/6790": ["r1"]},
    ),
    (
        "one rule whose patterns overlap watches a template once",
        [[TEMPLATE, "jobTemplates/6*"]],
        {TEMPLATE: ["r0"], "jobTemplates/6790": ["r0"]},
    ),
]


@pytest.mark.parametrize(
    ("patterns", "watched"), [pytest.param(*case[1:], id=case[0]) for case in WATCHED]
)
def test_watched_templates_table(patterns: list[list[str]], watched: dict[str, list[str]]) -> None:
    """Each row: which templates the missed rules watch, given the known templates."""
    rules = [missed_rule(f"r{i}", template=p) for i, p in enumerate(patterns)]
    result = watched_templates(rules, KNOWN)
    assert {name: [r.name for r in found] for name, found in result.items()} == watched


def test_watched_templates_ignores_other_rules() -> None:
    """Only missed rules watch templates; a transition rule's template does not count."""
    rules = [rule("failures", template=TEMPLATE), stuck_rule(template=TEMPLATE)]
    assert watched_templates(rules, KNOWN) == {}


def test_missed_gives_one_event_per_rule_and_gap() -> None:
    """A template matched by two patterns of one rule is still one event."""
    rules = [missed_rule(template=[TEMPLATE, "jobTemplates/*"])]
    events = missed({TEMPLATE: template(NOW - 25 * HOUR)}, rules, NOW)
    assert len(events) == 1


def test_missed_watches_known_templates_by_glob() -> None:
    """A glob rule is overdue for each known template it matches, not for the others."""
    known = {
        "jobTemplates/6789": template(NOW - 25 * HOUR, name="jobTemplates/6789"),
        "jobTemplates/6790": template(NOW - 25 * HOUR, name="jobTemplates/6790"),
        "jobTemplates/1234": template(NOW - 25 * HOUR, name="jobTemplates/1234"),
    }
    events = missed(known, [missed_rule(template="jobTemplates/67*")], NOW)
    assert sorted(e.job.template for e in events) == ["jobTemplates/6789", "jobTemplates/6790"]


def timer_events() -> list[Event]:
    """A stuck event, a missed event after a last job and one for a template never seen."""
    return [
        *stuck_events([stuck_rule()]),
        *missed(
            {TEMPLATE: template(NOW - 25 * HOUR, last_name="Nightly home")}, [missed_rule()], NOW
        ),
        *missed({TEMPLATE: template(None, NOW - 25 * HOUR)}, [missed_rule()], NOW),
    ]


@pytest.mark.parametrize(
    "event",
    [pytest.param(e, id=f"{e.kind}-{e.job.name}") for e in timer_events()],
)
def test_default_templates_render_timer_events(event: Event) -> None:
    """The default title and body of stuck and missed events render."""
    variables = render.context(event, "rule", "failure")
    title = render.render(render.DEFAULT_TITLES[event.kind], variables)
    body = render.render(render.DEFAULT_BODIES[event.kind], variables)
    assert event.job.name in title
    assert event.job.template in body


# (case, event, phrase expected in the default body)
TIMER_BODIES = [
    ("stuck for minutes", stuck_events([stuck_rule()], since=150 * MINUTE)[0], "for 150 minutes"),
    (
        "missed for hours",
        missed({TEMPLATE: template(NOW - 25 * HOUR)}, [missed_rule()], NOW)[0],
        "for 25.0 hours",
    ),
    (
        "missed without a last job",
        missed({TEMPLATE: template(None, NOW - 25 * HOUR)}, [missed_rule()], NOW)[0],
        "never, since watching began",
    ),
]


@pytest.mark.parametrize(
    ("event", "phrase"), [pytest.param(*case[1:], id=case[0]) for case in TIMER_BODIES]
)
def test_timer_bodies_say_how_long(event: Event, phrase: str) -> None:
    """Each row: what the default body of a timer event says about the time."""
    body = render.render(
        render.DEFAULT_BODIES[event.kind], render.context(event, "rule", "warning")
    )
    assert phrase in body
