"""The printed report: tables per part, each target with PASS or MISS beside it (the
benchmark reports; it never fails on a number)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

RATIO_TARGET = 1.5  # cycle wall time / limit, at 10k and 100k jobs
RATIO_SIZES = (10_000, 100_000)
RSS_TARGET_MB = 150.0  # peak RSS at 100k jobs
STEADY_TARGET = 1.2  # second cycle (nothing new) / limit, at 100k jobs
STEADY_SIZES = (100_000,)
PG_FIRST_TARGET = 2.0  # PostgreSQL store's first cycle / SQLite store's, at 100k jobs
PG_STEADY_TARGET = 1.2  # the same for the steady cycle
PG_SIZES = (100_000,)
CLEAN_STOP_TARGET = 2.0  # seconds from SIGTERM of the leader to the new leader's poll


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def targets(poll: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target that applies to the sizes measured, with its verdict."""
    out: list[dict[str, Any]] = []
    for row in poll:
        jobs = row["jobs"]
        if jobs in RATIO_SIZES:
            out.append(_target(f"cycle/limit at {jobs} jobs", row["ratio"], RATIO_TARGET, "x"))
        if jobs in STEADY_SIZES:
            value = row["watcher"]["peak_rss_mb"]
            out.append(_target(f"peak RSS at {jobs} jobs", value, RSS_TARGET_MB, " MB", "<"))
            value = row["steady"]["ratio"]
            out.append(_target(f"steady cycle/limit at {jobs} jobs", value, STEADY_TARGET, "x"))
        pg = row.get("postgres")
        if pg and jobs in PG_SIZES:
            value = pg["first"]["vs_sqlite"]
            out.append(_target(f"PostgreSQL/SQLite first at {jobs}", value, PG_FIRST_TARGET, "x"))
            value = pg["steady"]["vs_sqlite"]
            out.append(_target(f"PostgreSQL/SQLite steady at {jobs}", value, PG_STEADY_TARGET, "x"))
    return out


def failover_targets(failover: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Crash: at most lease + one interval; clean stop: at most 2 s (the max of the runs)."""
    out: list[dict[str, Any]] = []
    for row in (failover or {}).get("settings", []):
        name = f"lease {row['lease']:g}s, interval {row['interval']:g}s"
        bound = row["lease"] + row["interval"]
        out.append(_target(f"crash takeover max ({name})", row["crash"]["max"], bound, " s"))
        out.append(
            _target(f"clean stop max ({name})", row["clean"]["max"], CLEAN_STOP_TARGET, " s")
        )
    return out


def _target(name: str, value: float, bound: float, unit: str, op: str = "<=") -> dict[str, Any]:
    ok = value < bound if op == "<" else value <= bound
    return {
        "target": name,
        "value": value,
        "bound": f"{op} {bound:g}{unit}",
        "verdict": verdict(ok),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, columns right-aligned except the first."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _mark(jobs: int, sizes: Sequence[int], ok: bool) -> str:
    return verdict(ok) if jobs in sizes else ""


def poll_table(poll: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in poll:
        jobs, w, s, lim = r["jobs"], r["watcher"], r["steady"], r["limit"]
        rows.append(
            [
                jobs,
                r["pages"],
                lim["wall"],
                lim["cpu"],
                round(lim["peak_rss_mb"], 1),
                r["limit_parallel"]["wall"],
                w["wall"],
                w["cpu"],
                w["gc"],
                round(w["peak_rss_mb"], 1),
                _mark(jobs, STEADY_SIZES, w["peak_rss_mb"] < RSS_TARGET_MB),
                f"{r['ratio']:.2f}x",
                _mark(jobs, RATIO_SIZES, r["ratio"] <= RATIO_TARGET),
                s["wall"],
                s["cpu"],
                f"{s['ratio']:.2f}x",
                _mark(jobs, STEADY_SIZES, s["ratio"] <= STEADY_TARGET),
            ]
        )
    headers = [
        "jobs",
        "pages",
        "limit s",
        "limit cpu",
        "limit MB",
        "limit||4 s",
        "cycle s",
        "cycle cpu",
        "of it gc",
        "peak MB",
        "<150MB",
        "ratio",
        "<=1.5x",
        "steady s",
        "steady cpu",
        "s.ratio",
        "<=1.2x",
    ]
    return table(headers, rows)


def poll_text(poll: Sequence[dict[str, Any]]) -> str:
    """The SQLite table, then PostgreSQL beside SQLite when it was measured."""
    parts = [poll_table(poll)]
    rows = []
    for r in poll:
        pg = r.get("postgres")
        if not pg:
            continue
        first, steady = pg["first"], pg["steady"]
        rows.append(
            [
                r["jobs"],
                first["sqlite_wall"],
                first["wall"],
                f"{first['vs_sqlite']:.2f}x",
                _mark(r["jobs"], PG_SIZES, first["vs_sqlite"] <= PG_FIRST_TARGET),
                steady["sqlite_wall"],
                steady["wall"],
                f"{steady['vs_sqlite']:.2f}x",
                _mark(r["jobs"], PG_SIZES, steady["vs_sqlite"] <= PG_STEADY_TARGET),
                round(pg["peak_rss_mb"], 1),
            ]
        )
    if rows:
        headers = [
            "jobs",
            "first SQLite s",
            "first PG s",
            "PG/SQLite",
            "<=2x",
            "steady SQLite s",
            "steady PG s",
            "PG/SQLite",
            "<=1.2x",
            "PG peak MB",
        ]
        parts += ["", "PostgreSQL store (durable: fsync on), paired with the SQLite run:"]
        parts.append(table(headers, rows))
    return "\n".join(parts)


def failover_text(f: dict[str, Any] | None) -> str:
    if not f:
        return "(skipped: no PostgreSQL)"
    rows = []
    for row in f["settings"]:
        bound = row["lease"] + row["interval"]
        crash, clean = row["crash"], row["clean"]
        rows.append(
            [
                f"{row['lease']:g} s",
                f"{row['interval']:g} s",
                len(crash["runs"]),
                crash["median"],
                crash["max"],
                f"<= {bound:g} s {verdict(crash['max'] <= bound)}",
                clean["median"],
                clean["max"],
                f"<= {CLEAN_STOP_TARGET:g} s {verdict(clean['max'] <= CLEAN_STOP_TARGET)}",
            ]
        )
    headers = [
        "lease",
        "interval",
        "runs",
        "crash median s",
        "crash max s",
        "target",
        "clean median s",
        "clean max s",
        "target",
    ]
    intro = (
        f"{f['replicas']} `watcher run` replicas on one PostgreSQL; seconds from the signal"
        " to the new leader's first poll_done line"
    )
    return intro + "\n" + table(headers, rows)


def follow_text(f: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{f['unfinished']} running jobs outside a short window ({f['recent_jobs']} recent"
            f" jobs in it), page size {f['page_size']}:",
            f"  requests per cycle: {f['requests']}   minimum possible: {f['minimum']}"
            f" = {f['window_pages']} window page(s) + min({f['unfinished_outside_window']}"
            f" GETs, {f['widened_extra_pages']} pages widened back)"
            f"   ratio {f['ratio']:.1f}x   cycle {f['wall']:.3f} s wall, {f['cpu']:.3f} s cpu",
        ]
    )


def history_text(h: dict[str, Any]) -> str:
    rows = [
        [label, h[key]["wall"], h[key]["cpu"], h[key]["peak_rss_mb"]]
        for label, key in (("empty store", "empty"), (f"{h['history_jobs']:,} ended", "history"))
    ]
    return "\n".join(
        [
            f"window of {h['window_jobs']} jobs; history of {h['history_jobs']:,} ended jobs"
            f" built in {h['build_seconds']:.1f} s; state file"
            f" {h['state_file_bytes'] / 1e6:.1f} MB",
            table(["store", "cycle s", "cycle cpu", "peak MB"], rows),
            f"  history / empty: {h['ratio']:.2f}x",
        ]
    )


def burst_text(b: dict[str, Any]) -> str:
    complete = b["fast_complete"] and b["slow_complete"]
    return "\n".join(
        [
            f"{b['alerts']} alerts across {b['channels']} channels (group_wait 0; one channel"
            f" sleeps {b['slow_delay']} s per request); queued {b['queued']},"
            f" received {b['received']}{'' if complete else ' (INCOMPLETE)'}",
            f"  4 fast channels done after {b['fast_seconds']:.2f} s"
            f" ({b['fast_alerts_per_second']:.1f} alerts/s)",
            f"  slow channel done after {b['slow_seconds']:.2f} s"
            f" (floor {b['slow_floor_seconds']:.1f} s); overall"
            f" {b['alerts_per_second']:.1f} alerts/s",
        ]
    )


def latency_text(lat: dict[str, Any]) -> str:
    return (
        f"{lat['received']}/{lat['changes']} alerts received ({lat['duplicates']} duplicates),"
        f" poll interval {lat['poll_interval']:g} s:  p50 {lat['p50']:.3f} s  p99"
        f" {lat['p99']:.3f} s  (min {lat['min']:.3f}, max {lat['max']:.3f});"
        f" floor {lat['floor']:.3f} s"
    )


def profile_text(profiles: Sequence[dict[str, Any]], top: int = 12) -> str:
    parts = []
    for p in profiles:
        parts.append(
            f"{p['jobs']} jobs, {p['cycle']}: {p['total_seconds']:.2f} s profiled"
            f" ({p['wall_profiled']:.2f} s wall under cProfile)"
        )
        stages = [[s["stage"], s["seconds"], f"{s['share']:.0%}"] for s in p["stages"]]
        parts.append(table(["stage (cumulative)", "s", "share"], stages))
        comps = [[c["component"], c["seconds"], f"{c['share']:.0%}"] for c in p["components"]]
        parts.append(table(["component (own time)", "s", "share"], comps[:top]))
        funcs = [
            [f["function"][:90], f["calls"], f["own_seconds"], f"{f['share']:.0%}"]
            for f in p["top_functions"][:top]
        ]
        parts.append(table(["function (own time)", "calls", "s", "share"], funcs))
        parts.append("")
    return "\n".join(parts)


def targets_text(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "(no target applies to the sizes measured)"
    return table(
        ["target", "value", "bound", "verdict"],
        [[r["target"], r["value"], r["bound"], r["verdict"]] for r in rows],
    )
