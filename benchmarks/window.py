"""Memory against the size of the window: the quiet first cycle (what `watcher once`
does on a new install) at a reference size and at a large one, each in a fresh process,
peak RSS compared. Target: the large window's peak at most 1.5x the reference's (memory
that does not grow with the window).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import run_child, simulator
from benchmarks.poll import quiet_doc

GROWTH_TARGET = 1.5  # peak RSS of the large window / the reference window's


def _first_cycle(jobs: int, page_size: int) -> dict[str, Any]:
    with (
        simulator(jobs=jobs, seed=jobs) as sim,
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
    small, big = _first_cycle(reference, page_size), _first_cycle(large, page_size)
    return {
        "reference": small,
        "large": big,
        "growth": big["peak_rss_mb"] / small["peak_rss_mb"],
        "target": GROWTH_TARGET,
    }
