"""Notifier's pure decisions: what a batch says (compose), when to retry (backoff), what
became of a send (decide) and when a channel's batch goes (ready)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.test_pictures import PERF, queued
from watcher.models import Alert, DeliveryOutcome, EventKind, OutboxItem, Severity
from watcher.notifier import (
    MAX_CHARTS,
    Message,
    attachments,
    backoff,
    charts,
    compose,
    decide,
    digest_title,
    ready,
)
from watcher.settings import DeliverySettings

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def item(
    n: int = 1,
    status: str = "failed",
    severity: Severity = Severity.FAILURE,
    *,
    created: datetime = T0,
    attempts: int = 0,
    next_at: datetime | None = None,
) -> OutboxItem:
    alert = Alert(
        kind=EventKind.TRANSITION,
        status=status,
        rule="failures",
        channel="ops",
        severity=severity,
        title=f"Job {n} {status}",
        body=f"jobs/{n} is {status}",
        sref=f"jobs/{n}",
    )
    return OutboxItem(
        id=n,
        alert=alert,
        created_at=created,
        attempts=attempts,
        next_attempt_at=next_at or created,
    )


# -- compose --------------------------------------------------------------------------------


def test_compose_single_alert_is_itself() -> None:
    """One alert is sent with its own title, body and severity."""
    assert compose([item(severity=Severity.WARNING)]) == Message(
        "Job 1 failed", "jobs/1 is failed", Severity.WARNING
    )


@pytest.mark.parametrize(
    ("statuses", "title"),
    [
        (["failed", "failed", "expired"], "2 jobs failed, 1 expired"),
        (["expired", "failed", "failed"], "2 jobs failed, 1 expired"),
        (["failed", "failed"], "2 jobs failed"),
        (["failed", "expired"], "1 job failed, 1 expired"),
        (["completed", "failed", "completed", "completed"], "3 jobs completed, 1 failed"),
        (["failed", "expired", "expired", "cancelled"], "2 jobs expired, 1 failed, 1 cancelled"),
    ],
)
def test_compose_digest_title_counts_statuses(statuses: list[str], title: str) -> None:
    """A digest's title counts the alerts by new status, most frequent first."""
    items = [item(n, status) for n, status in enumerate(statuses, 1)]
    assert compose(items).title == title


def happened(kind: EventKind, status: str, seq: int = 0) -> Alert:
    subject = {"template": "jobTemplates/1"} if kind is EventKind.MISSED else {"sref": "jobs/1"}
    return Alert(
        kind=kind,
        rule="r",
        channel="ops",
        severity=Severity.WARNING,
        status=status,
        seq=seq,
        **subject,
    )


FAILED = happened(EventKind.TRANSITION, "failed")
STUCK = happened(EventKind.STUCK, "running", seq=3)
RECOVERED = happened(EventKind.RECOVERED, "completed")
MISSED = happened(EventKind.MISSED, "missed", seq=1764547200)


@pytest.mark.parametrize(
    ("alerts", "title"),
    [
        ([STUCK, STUCK], "2 jobs stuck"),
        ([RECOVERED], "1 job recovered"),
        ([MISSED, MISSED], "2 templates missed their run"),
        (
            [MISSED, STUCK, FAILED, RECOVERED, FAILED, STUCK, FAILED],
            "3 jobs failed, 2 stuck, 1 recovered, 1 template missed its run",
        ),
        ([MISSED, MISSED, FAILED], "1 job failed, 2 templates missed their run"),
        ([happened(EventKind.STUCK, "pending"), STUCK], "2 jobs stuck"),
    ],
)
def test_digest_title_says_what_happened_for_every_kind(alerts: list[Alert], title: str) -> None:
    """Timer events (a reminder number in their key) and missed runs are counted by what
    happened, not by the last part of their key; jobs first, then templates."""
    assert digest_title(alerts) == title


def test_compose_digest_body_lists_each_title() -> None:
    """A digest's body has one line per alert: its title, in outbox order."""
    items = [item(1, "failed"), item(2, "expired"), item(3, "failed")]
    assert compose(items).body == "- Job 1 failed\n- Job 2 expired\n- Job 3 failed"


@pytest.mark.parametrize(
    ("severities", "highest"),
    [
        ([Severity.INFO, Severity.FAILURE, Severity.WARNING], Severity.FAILURE),
        ([Severity.SUCCESS, Severity.INFO], Severity.SUCCESS),
        ([Severity.WARNING, Severity.SUCCESS, Severity.INFO], Severity.WARNING),
        ([Severity.INFO, Severity.INFO], Severity.INFO),
    ],
)
def test_compose_digest_takes_the_highest_severity(
    severities: list[Severity], highest: Severity
) -> None:
    """A digest is as severe as its most severe alert (info < success < warning < failure)."""
    items = [item(n, severity=s) for n, s in enumerate(severities, 1)]
    assert compose(items).severity is highest


# -- backoff --------------------------------------------------------------------------------

DELIVERY = DeliverySettings(retry_initial=1.0, retry_max=60.0)
SAMPLES = 200


def ceiling(attempts: int) -> float:
    return min(60.0, 1.0 * 2.0**attempts)


@pytest.mark.parametrize("attempts", [0, 1, 2, 3, 5, 6, 7, 30, 31, 1000])
def test_backoff_is_jittered_within_half_to_full_ceiling(attempts: int) -> None:
    """Each delay lies in [0.5, 1] x min(retry_max, retry_initial x 2^attempts)."""
    top = ceiling(min(attempts, 30))
    for _ in range(SAMPLES):
        assert 0.5 * top <= backoff(attempts, DELIVERY) <= top


@pytest.mark.parametrize("attempts", [0, 10, 100, 10_000])
def test_backoff_never_exceeds_retry_max(attempts: int) -> None:
    """However many attempts failed, the delay is at most retry_max."""
    assert max(backoff(attempts, DELIVERY) for _ in range(SAMPLES)) <= DELIVERY.retry_max


@pytest.mark.parametrize("attempts", [0, 1, 2, 3])
def test_backoff_grows_with_attempts(attempts: int) -> None:
    """Two more failures at least double the delay, jitter included, until the cap."""
    shortest_later = min(backoff(attempts + 2, DELIVERY) for _ in range(SAMPLES))
    longest_now = max(backoff(attempts, DELIVERY) for _ in range(SAMPLES))
    assert shortest_later >= 2 * longest_now


def test_backoff_is_jittered() -> None:
    """Delays for the same attempt differ, so failing channels do not retry in lockstep."""
    assert len({backoff(3, DELIVERY) for _ in range(SAMPLES)}) > 1


def test_backoff_first_retry_is_about_retry_initial() -> None:
    """The first retry waits between half of and all of retry_initial."""
    delivery = DeliverySettings(retry_initial=5.0, retry_max=300.0)
    assert all(2.5 <= backoff(0, delivery) <= 5.0 for _ in range(SAMPLES))


# -- decide ---------------------------------------------------------------------------------

GIVE_UP = DeliverySettings(give_up_after=3600.0)


def test_decide_delivered_is_sent() -> None:
    """A delivered batch is sent, however old."""
    old = item(created=T0 - timedelta(days=30))
    assert decide([old], True, T0, GIVE_UP) is DeliveryOutcome.SENT


def test_decide_failed_before_give_up_after_is_retry() -> None:
    """A failure younger than give_up_after is retried."""
    now = T0 + timedelta(seconds=3599)
    assert decide([item()], False, now, GIVE_UP) is DeliveryOutcome.RETRY


def test_decide_failed_at_give_up_after_is_given_up() -> None:
    """A failure at exactly give_up_after since creation gives up."""
    now = T0 + timedelta(seconds=3600)
    assert decide([item()], False, now, GIVE_UP) is DeliveryOutcome.GIVEN_UP


def test_decide_failed_after_give_up_after_is_given_up() -> None:
    """A failure past give_up_after gives up."""
    now = T0 + timedelta(hours=5)
    assert decide([item()], False, now, GIVE_UP) is DeliveryOutcome.GIVEN_UP


def test_decide_the_oldest_alert_of_a_batch_decides() -> None:
    """A batch gives up when its oldest alert has waited give_up_after."""
    batch = [item(1, created=T0 + timedelta(minutes=50)), item(2, created=T0)]
    assert decide(batch, False, T0 + timedelta(hours=1), GIVE_UP) is DeliveryOutcome.GIVEN_UP


# -- ready ----------------------------------------------------------------------------------


def test_ready_fresh_alert_waits_group_wait() -> None:
    """A fresh alert goes group_wait after it was created."""
    assert ready([item()], T0, 10.0) == T0 + timedelta(seconds=10)


def test_ready_with_zero_group_wait_is_immediate() -> None:
    """group_wait 0 sends a fresh alert at once."""
    assert ready([item()], T0, 0.0) == T0


def test_ready_retry_goes_at_its_next_attempt() -> None:
    """A retried alert goes at its next_attempt_at, not group_wait after creation."""
    retry = item(attempts=2, next_at=T0 + timedelta(minutes=7))
    assert ready([retry], T0 + timedelta(minutes=1), 10.0) == T0 + timedelta(minutes=7)


def test_ready_batch_goes_at_its_earliest_member() -> None:
    """A batch is ready when its earliest member is."""
    batch = [
        item(1, attempts=1, next_at=T0 + timedelta(minutes=3)),
        item(2, created=T0 + timedelta(minutes=1)),
    ]
    assert ready(batch, T0, 10.0) == T0 + timedelta(minutes=1, seconds=10)


# -- charts ---------------------------------------------------------------------------------


def charted(n: int, rule: str = "slower") -> OutboxItem:
    """A queued regressed alert of rule `rule`, with its variables."""
    alert = queued(PERF)
    alert.rule = rule
    return OutboxItem(id=n, alert=alert, created_at=T0, attempts=0, next_attempt_at=T0)


def test_a_regressed_alert_goes_with_its_chart_unless_its_rule_is_chartless() -> None:
    (chart,) = charts([charted(1)], frozenset())
    assert chart.name.endswith(".svg")
    assert chart.svg.startswith("<svg")
    assert charts([charted(1)], frozenset({"slower"})) == ()
    assert charts([item()], frozenset()) == ()  # a transition has none


def test_a_digest_carries_at_most_max_charts() -> None:
    items = [charted(n) for n in range(1, 8)] + [item(9)]
    drawn = charts(items, frozenset())
    assert len(drawn) == MAX_CHARTS
    assert len({c.name for c in drawn}) == MAX_CHARTS  # told apart


def test_unreadable_variables_lose_the_chart_not_the_alert() -> None:
    broken = charted(1)
    broken.alert.variables = "[1, 2"
    assert charts([broken], frozenset()) == ()
    assert compose([broken]).title  # the alert still says what it is about


def test_each_send_gets_its_own_attachments() -> None:
    message = Message("t", "b", Severity.WARNING, charts=charts([charted(1)], frozenset()))
    first, second = attachments(message), attachments(message)
    assert first is not None
    assert second is not None
    assert first[0] is not second[0]
    assert first[0].mimetype == "image/svg+xml"
    assert attachments(compose([item()])) is None
