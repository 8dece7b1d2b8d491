"""Failover between `watcher run` replicas sharing one PostgreSQL store.

Three replicas (real subprocesses, JSON logs on stdout) poll the simulator through one
database. Each run signals the leader (the replica that logged the latest `poll_done`)
and times, from the signal, until another replica logs its first `poll_done`:

- crash: SIGKILL. The lease runs out on the database's clock (at most `ha.lease` after
  the last renewal), a standby takes it (it looks every second) and polls at once.
  Target: at most lease + one poll interval.
- clean stop: SIGTERM. The leader finishes the cycle in flight and releases its lease; a
  standby takes it within a second and polls at once. Target: at most 2 s.

After each run a fresh replica (a new name) replaces the stopped one, so every run
starts from three. Times are read when the line arrives here (the pipe adds
milliseconds); the signal is sent at a random moment of the poll interval.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Poll, Sim, child_env, simulator, watcher_doc

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

REPLICAS = 3
JOBS = 200


class Replica:
    """`watcher run` in the background; its lines with the monotonic time they arrived."""

    def __init__(self, name: str, config: Path) -> None:
        self.name = name
        self.config = config
        self.lines: list[tuple[float, str]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Replica:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "watcher",
            "--log-format",
            "json",
            "run",
            "-c",
            str(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=child_env(),
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.decode("utf-8", "replace")))

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def first(self, needle: str, after: float = 0.0) -> float | None:
        """When the first line with `needle` arrived after `after`, or None."""
        return next((t for t, line in self.lines if t > after and needle in line), None)

    def last(self, needle: str) -> float | None:
        return next((t for t, line in reversed(self.lines) if needle in line), None)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        assert self._reader is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        await self._reader
        return code

    def tail(self, lines: int = 20) -> str:
        return "".join(line for _, line in self.lines[-lines:])


async def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"failover: timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Cluster:
    def __init__(self, sim: Sim, url: str, folder: Path, lease: float, interval: float) -> None:
        self.sim, self.url, self.folder = sim, url, folder
        self.lease, self.interval = lease, interval
        self.replicas: list[Replica] = []
        self._names = (f"r{n}" for n in itertools.count(1))

    async def add(self) -> Replica:
        name = next(self._names)
        poll = Poll(interval=self.interval, alert_on_first_run=False)
        doc = watcher_doc(self.sim, self.folder / "unused.db", page_size=100, poll=poll)
        doc["state"] = {"url": self.url}
        doc["ha"] = {"lease": f"{self.lease:g}s", "replica": name}
        config = self.folder / f"{name}.yaml"
        config.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
        replica = await Replica(name, config).start()
        self.replicas.append(replica)
        await _until(lambda: replica.first('"watcher_started"'), 60, f"{name} to start")
        return replica

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def leader(self) -> Replica | None:
        polled = [(r.last('"poll_done"'), r) for r in self.live()]
        known = [(t, r) for t, r in polled if t is not None]
        return max(known, key=lambda pair: pair[0])[1] if known else None

    async def handover(self, sig: signal.Signals) -> float:
        """Signal the leader; seconds until another replica's first poll_done."""
        leader = await _until(self.leader, self.lease + self.interval + 60, "a leader")
        # Let the standbys register, then signal at a random moment of the interval.
        await asyncio.sleep(1.0 + random.uniform(0, self.interval))
        leader = self.leader() or leader
        others = [r for r in self.live() if r is not leader]
        sent = time.monotonic()
        leader.signal(sig)

        def taken() -> float | None:
            times = [t for r in others if (t := r.first('"poll_done"', sent)) is not None]
            return min(times) if times else None

        try:
            took = await _until(taken, self.lease + self.interval + 60, "a new leader's poll")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{leader.name}:\n{leader.tail()}") from exc
        code = await leader.wait()
        if sig == signal.SIGTERM and code != 0:
            raise RuntimeError(f"{leader.name} exited {code} on SIGTERM:\n{leader.tail()}")
        await self.add()  # back to three
        return float(took - sent)

    async def close(self) -> None:
        for replica in self.live():
            replica.signal(signal.SIGTERM)
        for replica in self.replicas:
            if replica.proc is not None:
                await replica.wait(30)


def _stats(runs: list[float]) -> dict[str, Any]:
    return {"runs": runs, "median": statistics.median(runs), "max": max(runs), "min": min(runs)}


async def _one_setting(
    sim: Sim, pg: PostgresServer, lease: float, interval: float, repeat: int
) -> dict[str, Any]:
    url = pg.create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="watcher-failover-") as tmp:
            cluster = Cluster(sim, url, Path(tmp), lease, interval)
            try:
                await asyncio.gather(*(cluster.add() for _ in range(REPLICAS)))
                crash = [await cluster.handover(signal.SIGKILL) for _ in range(repeat)]
                clean = [await cluster.handover(signal.SIGTERM) for _ in range(repeat)]
            finally:
                await cluster.close()
    finally:
        pg.drop_database(url)
    return {
        "lease": lease,
        "interval": interval,
        "crash": _stats(crash),
        "clean": _stats(clean),
        "crash_target": lease + interval,
    }


def measure(pg: PostgresServer, settings: list[tuple[float, float]], repeat: int) -> dict[str, Any]:
    """For each (lease, interval): `repeat` crashes, then `repeat` clean stops."""

    async def main() -> list[dict[str, Any]]:
        with simulator(jobs=JOBS, seed=JOBS) as sim:
            return [await _one_setting(sim, pg, lease, i, repeat) for lease, i in settings]

    return {"replicas": REPLICAS, "jobs": JOBS, "settings": asyncio.run(main())}
