"""Requests per cycle while unfinished jobs have left the window.

Unfinished (running) jobs started hours ago; a first cycle with a long lookback learns
them; the second cycle's window is short (overlap 2m), so they must be followed. Its
requests are printed beside the minimum: the window's pages plus the cheaper of one GET
per unfinished job or the extra pages of a window widened back to the oldest of them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import REALM, Poll, run_child, simulator, watcher_doc


def measure(unfinished: int, recent: int, page_size: int) -> dict[str, Any]:
    poll = Poll(lookback=12 * 3600.0, overlap=120.0, alert_on_first_run=False)
    with (
        simulator(old_running=unfinished, recent=recent, old_from=3, old_to=6) as sim,
        tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp,
    ):
        doc = watcher_doc(sim, Path(tmp) / "state.db", page_size=page_size, poll=poll)
        spec = {"doc": doc, "base_url": sim.base_url, "token": sim.token, "realm": REALM}
        result = run_child("follow", spec)
    by_get = result["unfinished_outside"]
    by_widening = result["widened_extra_pages"]
    minimum = result["window_pages"] + min(by_get, by_widening)
    return {
        "unfinished": unfinished,
        "recent_jobs": recent,
        "page_size": page_size,
        "requests": result["second"]["requests"],
        "wall": result["second"]["wall"],
        "cpu": result["second"]["cpu"],
        "minimum": minimum,
        "window_pages": result["window_pages"],
        "unfinished_outside_window": by_get,
        "widened_extra_pages": by_widening,
        "ratio": result["second"]["requests"] / minimum,
        "first_cycle": result["first"],
    }
