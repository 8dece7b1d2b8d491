"""What people say, as values: matchers checked, silences' spans and coverage,
acknowledgements' end, and the fields of an alert that silences match."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from watcher import fast
from watcher.models import Alert, EventKind, Job, Severity
from watcher.people import Ack, Refused, Silence, alert_fields, matchers, parse_matcher
from watcher.render import SAMPLE_EVENT

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def silence(*pairs: tuple[str, str], expired: datetime | None = None) -> Silence:
    return Silence(1, tuple(pairs), T0, T0 + HOUR, expired_at=expired)


@pytest.mark.parametrize(
    ("pairs", "problem"),
    [
        ([], "at least one matcher"),
        ([("tmpl", "x")], "matcher 'tmpl': unknown key"),
        ([("name", "")], "matcher 'name': needs a value"),
        ([("name", "x" * 1001)], "needs a value of 1 to 1000"),
        ([("name", "x")] * 21, "at most 20 matchers"),
    ],
)
def test_matchers_are_refused_naming_the_culprit(
    pairs: list[tuple[str, str]], problem: str
) -> None:
    with pytest.raises(Refused, match=problem):
        matchers(pairs)


def test_a_matcher_is_written_key_equals_glob() -> None:
    assert parse_matcher("name=Nightly = *") == ("name", "Nightly = *")
    with pytest.raises(Refused, match="write it as key=value"):
        parse_matcher("Nightly")


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (T0 - timedelta(seconds=1), "pending"),
        (T0, "active"),
        (T0 + HOUR - timedelta(seconds=1), "active"),
        (T0 + HOUR, "expired"),
    ],
)
def test_a_silence_covers_from_its_start_to_its_end(now: datetime, state: str) -> None:
    shh = silence(("name", "*"))
    assert shh.state(now) == state
    assert shh.covers({"name": "x"}, now) is (state == "active")


def test_an_expired_silence_covers_nothing_from_its_expiry() -> None:
    shh = silence(("name", "*"), expired=T0 + timedelta(minutes=5))
    assert shh.covers({"name": "x"}, T0 + timedelta(minutes=4))
    assert not shh.covers({"name": "x"}, T0 + timedelta(minutes=5))
    assert shh.until == T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("fields", "covered"),
    [
        ({"name": "Nightly checkout", "template": "jobTemplates/1"}, True),
        ({"name": "Nightly search", "template": "jobTemplates/2"}, True),
        ({"name": "Nightly checkout", "template": "jobTemplates/3"}, False),
        ({"name": "Hourly", "template": "jobTemplates/1"}, False),
        ({"template": "jobTemplates/1"}, False),  # no name: matches no glob but "*"
        ({"name": "nightly checkout", "template": "jobTemplates/1"}, False),  # case counts
    ],
)
def test_one_key_twice_is_either_and_different_keys_are_all(
    fields: dict[str, str], covered: bool
) -> None:
    shh = silence(("name", "Nightly *"), ("template", "jobTemplates/1"), ("template", "*/2"))
    assert shh.covers(fields, T0) is covered


def test_an_alerts_fields_come_from_its_event_and_its_job() -> None:
    job = Job(sref="jobs/1", name="Nightly", status="failed", type="Crawl", run_type="scheduled")
    event = replace(
        SAMPLE_EVENT,
        job=job,
        from_status="running",
        to_status="failed",
        at=T0,
    )
    alert = Alert(
        kind=EventKind.TRANSITION,
        rule="r",
        channel="ops",
        severity=Severity.FAILURE,
        sref="jobs/1",
        template="jobTemplates/9",
        status="failed",
        variables=fast.variable_list(event, None),
        account="shop-uk",
    )
    fields = alert_fields(alert)
    assert {k: fields.get(k) for k in ("name", "type", "run_type", "event", "to", "account")} == {
        "name": "Nightly",
        "type": "Crawl",
        "run_type": "scheduled",
        "event": "transition",
        "to": "failed",
        "account": "shop-uk",
    }
    assert fields["template"] == "jobTemplates/9"


def test_an_alert_with_unreadable_variables_still_has_its_own_fields() -> None:
    alert = Alert(EventKind.MISSED, "r", "ops", Severity.WARNING, template="t", variables="{")
    assert alert_fields(alert) == {
        "account": "default",
        "event": "missed",
        "to": "",
        "template": "t",
    }


JOB_ACK = Ack(1, "default", job="jobs/1", status="running", now_status="running")
FAILING = Ack(2, "default", template="jobTemplates/1", streak=2, last_start=1.0)
QUIET = Ack(3, "default", template="jobTemplates/1", streak=0, last_start=1.0)


@pytest.mark.parametrize(
    ("ack", "holds"),
    [
        (JOB_ACK, True),
        (replace(JOB_ACK, now_status="failed"), False),  # moved on
        (replace(JOB_ACK, now_status=None), False),  # no longer known
        (replace(JOB_ACK, expired_at=T0), False),  # withdrawn
        (FAILING, True),
        (replace(FAILING, now_runs=3), True),  # failed again, and again
        (replace(FAILING, now_runs=3, now_recoveries=1), False),  # recovered once
        (QUIET, True),
        (replace(QUIET, now_runs=1), False),  # ran again
    ],
)
def test_an_acknowledgement_holds_until_what_it_acknowledged_moves_on(
    ack: Ack, holds: bool
) -> None:
    assert ack.holds is holds


def alert_of(kind: EventKind, **given: str) -> Alert:
    return Alert(kind, "r", "ops", Severity.WARNING, **given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ack", "alert", "covered"),
    [
        (JOB_ACK, alert_of(EventKind.STUCK, sref="jobs/1", status="running"), True),
        (JOB_ACK, alert_of(EventKind.STUCK, sref="jobs/2", status="running"), False),
        (JOB_ACK, alert_of(EventKind.TRANSITION, sref="jobs/1", status="failed"), False),
        (FAILING, alert_of(EventKind.TRANSITION, template="jobTemplates/1", status="failed"), True),
        (FAILING, alert_of(EventKind.MISSED, template="jobTemplates/1", status="missed"), True),
        (FAILING, alert_of(EventKind.RECOVERED, template="jobTemplates/1"), False),
        (FAILING, alert_of(EventKind.TRANSITION, template="jobTemplates/2"), False),
        (FAILING, alert_of(EventKind.TRANSITION, template="jobTemplates/1", account="x"), False),
    ],
)
def test_what_an_acknowledgement_stops(ack: Ack, alert: Alert, covered: bool) -> None:
    assert ack.covers(alert) is covered
