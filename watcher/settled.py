"""What a cycle knows from the last committed one: the ended jobs it listed, by the
status the store holds for each (a listing counts such a record without parsing it
while it reads the same: a terminal status is final, so nothing that matters changed),
and the unfinished jobs the store follows.

Owned by the daemon across cycles and handed to the client explicitly; only what the
store confirms is settled, so a read the tracker ignored is read again next time.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Set
from typing import TYPE_CHECKING

import msgspec

from watcher.models import JobState

if TYPE_CHECKING:
    from watcher.store import Lease


ByStatus = Mapping[str, Mapping[str, str]]  # status -> {sref: that same sref}


class Settled:
    """The ended jobs listed by the last committed cycle, by the terminal status the
    store holds for them (each job under one status); as large as one window, never a
    history.

    Each sref maps to itself: a listing that finds a settled job keeps the string this
    map holds, not the one it has just decoded (at 100k jobs, 85k strings: 5 MB)."""

    def __init__(self) -> None:
        self._srefs: dict[str, dict[str, str]] = {}

    @property
    def by_status(self) -> ByStatus:
        return self._srefs

    def settle(
        self, unchanged: Set[str], listed: Mapping[str, str], stored: Mapping[str, str]
    ) -> None:
        """A cycle was committed: `unchanged` are the settled jobs its listings showed
        again with the same status (not parsed), `listed` the other ended jobs they
        showed (sref -> status), `stored` what the store now holds for the ended jobs it
        wrote or knew. A listed job is settled when the store holds that status, this
        cycle or (for a job the cycle did not write) the last one.

        Kept in place: most of a window's settled jobs are listed again every cycle, and
        a dict of them rebuilt each time costs a tenth of a 100k-job steady cycle."""
        by_status = self._srefs
        before: dict[str, str] = {}  # the last word on the listed jobs parsed now
        for status, srefs in by_status.items():
            for sref in listed.keys() & srefs.keys():  # settled again below, or not at all
                before[sref] = status
                del srefs[sref]
            for sref in [sref for sref in srefs if sref not in unchanged]:
                del srefs[sref]
            for sref in stored.keys() & srefs.keys():  # none, unless a read went around
                if stored[sref] != status:
                    del srefs[sref]
        confirmed = (
            (sref, status)
            for sref, status in listed.items()
            if (stored.get(sref) or before.get(sref)) == status  # a status is never ""
        )
        _group(confirmed, by_status)

    def adopt(self, written: Iterable[tuple[str, str]]) -> None:
        """Jobs a cycle wrote as it listed them (sref, status: a first poll's staged
        jobs, 100k at a first poll): settled as they are, grouped apart first, then the
        larger map of each status kept, not copied. A job held under another status
        leaves it (none, at a first poll)."""
        grouped: dict[str, dict[str, str]] = {}
        _group(written, grouped)
        by_status = self._srefs
        for status, srefs in grouped.items():
            for other, held in by_status.items():
                if other != status:
                    for sref in held.keys() & srefs.keys():
                        del held[sref]
            under = by_status.get(status)
            if not under:
                by_status[status] = srefs
            elif len(under) < len(srefs):
                srefs.update(under)
                by_status[status] = srefs
            else:
                under.update(srefs)


def with_ended(by_status: ByStatus, ended: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """`by_status` and the `ended` jobs (sref -> status) a listing has just parsed, which
    take the place of what was settled: for the listing of the span behind a window."""
    merged = {status: dict(srefs) for status, srefs in by_status.items()}
    for sref in ended:
        for srefs in merged.values():
            srefs.pop(sref, None)
    _group(ended.items(), merged)
    return merged


def _group(pairs: Iterable[tuple[str, str]], into: dict[str, dict[str, str]]) -> None:
    """Each (sref, status) under its status in `into`, the sref mapping to itself."""
    for sref, status in pairs:
        under = into.get(status)
        if under is None:
            under = into[sys.intern(status)] = {}
        under[sref] = sref


class Followed:
    """The unfinished jobs the store follows (`Store.open_jobs`) as the last committed
    cycle left them, and the lease it committed under (None: SQLite, the only writer).

    Only a cycle's commit changes which jobs are followed (pruning forgets none), so the
    next cycle under the same lease reads them here instead of from the store: 15k rows
    at 100k jobs, a fifth of a steady cycle. A new lease means another replica may have
    committed since; each cycle takes what is kept, so one that fails anywhere, or
    whose commit's outcome is unknown, leaves the next to read the store."""

    def __init__(self) -> None:
        self._states: dict[str, JobState] | None = None
        self._fence: Lease | None = None

    def take(self, fence: Lease | None) -> dict[str, JobState] | None:
        """What the last cycle committed under `fence`, once; None: read the store."""
        states, self._states = self._states, None
        return states if fence == self._fence else None

    def keep(self, states: Mapping[str, JobState], fence: Lease | None) -> None:
        """A cycle committed under `fence`: `states` is what the store now follows.

        Kept as copies made now, side by side: the states of a large cycle lie among
        100k others that die with it, and a seventh of them kept alive would keep most
        of those pages of memory in use after the cycle (4 MB more at the next one's
        peak, at 100k jobs)."""
        self._states = {sref: msgspec.structs.replace(s) for sref, s in states.items()}
        self._fence = fence
