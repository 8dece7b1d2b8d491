"""One full poll cycle of the real watcher against the limit, for each window size.

The limit is the same pages fetched from the same simulator by a bare aiohttp loop that
only decodes the JSON. Each measurement runs in a fresh process; the watcher's process
runs two cycles: the first finds every job new (fetch, parse, diff, persist, rules,
alerts), the second finds nothing new (the steady state).

The `store` dimension: with a PostgreSQL server given, each run also times the same two
cycles with `state.url` on a fresh database of that server, right after the SQLite run,
and each is set against the SQLite run beside it (paired, like the limit).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import REALM, Sim, run_child, simulator, watcher_doc

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

PARALLEL = 4  # the watcher's default api.max_concurrency


def limit_spec(sim: Sim, page_size: int, lookback: float) -> dict[str, Any]:
    return {
        "base_url": sim.base_url,
        "token": sim.token,
        "realm": REALM,
        "page_size": page_size,
        "lookback": lookback,
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pg_doc(sim: Sim, url: str, *, page_size: int) -> dict[str, Any]:
    """The benchmark's configuration with the state on PostgreSQL, one replica alone
    (a lease far longer than any measured cycle)."""
    doc = watcher_doc(sim, Path("unused.db"), page_size=page_size)
    doc["state"] = {"url": url}
    doc["ha"] = {"lease": "1h", "replica": "bench"}
    return doc


def _runs(
    sim: Sim, repeat: int, page_size: int, pg: PostgresServer | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Interleaved: limit, parallel limit, watcher (SQLite), watcher (PostgreSQL, a fresh
    database each run, if `pg`); `repeat` times."""
    spec = limit_spec(sim, page_size, 6 * 3600.0)
    runs: dict[str, list[dict[str, Any]]] = {"limit": [], "limit_parallel": [], "watcher": []}
    if pg is not None:
        runs["postgres"] = []
    for _ in range(repeat):
        runs["limit"].append(run_child("limit", spec))
        runs["limit_parallel"].append(run_child("limit", {**spec, "parallel": PARALLEL}))
        with tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp:
            doc = watcher_doc(sim, Path(tmp) / "state.db", page_size=page_size)
            runs["watcher"].append(run_child("cycles", {"doc": doc, "cycles": 2}))
        if pg is not None:
            url = pg.create_database()
            try:
                doc = pg_doc(sim, url, page_size=page_size)
                runs["postgres"].append(run_child("cycles", {"doc": doc, "cycles": 2}))
            finally:
                pg.drop_database(url)
    return runs


def _pg_summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The PostgreSQL runs, each cycle over the SQLite run's beside it (then the median)
    and over the limit run before it."""
    pg, sqlite, limit = runs["postgres"], runs["watcher"], runs["limit"]
    out: dict[str, Any] = {
        "peak_rss_mb": median([r["peak_rss_mb"] for r in pg]),
        "store": pg[0]["store"],
    }
    for key, index in (("first", 0), ("steady", 1)):
        mine = [r["cycles"][index] for r in pg]
        theirs = [r["cycles"][index] for r in sqlite]
        out[key] = {
            "wall": median([c["wall"] for c in mine]),
            "cpu": median([c["cpu"] for c in mine]),
            "sqlite_wall": median([c["wall"] for c in theirs]),
            "vs_sqlite": median([m["wall"] / t["wall"] for m, t in zip(mine, theirs, strict=True)]),
            "vs_limit": median([m["wall"] / r["wall"] for m, r in zip(mine, limit, strict=True)]),
        }
    return out


def summarise(jobs: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    limit, parallel, watcher = runs["limit"], runs["limit_parallel"], runs["watcher"]
    cold = [r["cycles"][0] for r in watcher]
    steady = [r["cycles"][1] for r in watcher]
    out = {
        "jobs": jobs,
        "pages": limit[0]["pages"],
        "limit": {
            "wall": median([r["wall"] for r in limit]),
            "cpu": median([r["cpu"] for r in limit]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in limit]),
        },
        "limit_parallel": {
            "concurrency": PARALLEL,
            "wall": median([r["wall"] for r in parallel]),
            "cpu": median([r["cpu"] for r in parallel]),
        },
        "watcher": {
            "wall": median([c["wall"] for c in cold]),
            "cpu": median([c["cpu"] for c in cold]),
            "gc": median([c["gc"] for c in cold]),
            "requests": cold[0]["requests"],
            "base_rss_mb": median([r["base_rss_mb"] for r in watcher]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in watcher]),
            "store": watcher[0]["store"],
        },
        "steady": {
            "wall": median([c["wall"] for c in steady]),
            "cpu": median([c["cpu"] for c in steady]),
            "requests": steady[0]["requests"],
        },
        "runs": runs,
    }
    if runs.get("postgres"):
        out["postgres"] = _pg_summary(runs)
    # Each watcher run over the limit run just before it, then the median: runs seconds
    # apart share the load of a shared machine, which drifts over a minute or more.
    out["ratio"] = median([c["wall"] / r["wall"] for c, r in zip(cold, limit, strict=True)])
    out["steady"]["ratio"] = median(
        [c["wall"] / r["wall"] for c, r in zip(steady, limit, strict=True)]
    )
    return out


def measure(
    sizes: list[int], repeat: int, page_size: int, pg: PostgresServer | None = None
) -> list[dict[str, Any]]:
    results = []
    for jobs in sizes:
        with simulator(jobs=jobs, seed=jobs) as sim:
            results.append(summarise(jobs, _runs(sim, repeat, page_size, pg)))
    return results


def profile(sizes: list[int], page_size: int, top: int = 15) -> list[dict[str, Any]]:
    """cProfile of the first (all new) and second (nothing new) cycle at each size."""
    out = []
    for jobs in sizes:
        with (
            simulator(jobs=jobs, seed=jobs) as sim,
            tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp,
        ):
            doc = watcher_doc(sim, Path(tmp) / "state.db", page_size=page_size)
            result = run_child("profile", {"doc": doc, "cycles": 2, "top": top})
        for name, cycle, prof in zip(
            ("first cycle, all new", "second cycle, nothing new"),
            result["cycles"],
            result["profiles"],
            strict=True,
        ):
            out.append({"jobs": jobs, "cycle": name, "wall_profiled": cycle["wall"], **prof})
    return out
