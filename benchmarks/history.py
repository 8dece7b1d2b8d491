"""History does not slow a cycle: the same window against an empty state store and
against one pre-filled with a million ended jobs from the past.

The rows go straight into the `jobs` table of the schema `watcher.store` creates, with
executemany in one transaction. Each measurement gets a fresh copy of its store.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import run_child, simulator, watcher_doc
from benchmarks.poll import median
from watcher.settings import StateSettings
from watcher.store import SqliteStore

HISTORY_ID = 50_000_000  # far above the simulator's ids
DAY = 86400.0
_ENDED = ("completed", "completed", "completed", "failed", "expired", "cancelled")
_JOBS_ROW = (
    "INSERT INTO jobs (sref, status, status_since, first_seen, updated_at, started_at,"
    " template, name, ended, followed) VALUES (?,?,?,?,?,?,?,?,1,1)"
)


def _span() -> float:
    """Seconds of past the history spans: within state.retention, so the store keeps it
    (older rows would be pruned by the cycle, a different cost)."""
    retention = getattr(StateSettings(), "retention", 365 * DAY)
    return max(DAY, min(365 * DAY, 0.9 * retention) - DAY)


def _rows(count: int, now: float) -> Iterator[tuple[object, ...]]:
    """Oldest first, each job first seen as it started: the order the watcher writes
    them in (rows are appended as jobs are first seen)."""
    rng = random.Random(7)
    span = _span()
    # from `span` before a day ago up to a day ago
    starts = sorted(now - DAY - rng.random() * span for _ in range(count))
    for n, started in enumerate(starts):
        ended = started + rng.uniform(30, 3600)
        template = f"jobTemplates/{1000 + n % 50}"
        name = f"Checkout flow {n % 50} #{n}"
        status = _ENDED[n % len(_ENDED)]
        yield (f"jobs/{HISTORY_ID + n}", status, ended, started, ended, started, template, name)


def create(path: Path, history: int) -> float:
    """A state store with the watcher's schema, a watermark of now, and `history` ended
    jobs; returns the seconds the history took to insert."""
    asyncio.run(SqliteStore(path).close())
    now = datetime.now(UTC)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        started = time.perf_counter()
        db.execute("BEGIN")
        db.executemany(_JOBS_ROW, _rows(history, now.timestamp()))
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('watermark', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (now.isoformat(),),
        )
        db.execute("COMMIT")
        seconds = time.perf_counter() - started
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return seconds


def _cycle(sim: Any, source: Path, tmp: Path, page_size: int) -> dict[str, Any]:
    state = tmp / "state.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, state)
    doc = watcher_doc(sim, state, page_size=page_size)
    result = run_child("cycles", {"doc": doc, "cycles": 1})
    return {**result["cycles"][0], "peak_rss_mb": result["peak_rss_mb"]}


def measure(window_jobs: int, history: int, repeat: int, page_size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="watcher-bench-") as name:
        tmp = Path(name)
        empty, full = tmp / "empty.db", tmp / "history.db"
        create(empty, 0)
        build = create(full, history)
        size = full.stat().st_size
        runs: dict[str, list[dict[str, Any]]] = {"empty": [], "history": []}
        with simulator(jobs=window_jobs, seed=window_jobs) as sim:
            for _ in range(repeat):
                runs["empty"].append(_cycle(sim, empty, tmp, page_size))
                runs["history"].append(_cycle(sim, full, tmp, page_size))
    empty_wall = median([r["wall"] for r in runs["empty"]])
    history_wall = median([r["wall"] for r in runs["history"]])
    return {
        "window_jobs": window_jobs,
        "history_jobs": history,
        "build_seconds": build,
        "state_file_bytes": size,
        "empty": {
            "wall": empty_wall,
            "cpu": median([r["cpu"] for r in runs["empty"]]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in runs["empty"]]),
        },
        "history": {
            "wall": history_wall,
            "cpu": median([r["cpu"] for r in runs["history"]]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in runs["history"]]),
        },
        "ratio": history_wall / empty_wall,
        "runs": runs,
    }
