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

from benchmarks.harness import REALM, Poll, Sim, run_child, simulator, watcher_doc

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
    """The quiet configuration with the state on PostgreSQL, one replica alone (a lease
    far longer than any measured cycle)."""
    doc = quiet_doc(sim, Path("unused.db"), page_size=page_size)
    doc["state"] = {"url": url}
    doc["ha"] = {"lease": "1h", "replica": "bench"}
    return doc


def quiet_doc(sim: Sim, state: Path, *, page_size: int) -> dict[str, Any]:
    """What `watcher once` does on a new install: the first poll records the jobs that
    had ended without alerting on them (`alert_on_first_run: false`, the default)."""
    return watcher_doc(sim, state, page_size=page_size, poll=Poll(alert_on_first_run=False))


def _watcher(doc: dict[str, Any], cycles: int) -> dict[str, Any]:
    return run_child("cycles", {"doc": doc, "cycles": cycles})


def _runs(
    sim: Sim, repeat: int, page_size: int, pg: PostgresServer | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Interleaved, `repeat` times: the limit, the limit 4 requests at a time, the
    watcher's quiet first cycle and its steady cycle (SQLite), its first cycle alerting
    on every job (SQLite), and the quiet pair on PostgreSQL (a fresh database each run),
    if `pg`."""
    spec = limit_spec(sim, page_size, 6 * 3600.0)
    names = ["limit", "limit_parallel", "quiet", "alerting"] + (["postgres"] if pg else [])
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(repeat):
        runs["limit"].append(run_child("limit", spec))
        runs["limit_parallel"].append(run_child("limit", {**spec, "parallel": PARALLEL}))
        with tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp:
            runs["quiet"].append(
                _watcher(quiet_doc(sim, Path(tmp) / "q.db", page_size=page_size), 2)
            )
            doc = watcher_doc(sim, Path(tmp) / "a.db", page_size=page_size)
            runs["alerting"].append(_watcher(doc, 1))
        if pg is not None:
            url = pg.create_database()
            try:
                runs["postgres"].append(_watcher(pg_doc(sim, url, page_size=page_size), 2))
            finally:
                pg.drop_database(url)
    return runs


def _paired(mine: list[dict[str, Any]], theirs: list[dict[str, Any]], key: str) -> float:
    """The median of each run's `key` over the run's beside it: runs seconds apart share
    the load of a shared machine, which drifts over a minute or more."""
    return median([m[key] / t[key] for m, t in zip(mine, theirs, strict=True) if t[key] > 0])


def _cycle(cycles: list[dict[str, Any]], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One cycle of each run, its medians and its ratios to the limits of the same run."""
    limit, parallel = runs["limit"], runs["limit_parallel"]
    return {
        "wall": median([c["wall"] for c in cycles]),
        "cpu": median([c["cpu"] for c in cycles]),
        "gc": median([c["gc"] for c in cycles]),
        "requests": cycles[0]["requests"],
        "wall_vs_limit": _paired(cycles, limit, "wall"),
        "wall_vs_parallel": _paired(cycles, parallel, "wall"),
        "cpu_vs_limit": _paired(cycles, limit, "cpu"),
    }


def _store(measured: list[dict[str, Any]], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A store's quiet pair: first and steady cycle, peak and base RSS, rows written."""
    return {
        "first": _cycle([r["cycles"][0] for r in measured], runs),
        "steady": _cycle([r["cycles"][1] for r in measured], runs),
        "base_rss_mb": median([r["base_rss_mb"] for r in measured]),
        "peak_rss_mb": median([r["peak_rss_mb"] for r in measured]),
        "store": measured[0]["store"],
    }


def summarise(jobs: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    limit, parallel, alerting = runs["limit"], runs["limit_parallel"], runs["alerting"]
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
        "sqlite": _store(runs["quiet"], runs),
        "alerting": {
            **_cycle([r["cycles"][0] for r in alerting], runs),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in alerting]),
            "store": alerting[0]["store"],
        },
        "runs": runs,
    }
    if runs.get("postgres"):
        pg = _store(runs["postgres"], runs)
        for key in ("first", "steady"):
            mine = [r["cycles"][int(key == "steady")] for r in runs["postgres"]]
            theirs = [r["cycles"][int(key == "steady")] for r in runs["quiet"]]
            pg[key]["wall_vs_sqlite"] = _paired(mine, theirs, "wall")
        out["postgres"] = pg
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
            doc = quiet_doc(sim, Path(tmp) / "state.db", page_size=page_size)
            result = run_child("profile", {"doc": doc, "cycles": 2, "top": top})
        for name, cycle, prof in zip(
            ("first cycle, all new (quiet)", "second cycle, nothing new"),
            result["cycles"],
            result["profiles"],
            strict=True,
        ):
            out.append({"jobs": jobs, "cycle": name, "wall_profiled": cycle["wall"], **prof})
    return out
