"""Prometheus metrics, every name prefixed `watcher_`, in a registry of the daemon's own
(never the process-global one, so tests and reloads start clean)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from watcher import __version__


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._last_success = 0.0
        r = self.registry
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
        self.api_requests = Counter(
            "watcher_api_requests",
            "API requests by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.jobs_followed = Gauge(
            "watcher_jobs_followed", "Unfinished jobs being followed", ["account"], registry=r
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
        self.outbox_pending = Gauge(
            "watcher_outbox_pending", "Alerts waiting for delivery", registry=r
        )
        self.outbox_given_up = Gauge(
            "watcher_outbox_given_up", "Alerts given up after give_up_after", registry=r
        )
        self.last_success = Gauge(
            "watcher_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll of an account",
            ["account"],
            registry=r,
        )
        self.leader = Gauge(
            "watcher_leader",
            "1 for each account this replica polls (holds the lease of), else 0",
            ["account"],
            registry=r,
        )
        self.since_success = Gauge(
            "watcher_seconds_since_last_successful_poll",
            "Seconds since the last successful poll (-1 before the first)",
            registry=r,
        )
        self.since_success.set_function(self._since_success)
        Info("watcher_build", "Build information", registry=r).info({"version": __version__})

    def poll_succeeded(self, account: str) -> None:
        self._last_success = time.time()
        self.last_success.labels(account).set(self._last_success)

    def _since_success(self) -> float:
        return time.time() - self._last_success if self._last_success else -1.0

    def outbox(self, pending: int, given_up: int) -> None:
        self.outbox_pending.set(pending)
        self.outbox_given_up.set(given_up)
