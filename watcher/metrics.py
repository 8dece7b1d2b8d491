"""Prometheus metrics, every watcher name prefixed `watcher_`, in a registry of the daemon's
own (never the process-global one, so tests and reloads start clean), beside the process,
platform and garbage-collector metrics that every Python exporter serves.

Every label value known at start (the accounts, the channels, the outcomes and kinds) is
created at 0: a series exists before its first increment, so `rate()` and `increase()`
see the first failure and the rules in deploy/prometheus need no `absent()`. Nothing here
reads the daemon's state: the daemon tells these metrics what happened.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from watcher import __version__
from watcher.models import DEFAULT_ACCOUNT, DeliveryOutcome, EventKind


class PollOutcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"  # the API or the store failed: nothing changed
    FENCED = "fenced"  # the lease was lost before the commit: nothing changed
    CRASHED = "crashed"  # a bug: nothing changed (see the log)


class LeaderChange(enum.StrEnum):
    TAKEN = "taken"
    LOST = "lost"


# The endpoint every cycle calls, with the outcomes its trouble most often has: a panel
# of requests by outcome shows them at 0 rather than not at all.
POLLED_ENDPOINT = "jobs"
COMMON_API_OUTCOMES = ("ok", "timeout", "connection_error")

RERUN_OUTCOMES = ("started", "flaky", "failed", "released")

# Delivery latency, from the cycle that saw the event to the channel's acceptance: a
# poll interval (60s by default) plus the channel's answer, retries, digests' group_wait,
# and quiet hours at the far end.
LATENCY_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600)


class Metrics:
    def __init__(
        self, accounts: Iterable[str] = (DEFAULT_ACCOUNT,), channels: Iterable[str] = ()
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)  # collects nothing where the interpreter keeps no statistics
        self.polls = Counter(
            "watcher_polls",
            "Poll cycles by account and outcome",
            ["account", "outcome"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "watcher_poll_duration_seconds",
            "Duration of poll cycles",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.poll_interval = Gauge(
            "watcher_poll_interval_seconds",
            "The configured poll.interval (the alerting rules count intervals in it)",
            registry=r,
        )
        self.api_requests = Counter(
            "watcher_api_requests",
            "API requests by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.jobs_followed = Gauge(
            "watcher_jobs_followed", "Unfinished jobs being followed", ["account"], registry=r
        )
        self.catch_up_behind = Gauge(
            "watcher_catch_up_behind_seconds",
            "How far the last step of a catch-up read in steps ends before now (0: none)",
            ["account"],
            registry=r,
        )
        self.events = Counter(
            "watcher_events", "Events by account and kind", ["account", "kind"], registry=r
        )
        self.records_skipped = Counter(
            "watcher_api_records_skipped", "Malformed job records left out", registry=r
        )
        self.alerts = Counter(
            "watcher_alerts",
            "Alert deliveries by channel and outcome",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "watcher_delivery_latency_seconds",
            "From the poll that saw an event to a channel accepting its alert",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outbox_pending = Gauge(
            "watcher_outbox_pending", "Alerts waiting for delivery", registry=r
        )
        self.outbox_given_up = Gauge(
            "watcher_outbox_given_up", "Alerts given up after give_up_after", registry=r
        )
        self.last_success = Gauge(
            "watcher_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll of an account (absent before the first)",
            ["account"],
            registry=r,
        )
        self.leader = Gauge(
            "watcher_leader",
            "1 for each account this replica polls (holds the lease of), else 0",
            ["account"],
            registry=r,
        )
        self.leader_changes = Counter(
            "watcher_leader_changes",
            "Accounts this replica began (taken) or stopped (lost) polling, by account",
            ["account", "change"],
            registry=r,
        )
        self.reruns = Counter(
            "watcher_reruns",
            "The flake filter's reruns by account and what became of them: started (the"
            " start request answered), flaky, failed (the rerun failed too), released",
            ["account", "outcome"],
            registry=r,
        )
        Info("watcher_build", "Build information", registry=r).info({"version": __version__})
        for account in accounts:
            self._known_account(account)
        self.known_channels(channels)
        for outcome in COMMON_API_OUTCOMES:
            self.api_requests.labels(POLLED_ENDPOINT, outcome)

    def _known_account(self, account: str) -> None:
        for poll in PollOutcome:
            self.polls.labels(account, poll)
        for kind in EventKind:
            self.events.labels(account, kind)
        for change in LeaderChange:
            self.leader_changes.labels(account, change)
        self.jobs_followed.labels(account)
        self.catch_up_behind.labels(account)
        self.leader.labels(account)
        for outcome in RERUN_OUTCOMES:
            self.reruns.labels(account, outcome)

    def known_channels(self, channels: Iterable[str]) -> None:
        """Create the series of these channels (at start, and for those a reload adds)."""
        for channel in channels:
            for outcome in DeliveryOutcome:
                self.alerts.labels(channel, outcome)
            self.delivery_latency.labels(channel)

    def poll_done(self, account: str, outcome: PollOutcome) -> None:
        """One account's cycle ended now."""
        self.polls.labels(account, outcome).inc()
        if outcome is PollOutcome.OK:
            self.last_success.labels(account).set_to_current_time()

    def leads(self, account: str, led: bool, *, changed: bool) -> None:
        self.leader.labels(account).set(1 if led else 0)
        if not led:  # its leader follows them now: summed over replicas, counted once
            self.jobs_followed.labels(account).set(0)
        if changed:
            change = LeaderChange.TAKEN if led else LeaderChange.LOST
            self.leader_changes.labels(account, change).inc()

    def delivered(self, channel: str, created: Iterable[datetime], now: datetime) -> None:
        """A channel accepted alerts queued at `created`: how long each took."""
        latency = self.delivery_latency.labels(channel)
        for at in created:
            latency.observe(max(0.0, (now - at).total_seconds()))

    def outbox(self, pending: int, given_up: int) -> None:
        self.outbox_pending.set(pending)
        self.outbox_given_up.set(given_up)
