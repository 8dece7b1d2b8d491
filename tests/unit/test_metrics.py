"""The daemon's metrics: series that exist from the start, leader changes, latency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watcher.metrics import Metrics, PollOutcome

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_known_label_values_start_at_zero() -> None:
    """Before anything happens, each account's failed polls, each channel's given-up
    alerts and latency count are 0, not absent."""
    metrics = Metrics(["shop-uk", "shop-de"], ["ops"])
    for account in ("shop-uk", "shop-de"):
        for outcome in PollOutcome:
            assert value(metrics, "watcher_polls_total", account=account, outcome=outcome) == 0
        assert value(metrics, "watcher_events_total", account=account, kind="stuck") == 0
        assert value(metrics, "watcher_leader", account=account) == 0
    assert value(metrics, "watcher_alerts_total", channel="ops", outcome="given_up") == 0
    assert value(metrics, "watcher_delivery_latency_seconds_count", channel="ops") == 0
    assert value(metrics, "watcher_api_requests_total", endpoint="jobs", outcome="ok") == 0


def test_last_success_is_absent_until_a_poll_succeeds() -> None:
    """No sentinel: the timestamp appears with the first good poll, a failure sets none."""
    metrics = Metrics(["default"])
    metrics.poll_done("default", PollOutcome.FAILED)
    name = "watcher_last_successful_poll_timestamp_seconds"
    assert value(metrics, name, account="default") is None
    metrics.poll_done("default", PollOutcome.OK)
    assert (value(metrics, name, account="default") or 0) > T0.timestamp() - 365 * 86400
    assert value(metrics, "watcher_polls_total", account="default", outcome="failed") == 1


def test_leader_changes_count_takes_and_losses_and_a_loss_zeroes_the_jobs() -> None:
    """Taking and losing an account count once each; the jobs followed go to its new
    leader, so a replica that lost it reports 0."""
    metrics = Metrics(["default"])
    metrics.leads("default", True, changed=True)
    metrics.jobs_followed.labels("default").set(7)
    metrics.leads("default", True, changed=False)
    metrics.leads("default", False, changed=True)
    assert value(metrics, "watcher_leader_changes_total", account="default", change="taken") == 1
    assert value(metrics, "watcher_leader_changes_total", account="default", change="lost") == 1
    assert value(metrics, "watcher_leader", account="default") == 0
    assert value(metrics, "watcher_jobs_followed", account="default") == 0


def test_delivery_latency_is_observed_per_alert() -> None:
    """Each accepted alert counts the time since it was queued."""
    metrics = Metrics(["default"], ["ops"])
    metrics.delivered("ops", [T0, T0 + timedelta(seconds=50)], T0 + timedelta(seconds=60))
    assert value(metrics, "watcher_delivery_latency_seconds_count", channel="ops") == 2
    assert value(metrics, "watcher_delivery_latency_seconds_sum", channel="ops") == 70
    le = {"channel": "ops", "le": "30.0"}
    assert metrics.registry.get_sample_value("watcher_delivery_latency_seconds_bucket", le) == 1


def test_a_channel_added_later_gets_its_series() -> None:
    """A reload that adds a channel creates its series at 0."""
    metrics = Metrics(["default"], ["ops"])
    metrics.known_channels(["pager"])
    assert value(metrics, "watcher_alerts_total", channel="pager", outcome="sent") == 0


def test_process_and_platform_metrics_are_served() -> None:
    """The registry carries the process and Python collectors."""
    metrics = Metrics()
    names = {family.name for family in metrics.registry.collect()}
    assert {"process_start_time_seconds", "python_info", "watcher_build"} <= names
