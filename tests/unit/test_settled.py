"""Settled jobs: what the next listing need not parse, as the store confirms it; and the
followed jobs: what the next cycle need not read."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.models import JobState
from watcher.settled import Followed, Settled, with_ended
from watcher.store import Lease

NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def statuses(settled: Settled) -> dict[str, str]:
    """sref -> status of the settled jobs; each sref maps to itself under its status."""
    found: dict[str, str] = {}
    for status, srefs in settled.by_status.items():
        for sref, same in srefs.items():
            assert same is sref
            assert sref not in found  # one status a job
            found[sref] = status
    return found


def test_nothing_is_settled_at_first() -> None:
    assert statuses(Settled()) == {}


def test_a_listed_job_the_store_holds_with_that_status_is_settled() -> None:
    settled = Settled()
    settled.settle(set(), {"jobs/1": "failed", "jobs/2": "completed"}, {"jobs/1": "failed"})
    assert statuses(settled) == {"jobs/1": "failed"}


def test_a_read_the_store_did_not_take_is_not_settled() -> None:
    """The tracker ignored the listed status (a change after the end): read it again."""
    settled = Settled()
    settled.settle(set(), {"jobs/1": "completed"}, {"jobs/1": "failed"})
    assert statuses(settled) == {}


def test_a_job_settled_last_time_and_listed_again_stays_settled() -> None:
    """Unchanged jobs are not written again, so the store's word is the last cycle's."""
    settled = Settled()
    settled.settle(set(), {"jobs/1": "failed"}, {"jobs/1": "failed"})
    settled.settle({"jobs/1"}, {}, {})
    assert statuses(settled) == {"jobs/1": "failed"}


def test_only_the_last_cycles_listing_is_kept() -> None:
    """A job the window no longer lists is forgotten: as large as a window, no history."""
    settled = Settled()
    settled.settle(set(), {"jobs/1": "failed"}, {"jobs/1": "failed"})
    settled.settle(set(), {"jobs/2": "expired"}, {"jobs/2": "expired"})
    assert statuses(settled) == {"jobs/2": "expired"}


def test_a_job_listed_again_unchanged_and_parsed_elsewhere_takes_the_parsed_read() -> None:
    """A job settled last time that a read shows with another status (written by this
    cycle) is settled with what the store now holds, or not at all."""
    settled = Settled()
    settled.settle(
        set(), {"jobs/1": "failed", "jobs/2": "failed"}, {"jobs/1": "failed", "jobs/2": "failed"}
    )
    settled.settle({"jobs/1", "jobs/2"}, {}, {"jobs/2": "completed"})
    assert statuses(settled) == {"jobs/1": "failed"}


def test_a_settled_job_read_again_with_the_status_the_store_holds_stays_settled() -> None:
    settled = Settled()
    settled.settle(
        set(), {"jobs/1": "failed", "jobs/2": "failed"}, {"jobs/1": "failed", "jobs/2": "failed"}
    )
    settled.settle({"jobs/1"}, {"jobs/2": "failed"}, {})
    assert statuses(settled) == {"jobs/1": "failed", "jobs/2": "failed"}


def test_a_listing_keeps_the_srefs_the_settled_jobs_hold() -> None:
    """The sref a listing finds (decoded anew) leads to the string already kept."""
    settled = Settled()
    kept = "".join(["jobs/", "1"])
    settled.settle(set(), {kept: "failed"}, {kept: "failed"})
    assert settled.by_status["failed"]["jobs/1"] is kept


def test_a_status_change_moves_a_settled_job_to_its_new_status() -> None:
    settled = Settled()
    settled.settle(set(), {"jobs/1": "failed"}, {"jobs/1": "failed"})
    settled.settle(set(), {"jobs/1": "completed"}, {"jobs/1": "completed"})
    assert statuses(settled) == {"jobs/1": "completed"}


def test_the_jobs_a_listing_parsed_take_the_place_of_the_settled_for_the_span_behind() -> None:
    """The listing of the span behind a window skips what the window's listing ended."""
    settled = Settled()
    settled.settle(
        set(), {"jobs/1": "failed", "jobs/2": "failed"}, {"jobs/1": "failed", "jobs/2": "failed"}
    )
    merged = with_ended(settled.by_status, {"jobs/2": "completed", "jobs/3": "expired"})
    assert merged == {
        "failed": {"jobs/1": "jobs/1"},
        "completed": {"jobs/2": "jobs/2"},
        "expired": {"jobs/3": "jobs/3"},
    }
    assert statuses(settled) == {"jobs/1": "failed", "jobs/2": "failed"}  # a copy


def test_jobs_written_as_listed_are_adopted_whole() -> None:
    """A first poll's staged jobs join what the cycle settled, the larger map of a
    status kept, not copied; a job another status held moves to its new one."""
    settled = Settled()
    settled.settle(set(), {"jobs/1": "failed", "jobs/9": "expired"}, {"jobs/1": "failed"})
    settled.adopt([("jobs/2", "failed"), ("jobs/3", "failed"), ("jobs/9", "completed")])
    assert statuses(settled) == {
        "jobs/1": "failed",
        "jobs/2": "failed",
        "jobs/3": "failed",
        "jobs/9": "completed",
    }
    kept = settled.by_status["failed"]
    settled.adopt([("jobs/4", "failed")])
    assert settled.by_status["failed"] is kept  # the larger map is kept, not copied
    settled.adopt([("jobs/2", "expired")])
    assert statuses(settled)["jobs/2"] == "expired"


def test_the_followed_jobs_are_kept_for_the_same_lease_only() -> None:
    """Under another lease another replica may have committed: read the store then."""
    states = {"jobs/1": JobState("jobs/1", "running", NOW, NOW)}
    followed = Followed()
    followed.keep(states, Lease("a", "r1", 1))
    assert followed.take(Lease("a", "r1", 2)) is None
    followed.keep(states, Lease("a", "r1", 1))
    assert followed.take(Lease("a", "r1", 1)) == states
    assert followed.take(Lease("a", "r1", 1)) is None
