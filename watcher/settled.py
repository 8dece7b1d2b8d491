"""What a cycle knows from the last committed one: the ended jobs it listed, with the
status the store holds for each. A listing counts such a record without parsing it
while it reads the same (a terminal status is final, so nothing that matters changed).

Owned by the daemon across cycles and handed to the client explicitly; only what the
store confirms is settled, so a read the tracker ignored is read again next time.
"""

from __future__ import annotations

from collections.abc import Mapping


class Settled:
    """sref -> terminal status of the ended jobs listed by the last committed cycle;
    as large as one window, never a history."""

    def __init__(self) -> None:
        self._statuses: dict[str, str] = {}

    @property
    def statuses(self) -> Mapping[str, str]:
        return self._statuses

    def settle(self, listed: Mapping[str, str], stored: Mapping[str, str]) -> None:
        """A cycle was committed: `listed` are the ended jobs (sref -> status) its
        listings showed, `stored` what the store now holds for the ended jobs it wrote
        or knew. A listed job is settled when the store holds that status, this cycle or
        (for a job the cycle did not write) the last one."""
        before = self._statuses
        self._statuses = {
            sref: status
            for sref, status in listed.items()
            if (stored.get(sref) or before.get(sref)) == status  # a status is never ""
        }
