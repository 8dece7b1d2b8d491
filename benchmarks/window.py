"""Memory against the size of the window: the quiet first cycle (what `watcher once`
does on a new install) at a reference size and at a large one, each in a fresh process,
peak RSS compared. Target: the large window's peak at most 1.5x the reference's (memory
that does not grow with the window). Two mixes of jobs: the poll benchmark's (15% of
them unfinished, which the cycle holds in memory: they are followed), and every job
ended (the first poll stages those in a scratch file: `watcher/staging.py`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import run_child, simulator
from benchmarks.poll import quiet_doc

GROWTH_TARGET = 1.5  # peak RSS of the large window / the reference window's


MIXES = ("mixed", "ended")


def _first_cycle(jobs: int, page_size: int, mix: str) -> dict[str, Any]:
    with (
        simulator(jobs=jobs, seed=jobs, mix=mix) as sim,
        tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp,
    ):
        doc = quiet_doc(sim, Path(tmp) / "state.db", page_size=page_size)
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
    for mix in MIXES:
        small, big = _first_cycle(reference, page_size, mix), _first_cycle(large, page_size, mix)
        growth = big["peak_rss_mb"] / small["peak_rss_mb"]
        out["mixes"][mix] = {"reference": small, "large": big, "growth": growth}
    return out
