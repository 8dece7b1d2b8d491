"""The printed report: tables per part, each target with PASS or MISS beside it (the
benchmark reports; it never fails on a number)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# Issue 18's targets, each against the limit measured in the same run (paired).
FIRST_CPU_TARGET = 1.5  # quiet first cycle's CPU / the limit's CPU
FIRST_WALL_TARGET = 1.2  # quiet first cycle's wall / the limit reading 4 pages at a time
STEADY_CPU_TARGET = 0.8  # steady cycle's CPU / the limit's CPU
RSS_TARGET_MB = 100.0  # peak RSS of the process (quiet first cycle included)
TARGET_SIZES = (100_000,)
PG_FIRST_TARGET = 2.0  # PostgreSQL store's first cycle / SQLite store's (wall), paired
PG_STEADY_TARGET = 1.2  # the same for the steady cycle
CLEAN_STOP_TARGET = 2.0  # seconds from SIGTERM of the leader to the new leader's poll


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def targets(poll: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target that applies to the sizes measured, with its verdict; the
    PostgreSQL store against the same targets as SQLite, and against SQLite."""
    out: list[dict[str, Any]] = []
    for row in poll:
        jobs = row["jobs"]
        if jobs not in TARGET_SIZES:
            continue
        for label, store in (("SQLite", row["sqlite"]), ("PostgreSQL", row.get("postgres"))):
            if store:
                out += _store_targets(f"{label}, {jobs} jobs", store)
        pg = row.get("postgres")
        if pg:
            value = pg["first"]["wall_vs_sqlite"]
            out.append(_target(f"PostgreSQL/SQLite first at {jobs}", value, PG_FIRST_TARGET, "x"))
            value = pg["steady"]["wall_vs_sqlite"]
            out.append(_target(f"PostgreSQL/SQLite steady at {jobs}", value, PG_STEADY_TARGET, "x"))
    return out


def _store_targets(name: str, store: dict[str, Any]) -> list[dict[str, Any]]:
    first, steady = store["first"], store["steady"]
    return [
        _target(
            f"first cycle CPU / limit CPU ({name})", first["cpu_vs_limit"], FIRST_CPU_TARGET, "x"
        ),
        _target(
            f"first cycle wall / limit||4 wall ({name})",
            first["wall_vs_parallel"],
            FIRST_WALL_TARGET,
            "x",
        ),
        _target(
            f"steady cycle CPU / limit CPU ({name})", steady["cpu_vs_limit"], STEADY_CPU_TARGET, "x"
        ),
        _target(f"peak RSS ({name})", store["peak_rss_mb"], RSS_TARGET_MB, " MB"),
    ]


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
    """The limits, then per store its quiet first and steady cycles with their paired
    ratios, then the first cycle alerting on every job (a stress figure, no target)."""
    limits = [
        [
            r["jobs"],
            r["pages"],
            r["limit"]["wall"],
            r["limit"]["cpu"],
            r["limit_parallel"]["wall"],
            r["limit_parallel"]["cpu"],
            round(r["limit"]["peak_rss_mb"], 1),
        ]
        for r in poll
    ]
    parts = [
        table(
            ["jobs", "pages", "limit s", "limit cpu", "limit||4 s", "limit||4 cpu", "limit MB"],
            limits,
        )
    ]
    rows = []
    for r in poll:
        for label, store in (("SQLite", r["sqlite"]), ("PostgreSQL", r.get("postgres"))):
            if store:
                rows.append(_store_row(r["jobs"], label, store))
    headers = [
        "jobs",
        "store",
        "first s",
        "first cpu",
        "cpu/limit",
        "<=1.5x",
        "wall/limit||4",
        "<=1.2x",
        "steady s",
        "steady cpu",
        "cpu/limit",
        "<=0.8x",
        "base MB",
        "peak MB",
        "<=100MB",
    ]
    parts += [
        "",
        "The watcher, quiet first cycle (the defaults) and steady cycle:",
        table(headers, rows),
    ]
    alerting = [
        [
            r["jobs"],
            r["alerting"]["wall"],
            r["alerting"]["cpu"],
            f"{r['alerting']['cpu_vs_limit']:.2f}x",
            f"{r['alerting']['wall_vs_limit']:.2f}x",
            round(r["alerting"]["peak_rss_mb"], 1),
            r["alerting"]["store"]["outbox"],
        ]
        for r in poll
    ]
    headers = [
        "jobs",
        "first s",
        "first cpu",
        "cpu/limit",
        "wall/limit",
        "peak MB",
        "alerts queued",
    ]
    parts += ["", "First cycle alerting on every ended job (alert_on_first_run: true):"]
    parts.append(table(headers, alerting))
    return "\n".join(parts)


def _store_row(jobs: int, label: str, store: dict[str, Any]) -> list[object]:
    first, steady, peak = store["first"], store["steady"], store["peak_rss_mb"]
    return [
        jobs,
        label,
        first["wall"],
        first["cpu"],
        f"{first['cpu_vs_limit']:.2f}x",
        _mark(jobs, TARGET_SIZES, first["cpu_vs_limit"] <= FIRST_CPU_TARGET),
        f"{first['wall_vs_parallel']:.2f}x",
        _mark(jobs, TARGET_SIZES, first["wall_vs_parallel"] <= FIRST_WALL_TARGET),
        steady["wall"],
        steady["cpu"],
        f"{steady['cpu_vs_limit']:.2f}x",
        _mark(jobs, TARGET_SIZES, steady["cpu_vs_limit"] <= STEADY_CPU_TARGET),
        round(store["base_rss_mb"], 1),
        round(peak, 1),
        _mark(jobs, TARGET_SIZES, peak <= RSS_TARGET_MB),
    ]


def poll_text(poll: Sequence[dict[str, Any]]) -> str:
    """The table, then the PostgreSQL store's cycles over SQLite's when measured."""
    parts = [poll_table(poll)]
    rows = [
        [
            r["jobs"],
            f"{r['postgres']['first']['wall_vs_sqlite']:.2f}x",
            _mark(
                r["jobs"], TARGET_SIZES, r["postgres"]["first"]["wall_vs_sqlite"] <= PG_FIRST_TARGET
            ),
            f"{r['postgres']['steady']['wall_vs_sqlite']:.2f}x",
            _mark(
                r["jobs"],
                TARGET_SIZES,
                r["postgres"]["steady"]["wall_vs_sqlite"] <= PG_STEADY_TARGET,
            ),
        ]
        for r in poll
        if r.get("postgres")
    ]
    if rows:
        headers = ["jobs", "PG/SQLite first", "<=2x", "PG/SQLite steady", "<=1.2x"]
        parts += [
            "",
            "PostgreSQL store (durable: fsync on) over SQLite, paired:",
            table(headers, rows),
        ]
    return "\n".join(parts)


def window_text(w: dict[str, Any]) -> str:
    rows = [
        [
            mix,
            r["jobs"],
            r["stored"],
            r["wall"],
            r["cpu"],
            round(r["base_rss_mb"], 1),
            round(r["peak_rss_mb"], 1),
            f"{m['growth']:.2f}x" if r is m["large"] else "",
            verdict(m["growth"] <= w["target"]) if r is m["large"] else "",
        ]
        for mix, m in w["mixes"].items()
        for r in (m["reference"], m["large"])
    ]
    headers = ["mix", "jobs", "stored", "cycle s", "cycle cpu", "base MB", "peak MB", "growth"]
    return table([*headers, f"<={w['target']:g}x"], rows)


def window_targets(w: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not w:
        return []
    out = []
    for mix, m in w["mixes"].items():
        name = f"peak RSS {m['large']['jobs']} / {m['reference']['jobs']} jobs ({mix})"
        out.append(_target(name, m["growth"], w["target"], "x"))
    return out


def startup_targets(results: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [
        _target(f"{name} start-up (median)", r["median"], r["target"], " s", "<")
        for name, r in (results or {}).items()
        if r["target"] is not None
    ]


def idle_targets(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not result:
        return []
    return [_target("idle RSS of watcher run", result["rss_mb"], result["target_mb"], " MB")]


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
