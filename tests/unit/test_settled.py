"""Settled jobs: what the next listing need not parse, as the store confirms it; and the
followed jobs: what the next cycle need not read."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.models import JobState
from watcher.settled import Followed, Settled
from watcher.store import Lease

NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def test_nothing_is_settled_at_first() -> None:
    assert dict(Settled().statuses) == {}


def test_a_listed_job_the_store_holds_with_that_status_is_settled() -> None:
    settled = Settled()
    settled.settle(set(), {"jobs/1": "failed", "jobs/2": "completed"}, {"jobs/1": "failed"})
    assert dict(settled.statuses) == {"jobs/1": "failed"}


def test_a_read_the_store_did_not_take_is_not_settled() -> None:
    """The tracker ignored the listed status (a change after the end): read it again."""
    settled = Settled()
    settled.settle(set(), {"jobs/1": "completed"}, {"jobs/1": "failed"})
    assert dict(settled.statuses) == {}


def test_a_job_settled_last_time_and_listed_again_stays_settled() -> None:
    """Unchanged jobs are not written again, so the store's word is the last cycle's."""
    settled = Settled()
    settled.settle(set(), {"jobs/1": "failed"}, {"jobs/1": "failed"})
    settled.settle({"jobs/1"}, {}, {})
    assert dict(settled.statuses) == {"jobs/1": "failed"}


def test_only_the_last_cycles_listing_is_kept() -> None:
    """A job the window no longer lists is forgotten: as large as a window, no history."""
    settled = Settled()
    settled.settle(set(), {"jobs/1": "failed"}, {"jobs/1": "failed"})
    settled.settle(set(), {"jobs/2": "expired"}, {"jobs/2": "expired"})
    assert dict(settled.statuses) == {"jobs/2": "expired"}


def test_a_job_listed_again_unchanged_and_parsed_elsewhere_takes_the_parsed_read() -> None:
    """A job settled last time that a read shows with another status (written by this
    cycle) is settled with what the store now holds, or not at all."""
    settled = Settled()
    settled.settle(
        set(), {"jobs/1": "failed", "jobs/2": "failed"}, {"jobs/1": "failed", "jobs/2": "failed"}
    )
    settled.settle({"jobs/1", "jobs/2"}, {}, {"jobs/2": "completed"})
    assert dict(settled.statuses) == {"jobs/1": "failed"}


def test_a_settled_job_read_again_with_the_status_the_store_holds_stays_settled() -> None:
    settled = Settled()
    settled.settle(
        set(), {"jobs/1": "failed", "jobs/2": "failed"}, {"jobs/1": "failed", "jobs/2": "failed"}
    )
    settled.settle({"jobs/1"}, {"jobs/2": "failed"}, {})
    assert dict(settled.statuses) == {"jobs/1": "failed", "jobs/2": "failed"}


def test_the_followed_jobs_are_kept_for_the_same_lease_only() -> None:
    """Under another lease another replica may have committed: read the store then."""
    states = {"jobs/1": JobState("jobs/1", "running", NOW, NOW)}
    followed = Followed()
    followed.keep(states, Lease("a", "r1", 1))
    assert followed.take(Lease("a", "r1", 2)) is None
    followed.keep(states, Lease("a", "r1", 1))
    assert followed.take(Lease("a", "r1", 1)) == states
    assert followed.take(Lease("a", "r1", 1)) is None
