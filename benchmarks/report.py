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
