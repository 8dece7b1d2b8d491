"""Memory against the size of the window, at a reference size and at a large one, each
in a fresh process, peak RSS compared. Target: the large window's peak at most 1.5x the
reference's (memory that does not grow with the window).

Two cycles are measured: the quiet first cycle (what `watcher once` does on a new
install; it stages the jobs that can make no event in a scratch file:
`watcher/staging.py`), and the catch-up after an outage that every job started in
(read in steps of new jobs, each committed: `poller.stepped`), with the cycle after it.
Two mixes of jobs: the poll benchmark's (15% of them unfinished, which are followed:
held in memory, and read again by the catch-up's last step), and every job ended.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import Poll, run_child, simulator, watcher_doc
from benchmarks.poll import quiet_doc

GROWTH_TARGET = 1.5  # peak RSS of the large window / the reference window's


MIXES = ("mixed", "ended")


OUTAGE = 7 * 3600.0  # seconds the catch-up reaches back: before every job started


def _measured(jobs: int, page_size: int, mix: str, catch_up: bool) -> dict[str, Any]:
    with (
        simulator(jobs=jobs, seed=jobs, mix=mix) as sim,
        tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp,
    ):
        state = Path(tmp) / "state.db"
        if catch_up:  # the default overlap: a step lists little that it knows
            poll = Poll(overlap=120.0, alert_on_first_run=False)
            doc = watcher_doc(sim, state, page_size=page_size, poll=poll)
            result = run_child("catch_up", {"doc": doc, "outage": OUTAGE})
        else:
            doc = quiet_doc(sim, state, page_size=page_size)
            result = run_child("cycles", {"doc": doc, "cycles": 1})
    cycle = result["cycles"][0]
    return {
        "jobs": jobs,
        "wall": cycle["wall"],
        "cpu": cycle["cpu"],
        "base_rss_mb": result["base_rss_mb"],
        "peak_rss_mb": result["peak_rss_mb"],
        "stored": result["store"]["jobs"],
    }


def measure(reference: int, large: int, page_size: int) -> dict[str, Any]:
    out: dict[str, Any] = {"target": GROWTH_TARGET, "mixes": {}}
    for catch_up in (False, True):
        for mix in MIXES:
            small = _measured(reference, page_size, mix, catch_up)
            big = _measured(large, page_size, mix, catch_up)
            growth = big["peak_rss_mb"] / small["peak_rss_mb"]
            name = f"catch-up, {mix}" if catch_up else mix
            out["mixes"][name] = {"reference": small, "large": big, "growth": growth}
    return out
