"""The simulated API in a process of its own, filled with a benchmark's jobs.

Run as ``python -m benchmarks.simserver --jobs N [...]``: builds a `World`, issues one
long-lived bearer token, serves on 127.0.0.1 (a free port) and prints one JSON line
``{"port": ..., "token": ...}`` once listening. Stops on SIGTERM, SIGINT, or when its
stdin closes (the benchmark that started it has gone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from datetime import datetime, timedelta

from watcher.simulator.runner import running_simulator
from watcher.simulator.world import World

TEMPLATES = 50
MIXES = {
    "mixed": (("completed", 70), ("failed", 10), ("expired", 5), ("running", 10), ("pending", 5)),
    "ended": (("completed", 80), ("failed", 12), ("expired", 5), ("cancelled", 3)),
    "failed": (("failed", 1),),
}


def _status(rng: random.Random, mix: str) -> str:
    weights = MIXES[mix]
    return rng.choices([s for s, _ in weights], weights=[w for _, w in weights])[0]


def _add(
    world: World, rng: random.Random, started: datetime, status: str, now: datetime, n: int
) -> None:
    template = n % TEMPLATES
    job = world.add_job(
        name=f"Checkout flow {template} #{n}",
        status=status,
        template=f"jobTemplates/{1000 + template}",
        type=rng.choice(("Single", "Crawl", "Scripted")),
        run_type=rng.choice(("manual", "scheduled")),
        url=f"https://www.example.com/shop/{template}",
        started_at=started,
    )
    if status not in ("running", "pending"):
        job.updated_at = min(now, job.started_at + timedelta(seconds=rng.randint(30, 600)))


def build(args: argparse.Namespace) -> World:
    """The world: `jobs` spread over the last `spread` seconds, `old_running` running
    jobs started hours ago, and `recent` jobs started within the last minute."""
    rng = random.Random(args.seed)
    world = World()
    now = world.now()
    starts: list[tuple[datetime, str]] = []
    old_span = (args.old_to - args.old_from) * 3600.0
    for _ in range(args.old_running):
        ago = args.old_from * 3600.0 + rng.random() * old_span
        starts.append((now - timedelta(seconds=ago), "running"))
    for _ in range(args.jobs):
        ago = 60.0 + rng.random() * max(0.0, args.spread - 60.0)
        starts.append((now - timedelta(seconds=ago), _status(rng, args.mix)))
    for _ in range(args.recent):
        starts.append((now - timedelta(seconds=rng.random() * 50), _status(rng, args.mix)))
    starts.sort(key=lambda pair: pair[0])  # in order: each insort is then an append
    for n, (started, status) in enumerate(starts):
        _add(world, rng, started, status, now, n)
    return world


async def _serve(world: World) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stdin = sys.stdin.fileno()
    loop.add_reader(stdin, lambda: None if os.read(stdin, 4096) else stop.set())
    token = world.tokens.issue(7 * 86400.0)
    async with running_simulator(world, host="127.0.0.1", port=0) as handle:
        print(json.dumps({"port": handle.port, "token": token}), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=0, help="jobs in the recent window")
    parser.add_argument("--spread", type=float, default=1800.0, help="seconds they span")
    parser.add_argument("--mix", choices=sorted(MIXES), default="mixed")
    parser.add_argument("--old-running", type=int, default=0, help="running jobs from long ago")
    parser.add_argument("--old-from", type=float, default=3.0, help="hours ago, youngest")
    parser.add_argument("--old-to", type=float, default=6.0, help="hours ago, oldest")
    parser.add_argument("--recent", type=int, default=0, help="jobs started in the last minute")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    world = build(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(world))


if __name__ == "__main__":
    main()
