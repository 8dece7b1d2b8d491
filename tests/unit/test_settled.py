"""Settled jobs: what the next listing need not parse, as the store confirms it."""

from __future__ import annotations

from watcher.settled import Settled


def test_nothing_is_settled_at_first() -> None:
    assert dict(Settled().statuses) == {}


def test_a_listed_job_the_store_holds_with_that_status_is_settled() -> None:
    settled = Settled()
    settled.settle({"jobs/1": "failed", "jobs/2": "completed"}, {"jobs/1": "failed"})
    assert dict(settled.statuses) == {"jobs/1": "failed"}


def test_a_read_the_store_did_not_take_is_not_settled() -> None:
    """The tracker ignored the listed status (a change after the end): read it again."""
    settled = Settled()
    settled.settle({"jobs/1": "completed"}, {"jobs/1": "failed"})
    assert dict(settled.statuses) == {}


def test_a_job_settled_last_time_and_listed_again_stays_settled() -> None:
    """Unchanged jobs are not written again, so the store's word is the last cycle's."""
    settled = Settled()
    settled.settle({"jobs/1": "failed"}, {"jobs/1": "failed"})
    settled.settle({"jobs/1": "failed"}, {})
    assert dict(settled.statuses) == {"jobs/1": "failed"}


def test_only_the_last_cycles_listing_is_kept() -> None:
    """A job the window no longer lists is forgotten: as large as a window, no history."""
    settled = Settled()
    settled.settle({"jobs/1": "failed"}, {"jobs/1": "failed"})
    settled.settle({"jobs/2": "expired"}, {"jobs/2": "expired"})
    assert dict(settled.statuses) == {"jobs/2": "expired"}
