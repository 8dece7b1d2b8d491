"""The watcher's benchmark, in one command:

    .venv/bin/python benchmarks/run.py [--quick] [--sizes 1000,10000,100000] [--repeat 5]
                                       [--json out.json] [--parts poll,follow,...]
                                       [--no-postgres] [--leases 10,30]

Parts: `poll` (one full cycle vs the limit of a bare fetch loop, and the steady state,
per window size), `window` (peak memory of a first cycle at 100k and 1M jobs), `startup`
(`watcher --version` and `check`, whole processes), `idle` (the daemon's memory at
rest, one channel), `follow`
(requests per cycle for unfinished jobs outside the window), `history` (a 1M-job state
store vs an empty one), `burst` (1,000 alerts over five webhooks, one slow), `latency`
(status change -> webhook, `watcher run` polling every second), `failover` (three
replicas on PostgreSQL: SIGKILL or SIGTERM the leader, time to the new leader's first
poll) and `profile` (cProfile of the cycle). With PostgreSQL
binaries present, `poll` measures the PostgreSQL store beside SQLite on a throwaway
server started here (benchmarks/pgserver.py); without them it says so and skips. Prints
tables with PASS/MISS beside each target (never fails on a number) and writes JSON
(default benchmarks/results/latest.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    burst,
    failover,
    follow,
    footprint,
    history,
    latency,
    pgserver,
    poll,
    report,
    startup,
    window,
)

PARTS = (
    "poll",
    "window",
    "startup",
    "idle",
    "follow",
    "history",
    "burst",
    "latency",
    "failover",
    "profile",
)
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"


@dataclass(frozen=True)
class Plan:
    """What one run measures, and how big."""

    sizes: list[int]
    repeat: int
    page_size: int
    parts: list[str]
    history_jobs: int
    window_jobs: tuple[int, int]  # the reference window and the large one
    startup_repeat: int
    idle_repeat: int
    unfinished: int
    recent: int
    burst_alerts: int
    slow_delay: float
    latency_changes: int
    profile_sizes: list[int]
    postgres: bool
    failover_settings: list[tuple[float, float]]  # (ha.lease, poll.interval) in seconds
    failover_repeat: int

    @property
    def history_window(self) -> int:
        """10k jobs if measured, else the largest size up to 10k, else the smallest."""
        small = [s for s in self.sizes if s <= 10_000]
        return max(small) if small else min(self.sizes)


def _sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes: positive integers, comma separated")
    return sizes


def _parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown parts {sorted(unknown)}; known: {PARTS}")
    return parts


def parse(argv: list[str] | None) -> tuple[Plan, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI (< 60 s)")
    parser.add_argument("--sizes", type=_sizes, help="jobs in the window (default 1k,10k,100k)")
    parser.add_argument("--repeat", type=int, help="runs per measurement, median (default 5)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write")
    parser.add_argument("--parts", type=_parts, default=list(PARTS), help=",".join(PARTS))
    parser.add_argument("--page-size", type=int, default=100, help="api.page_size (default 100)")
    parser.add_argument("--history-jobs", type=int, help="ended jobs in the history store")
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the PostgreSQL store and failover"
    )
    parser.add_argument(
        "--leases", type=_sizes, help="failover: ha.lease values in s (default 10,30)"
    )
    parser.add_argument("--interval", type=float, help="failover: poll.interval in s (default 5)")
    args = parser.parse_args(argv)
    quick = args.quick
    sizes = args.sizes or ([200] if quick else [1_000, 10_000, 100_000])
    big = [s for s in sizes if s in (10_000, 100_000)]
    plan = Plan(
        sizes=sizes,
        repeat=args.repeat or (1 if quick else 5),
        page_size=args.page_size,
        parts=args.parts,
        history_jobs=args.history_jobs or (20_000 if quick else 1_000_000),
        window_jobs=(200, 2_000) if quick else (100_000, 1_000_000),
        startup_repeat=2 if quick else 10,
        idle_repeat=1 if quick else 3,
        unfinished=100 if quick else 1_000,
        recent=50 if quick else 300,
        burst_alerts=50 if quick else 1_000,
        slow_delay=0.1 if quick else 0.5,
        latency_changes=20 if quick else 200,
        profile_sizes=big or [max(sizes)],
        postgres=not args.no_postgres,
        failover_settings=[
            (float(lease), args.interval or (1.0 if quick else 5.0))
            for lease in (args.leases or ([3] if quick else [10, 30]))
        ],
        failover_repeat=args.repeat or (1 if quick else 5),
    )
    return plan, args.json


def _say(text: str) -> None:
    print(text, flush=True)


def _section(title: str, work: Callable[[], Any], text: Callable[[Any], str]) -> Any:
    _say(f"\n== {title}")
    started = time.perf_counter()
    result = work()
    _say(text(result))
    _say(f"({time.perf_counter() - started:.1f} s)")
    return result


def run(plan: Plan) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        pg = None
        if plan.postgres and {"poll", "failover"} & set(plan.parts):
            pg = stack.enter_context(pgserver.server())
        return _run(plan, pg)


def _run(plan: Plan, pg: pgserver.DurableServer | None) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(PARTS)
    p = plan
    if "poll" in p.parts:
        out["poll"] = _section(
            f"Poll cycle vs limit (bare aiohttp + json.loads), median of {p.repeat},"
            f" page size {p.page_size}",
            lambda: poll.measure(p.sizes, p.repeat, p.page_size, pg),
            report.poll_text,
        )
    if "window" in p.parts:
        small, large = p.window_jobs
        out["window"] = _section(
            f"Memory against the window: quiet first cycle, {small} and {large} jobs",
            lambda: window.measure(small, large, p.page_size),
            report.window_text,
        )
    if "startup" in p.parts:
        out["startup"] = _section(
            "Start-up: whole processes, wall time",
            lambda: startup.measure(p.startup_repeat),
            startup.text,
        )
    if "idle" in p.parts:
        out["idle"] = _section(
            "Idle memory: `watcher run`, one channel, a quiet simulator",
            lambda: footprint.measure(p.idle_repeat),
            footprint.text,
        )
    if "follow" in p.parts:
        out["follow"] = _section(
            "Requests per cycle with unfinished jobs outside the window",
            lambda: follow.measure(p.unfinished, p.recent, p.page_size),
            report.follow_text,
        )
    if "history" in p.parts:
        out["history"] = _section(
            "History does not slow a cycle",
            lambda: history.measure(p.history_window, p.history_jobs, p.repeat, p.page_size),
            report.history_text,
        )
    if "burst" in p.parts:
        out["burst"] = _section(
            "Alert burst",
            lambda: burst.measure(p.burst_alerts, p.slow_delay),
            report.burst_text,
        )
    if "latency" in p.parts:
        out["latency"] = _section(
            "Latency: status change -> webhook",
            lambda: latency.measure(p.latency_changes),
            report.latency_text,
        )
    if "failover" in p.parts and pg is not None:
        server = pg
        out["failover"] = _section(
            "Failover: the leader killed (SIGKILL) or stopped (SIGTERM)",
            lambda: failover.measure(server, p.failover_settings, p.failover_repeat),
            report.failover_text,
        )
    elif "failover" in p.parts:
        _say("\n== Failover: skipped (no PostgreSQL server; see above)")
    if "profile" in p.parts:
        out["profile"] = _section(
            "Profile of the cycle (cProfile; own time inflated for small Python functions)",
            lambda: poll.profile(p.profile_sizes, p.page_size),
            report.profile_text,
        )
    out["targets"] = [
        *report.targets(out["poll"] or []),
        *report.window_targets(out["window"]),
        *report.startup_targets(out["startup"]),
        *report.idle_targets(out["idle"]),
        *report.failover_targets(out["failover"]),
    ]
    _say("\n== Targets")
    _say(report.targets_text(out["targets"]))
    return out


def _meta(plan: Plan, seconds: float, load: tuple[float, ...]) -> dict[str, Any]:
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "seconds": seconds,
        "load_before": load,
        "load_after": os.getloadavg(),
        "plan": asdict(plan),
    }


def main(argv: list[str] | None = None) -> int:
    plan, path = parse(argv)
    load = os.getloadavg()
    _say(f"watcher benchmark: sizes {plan.sizes}, repeat {plan.repeat}, parts {plan.parts}")
    _say(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} (other work skews the numbers)")
    started = time.perf_counter()
    results = run(plan)
    results["meta"] = _meta(plan, time.perf_counter() - started, load)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    _say(f"\nJSON: {path}  ({results['meta']['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
