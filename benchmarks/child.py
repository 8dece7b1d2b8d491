"""The measured process: one measurement per fresh interpreter, so CPU time and peak RSS
are its own and runs do not contaminate each other.

``python -m benchmarks.child KIND SPEC_JSON`` prints one JSON line with the result.
Kinds: ``limit`` (bare aiohttp + json.loads over the window's pages), ``cycles`` (the
real watcher's poll cycles), ``catch_up`` (a catch-up after an outage, and the cycle
after it), ``follow`` (cycles plus what the minimum requests would be), ``profile``
(cycles under cProfile) and ``deliver`` (a cycle, then delivery until SIGTERM; prints
a line when the alerts are queued).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import math
import os
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from benchmarks import hotpath
from benchmarks.harness import Meter, peak_rss_mb, reset_peak, rss_mb

Spec = dict[str, Any]


def _emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


# -- the limit: fetch and decode, nothing else ------------------------------------------


def _page_url(base: str, start: datetime, end: datetime, page: int, size: int) -> URL:
    """The same URL the watcher's client builds for a page."""
    query = {
        "fromDate": start.isoformat(timespec="seconds"),
        "toDate": end.isoformat(timespec="seconds"),
        "page": str(page),
        "pageSize": str(size),
    }
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
    return URL(f"{base}/jobs?{encoded}", encoded=True)


async def _fetch_all(spec: Spec, parallel: int) -> tuple[int, int]:
    """Read every page of the window; (pages, jobs). `parallel` > 1: after page 1 gives
    the total, the other pages go `parallel` at a time."""
    base, size = spec["base_url"], int(spec["page_size"])
    end = datetime.now(UTC)
    start = end - timedelta(seconds=float(spec["lookback"]))
    headers = {"Realm": spec["realm"], "Authorization": f"Bearer {spec['token']}"}
    connector = aiohttp.TCPConnector(limit=parallel + 1)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def page(n: int) -> tuple[int, int]:
            async with session.get(_page_url(base, start, end, n, size)) as resp:
                body = await resp.read()
            data = json.loads(body)
            return len(data["results"]), int(data["meta"]["paginationTotalResults"])

        jobs, total = await page(1)
        pages = max(1, math.ceil(total / size))
        if parallel <= 1:
            for n in range(2, pages + 1):
                jobs += (await page(n))[0]
            return pages, jobs
        gate = asyncio.Semaphore(parallel)

        async def gated(n: int) -> int:
            async with gate:
                return (await page(n))[0]

        rest = await asyncio.gather(*(gated(n) for n in range(2, pages + 1)))
        return pages, jobs + sum(rest)


async def limit(spec: Spec) -> dict[str, Any]:
    base = rss_mb()
    reset_peak()
    with Meter() as meter:
        pages, jobs = await _fetch_all(spec, int(spec.get("parallel", 1)))
    return {
        **meter.as_dict(),
        "pages": pages,
        "jobs": jobs,
        "base_rss_mb": base,
        "peak_rss_mb": peak_rss_mb(),
    }


# -- the watcher ------------------------------------------------------------------------


def _devnull() -> Any:
    return open(os.devnull, "w", encoding="utf-8")


async def _daemon(spec: Spec, clock: Callable[[], datetime] | None = None) -> Any:
    """The daemon of `spec["doc"]` (on `clock`, if given: else the API's), its store
    opened (SQLite or PostgreSQL); on PostgreSQL it takes every account's lease first, as
    a lone replica would."""
    from watcher import logs
    from watcher.app import Daemon, open_state
    from watcher.leadership import Elector
    from watcher.settings import Settings

    logs.configure(fmt="json", level=spec.get("log_level", "info"), stream=_devnull())
    settings = Settings(**spec["doc"])
    daemon = Daemon(settings, store=await open_state(settings, dry_run=False), clock=clock)
    if isinstance(daemon.leadership, Elector):
        await daemon.leadership.take_all()
        if not daemon.leadership.leads():
            raise RuntimeError("the benchmark replica could not take the lease")
    return daemon


async def _release(daemon: Any) -> None:
    from watcher.leadership import Elector

    if isinstance(daemon.leadership, Elector):
        await daemon.leadership.release_all()
    await daemon.close()


_COUNTED = ("jobs", "events", "outbox")


def _store_counts(state: dict[str, Any]) -> dict[str, int]:
    if "url" in state:
        import psycopg

        with psycopg.connect(state["url"]) as conn:
            return {
                table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # type: ignore[index]  # noqa: S608
                for table in _COUNTED
            }
    db = sqlite3.connect(f"file:{state['path']}?mode=ro", uri=True)
    try:
        return {
            table: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
            for table in _COUNTED
        }
    finally:
        db.close()


async def _one_cycle(daemon: Any, wrap: Callable[[Awaitable[bool]], Awaitable[bool]]) -> Spec:
    before = daemon.client.requests
    with Meter() as meter:
        ok = await wrap(daemon.poll_once())
    if not ok:
        raise RuntimeError(f"the poll failed: {daemon.last_error}")
    return {**meter.as_dict(), "requests": daemon.client.requests - before}


async def _plain(step: Awaitable[bool]) -> bool:
    return await step


async def _timed(
    daemon: Any, spec: Spec, count: int, wrap: Callable[[Awaitable[bool]], Awaitable[bool]]
) -> Spec:
    """`count` poll cycles of `daemon`, each timed on its own, peak RSS over them all;
    then the daemon is released."""
    base = rss_mb()
    reset_peak()
    try:
        results = [await _one_cycle(daemon, wrap) for _ in range(count)]
    finally:
        await _release(daemon)
    return {
        "cycles": results,
        "base_rss_mb": base,
        "peak_rss_mb": peak_rss_mb(),
        "store": _store_counts(spec["doc"]["state"]),
    }


async def cycles(spec: Spec, wrap: Callable[[Awaitable[bool]], Awaitable[bool]] = _plain) -> Spec:
    """`spec["cycles"]` poll cycles of one daemon, each timed on its own."""
    return await _timed(await _daemon(spec), spec, int(spec.get("cycles", 1)), wrap)


async def catch_up(spec: Spec) -> Spec:
    """A first cycle `spec["outage"]` seconds ago, which finds no job (the clock set
    back); then, at the right time, the catch-up over every job since and the cycle
    after it, each timed. Peak RSS covers those two."""
    behind = [timedelta(seconds=float(spec["outage"]))]
    daemon = await _daemon(spec, clock=lambda: datetime.now(UTC) - behind[0])
    try:
        await _one_cycle(daemon, _plain)
    except BaseException:
        await _release(daemon)
        raise
    behind[0] = timedelta(0)
    return await _timed(daemon, spec, 2, _plain)


async def _total(spec: Spec, start: datetime, end: datetime) -> int:
    """How many jobs the API lists in [start, end] (one request for one job)."""
    if end <= start:
        return 0
    headers = {"Realm": spec["realm"], "Authorization": f"Bearer {spec['token']}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(_page_url(spec["base_url"], start, end, 1, 1)) as resp,
    ):
        data = await resp.json()
    return int(data["meta"]["paginationTotalResults"])


async def follow(spec: Spec) -> Spec:
    """Cycle 1 learns the unfinished jobs (long window); cycle 2 runs with the window the
    watcher chooses (short) and is counted against the least it could have asked."""
    daemon = await _daemon(spec)
    try:
        first = await _one_cycle(daemon, _plain)
        open_jobs = await daemon.store.open_jobs()
        since = await daemon.store.watermark() - timedelta(seconds=daemon.settings.poll.overlap)
        second = await _one_cycle(daemon, _plain)
        until = await daemon.store.watermark()
    finally:
        await _release(daemon)
    size = int(spec["doc"]["api"]["page_size"])
    outside = [s.started_at or s.first_seen for s in open_jobs.values()]
    outside = [t for t in outside if t < since]
    window_jobs = await _total(spec, since, until)
    gap_jobs = await _total(spec, min(outside), since - timedelta(seconds=1)) if outside else 0
    return {
        "first": first,
        "second": second,
        "window_jobs": window_jobs,
        "window_pages": max(1, math.ceil(window_jobs / size)),
        "unfinished_outside": len(outside),
        "widened_extra_pages": math.ceil(gap_jobs / size),
    }


async def profile(spec: Spec) -> Spec:
    """Cycles under cProfile, one profile per cycle; summaries from `hotpath`."""
    profiles: list[cProfile.Profile] = []

    async def profiled(step: Awaitable[bool]) -> bool:
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()
        try:
            return await step
        finally:
            prof.disable()

    measured = await cycles(spec, profiled)
    top = int(spec.get("top", 15))
    return {
        "cycles": measured["cycles"],
        "profiles": [hotpath.summarise(p, top) for p in profiles],
    }


async def deliver(spec: Spec) -> Spec:
    """One cycle queues the alerts; then the notifier delivers until SIGTERM."""
    daemon = await _daemon(spec)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await _one_cycle(daemon, _plain)
        queued = (await daemon.store.outbox_counts()).pending
        _emit({"queued": queued, "at": datetime.now(UTC).timestamp()})
        with Meter() as meter:
            await daemon.notifier.run(stop)
        counts = await daemon.store.outbox_counts()
    finally:
        await _release(daemon)
    return {**meter.as_dict(), "pending": counts.pending, "sent": counts.sent}


KINDS: dict[str, Callable[[Spec], Coroutine[Any, Any, Spec]]] = {
    "limit": limit,
    "cycles": cycles,
    "follow": follow,
    "catch_up": catch_up,
    "profile": profile,
    "deliver": deliver,
}


def main(argv: list[str]) -> None:
    kind, spec = argv[0], json.loads(argv[1])
    _emit(asyncio.run(KINDS[kind](spec)))


if __name__ == "__main__":
    main(sys.argv[1:])
