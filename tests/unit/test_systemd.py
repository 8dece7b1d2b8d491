"""The STATUS= line that systemd shows for the last poll."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.systemd import AccountPoll, poll_status

AT = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)


def test_status_sums_up_each_account() -> None:
    """Each account polled: what it saw, or why it failed."""
    text = poll_status(
        [AccountPoll("shop-uk", 14, 1, 2), AccountPoll("shop-de", error="GET jobs: HTTP 503")],
        AT,
    )
    assert text == (
        "last poll 2026-03-01 12:00:05Z: shop-uk ok (14 jobs seen, 1 event, 2 alerts queued);"
        " shop-de failed (GET jobs: HTTP 503)"
    )


def test_status_of_a_standby() -> None:
    """A replica that leads no account says it delivers."""
    assert poll_status([], AT).startswith("standby:")
