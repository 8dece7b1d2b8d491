"""`watcher run` replicas sharing one real PostgreSQL: one polls, the others stand by,
a clean stop hands over at once, and no failure is lost or sent twice. Then the chaos
proofs of SPEC "Scale-out": the leader SIGKILLed again and again, SIGSTOPped past its
lease, PostgreSQL restarted and stopped under the replicas, replicas added and removed,
and several accounts divided among three replicas."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import CLIENT_ID, CLIENT_SECRET, Hook, config_document, free_port, write_config
from tests.e2e import proc
from tests.postgres import PostgresServer
from watcher.simulator.runner import SimulatorHandle, running_simulator
from watcher.simulator.world import World

LEASE = "3s"  # the shortest ha.lease allowed


def ha_config(
    tmp_path: Path,
    sim: SimulatorHandle,
    hook: Hook,
    url: str,
    name: str,
    lease: str = "3s",
    *,
    first_run: bool = False,
    **overrides: Any,
) -> str:
    poll = {"interval": "0.3s", "alert_on_first_run": first_run}
    doc = config_document(sim, tmp_path, {"hook": hook.url}, poll=poll, **overrides)
    doc["state"] = {"url": url}
    doc["ha"] = {"lease": lease, "replica": name}
    return str(write_config(tmp_path / f"{name}.yaml", doc))


def polls_of(daemon: proc.Daemon) -> int:
    return daemon.output().count('"poll_done"')


def leader_of(replicas: dict[str, proc.Daemon]) -> str:
    """The replica that took the lease last, by its log."""
    taken = [
        (json.loads(line)["timestamp"], name)
        for name, d in replicas.items()
        for line in d.lines
        if '"lease_taken"' in line
    ]
    return max(taken)[1]


def taken_of(daemon: proc.Daemon) -> int:
    return daemon.output().count('"lease_taken"')


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30, what: str = "") -> None:
    """proc.eventually for an asynchronous check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.1)


class Cluster:
    """Replicas of `watcher run` on one PostgreSQL, each named, with its own /readyz."""

    def __init__(self, tmp_path: Path, sim: SimulatorHandle, hook: Hook, url: str, **kw: Any):
        self.tmp_path, self.sim, self.hook, self.url, self.kw = tmp_path, sim, hook, url, kw
        self.replicas: dict[str, proc.Daemon] = {}
        self.ports: dict[str, int] = {}
        self._names = (f"r{n}" for n in itertools.count(1))

    async def add(self, name: str | None = None) -> str:
        """Start a replica (a new name, or `name` again: a replacement in its place)."""
        name = name or next(self._names)
        self.ports[name] = port = free_port()
        path = ha_config(
            self.tmp_path,
            self.sim,
            self.hook,
            self.url,
            name,
            first_run=True,  # failures come from the start: every one is an alert
            server={"listen": f"127.0.0.1:{port}"},
            **self.kw,
        )
        self.replicas[name] = await proc.Daemon(["run", "-c", path]).start()
        return name

    async def new_leader(self) -> None:
        """Wait until some replica logs another `lease_taken`."""
        before = {n: taken_of(d) for n, d in self.replicas.items()}
        await proc.eventually(
            lambda: any(taken_of(d) > before.get(n, 0) for n, d in self.replicas.items()),
            what="a new leader",
        )

    def remove(self, name: str) -> proc.Daemon:
        return self.replicas.pop(name)

    def leader(self) -> str:
        return leader_of(self.replicas)

    async def readyz(self, name: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.ports[name]}/readyz"
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                body: dict[str, Any] = await response.json()
                return body
        except aiohttp.ClientError:
            return {}

    async def leads(self) -> dict[str, list[str]]:
        """Each replica's led accounts, as its /readyz says."""
        return {name: (await self.readyz(name)).get("leads", []) for name in self.replicas}

    async def stop_all(self) -> None:
        codes = {name: await d.stop() for name, d in self.replicas.items()}
        assert codes == dict.fromkeys(self.replicas, 0)


@contextlib.asynccontextmanager
async def failing_all_along(
    worlds: dict[str, World], every: float = 0.4
) -> AsyncIterator[list[str]]:
    """Add a failed job to each world every `every` seconds while the block runs; yields
    the titles expected (grows as it goes)."""
    expected: list[str] = []

    async def feed() -> None:
        for n in itertools.count(1):
            for prefix, world in worlds.items():
                name = f"{prefix}{n}"
                world.add_job(name=name, status="failed")
                expected.append(f"{name} failed")
            await asyncio.sleep(every)

    task = asyncio.create_task(feed())
    try:
        yield expected
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# A replica killed between claiming alerts and sending them leaves them claimed for
# notifier.CLAIM_SECONDS (30 s); then another replica's notifier, which checks the
# outbox at least every 30 s, sends them. Nothing is lost, but it can take that long.
ARRIVAL_TIMEOUT = 120


def assert_each_once(hook: Hook, expected: list[str]) -> None:
    """Every expected alert arrived, and none twice."""
    received = Counter(hook.titles())
    assert set(received) == set(expected)
    assert [t for t, n in received.items() if n > 1] == []


async def all_arrived(hook: Hook, expected: list[str], timeout: float = ARRIVAL_TIMEOUT) -> None:
    want = set(expected)
    await proc.eventually(
        lambda: set(hook.titles()) >= want, timeout, f"{len(want)} alerts to arrive"
    )


async def test_two_replicas_poll_once_and_hand_over_on_a_clean_stop(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    """One leader polls, the standby does not; SIGTERM the leader and the standby takes
    over; each failure is one alert throughout."""
    replicas = {
        name: await proc.Daemon(["run", "-c", ha_config(tmp_path, sim, hook, pg_url, name)]).start()
        for name in ("a", "b")
    }
    await proc.eventually(lambda: any(polls_of(d) for d in replicas.values()))
    first = leader_of(replicas)
    standby = "b" if first == "a" else "a"
    world.add_job(name="Checkout", status="failed")
    await proc.eventually(lambda: hook.titles() == ["Checkout failed"])
    assert polls_of(replicas[standby]) == 0
    assert await replicas[first].stop() == 0
    await replicas[standby].wait_for_line('"lease_taken"')
    world.add_job(name="Search", status="failed")
    await proc.eventually(lambda: len(hook.titles()) == 2)
    await asyncio.sleep(1)  # a few more cycles: nothing else arrives
    assert await replicas[standby].stop() == 0
    assert Counter(hook.titles()) == Counter(["Checkout failed", "Search failed"])


async def test_the_leader_killed_twenty_times_loses_no_alert(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    """SIGKILL the current leader 20 times, a fresh replica in its place each time: a
    new leader takes over every time, every failure arrives, and at most one alert per
    kill (the one in flight between the channel's acceptance and the "sent" commit)
    arrives twice."""
    kills = 20
    cluster = Cluster(tmp_path, sim, hook, pg_url, lease=LEASE)
    for _ in range(3):
        await cluster.add()
    async with failing_all_along({"K": world}) as expected:
        await proc.eventually(lambda: any(polls_of(d) for d in cluster.replicas.values()))
        for _ in range(kills):
            leader = cluster.leader()
            await cluster.remove(leader).kill()
            await cluster.add(leader)  # a fresh replica in its place (same name, new pid)
            await cluster.new_leader()
    await all_arrived(hook, expected)
    await cluster.stop_all()
    received = Counter(hook.titles())
    assert set(received) == set(expected)
    assert sum(n - 1 for n in received.values()) <= kills


async def test_a_leader_paused_past_its_lease_neither_commits_nor_sends_on_waking(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    """SIGSTOP the leader past its lease: another takes over and alerts go on. SIGCONT:
    the paused one notices it lost the lease and polls no more until it takes a lease
    again; no alert is sent twice."""
    cluster = Cluster(tmp_path, sim, hook, pg_url, lease=LEASE)
    for _ in range(3):
        await cluster.add()
    async with failing_all_along({"P": world}) as expected:
        await proc.eventually(lambda: any(polls_of(d) for d in cluster.replicas.values()))
        paused_name = cluster.leader()
        paused = cluster.replicas[paused_name]
        others = {n: d for n, d in cluster.replicas.items() if n != paused_name}
        before = {name: taken_of(d) for name, d in others.items()}
        paused.signal(signal.SIGSTOP)
        await asyncio.sleep(0.5)  # what it wrote before it stopped has been read
        mark = len(paused.lines)
        await proc.eventually(
            lambda: any(taken_of(d) > before[n] for n, d in others.items()), what="a takeover"
        )
        await asyncio.sleep(3)  # past the lease twice over, alerts flowing from the new one
        sent = len(hook.titles())
        await proc.eventually(lambda: len(hook.titles()) > sent, what="alerts to go on")
        paused.signal(signal.SIGCONT)
        await proc.eventually(
            lambda: any(
                '"lease_lost"' in line or '"cycle_fenced"' in line for line in paused.lines[mark:]
            ),
            what="the paused one to notice",
        )
        await asyncio.sleep(3)  # it runs on awake, failures still coming
    await all_arrived(hook, expected)
    await cluster.stop_all()
    woken = paused.lines[mark:]
    first_taken = next((i for i, line in enumerate(woken) if '"lease_taken"' in line), len(woken))
    assert not any('"poll_done"' in line for line in woken[:first_taken])
    assert_each_once(hook, expected)


async def test_postgresql_restarted_and_stopped_under_the_replicas(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, own_postgres: PostgresServer
) -> None:
    """PostgreSQL restarted mid-run, then stopped for a few seconds and started again,
    while failures keep coming: nothing lost, nothing sent twice, the replicas run on
    and stop cleanly."""
    cluster = Cluster(tmp_path, sim, hook, own_postgres.create_database(), lease=LEASE)
    for _ in range(3):
        await cluster.add()
    for replica in cluster.replicas.values():  # all up before the database goes away
        await replica.wait_for_line('"watcher_started"')
    async with failing_all_along({"D": world}) as expected:
        await proc.eventually(lambda: any(polls_of(d) for d in cluster.replicas.values()))
        await all_arrived(hook, expected[:2])
        await asyncio.to_thread(own_postgres.restart)
        mark = len(expected)
        await all_arrived(hook, expected[: mark + 2])  # resumed after the restart
        await asyncio.to_thread(own_postgres.stop)
        await asyncio.sleep(5)  # past the lease: every leader lets go
        await asyncio.to_thread(own_postgres.start)
        mark = len(expected)
        await all_arrived(hook, expected[: mark + 2])  # resumed after the outage
    await all_arrived(hook, expected)
    exited = [
        d for d in cluster.replicas.values() if d.proc is None or d.proc.returncode is not None
    ]
    assert exited == [], [d.output()[-2000:] for d in exited]
    await cluster.stop_all()
    assert_each_once(hook, expected)


async def test_accounts_divide_and_replicas_come_and_go(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    """Three accounts (a simulator each, each its own realm): three replicas end up
    leading one each; a fourth added and two removed while failures keep coming;
    every account stays led by exactly one replica; nothing lost or sent twice."""
    worlds = {"A": world, "B": World(), "C": World()}
    async with (
        running_simulator(
            worlds["B"], realm="realm-b", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        ) as sim_b,
        running_simulator(
            worlds["C"], realm="realm-c", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        ) as sim_c,
    ):
        accounts = {
            "acc-a": {"base_url": sim.base_url, "token_url": sim.token_url},
            "acc-b": {"base_url": sim_b.base_url, "token_url": sim_b.token_url, "realm": "realm-b"},
            "acc-c": {"base_url": sim_c.base_url, "token_url": sim_c.token_url, "realm": "realm-c"},
        }
        cluster = Cluster(tmp_path, sim, hook, pg_url, lease=LEASE, accounts=accounts)

        async def divided(at_most: int) -> bool:
            leads = await cluster.leads()
            led = sorted(a for accs in leads.values() for a in accs)
            return led == sorted(accounts) and all(len(a) <= at_most for a in leads.values())

        async with failing_all_along(worlds) as expected:
            for _ in range(3):
                await cluster.add()
            await until(lambda: divided(at_most=1), what="one account each")
            await all_arrived(hook, expected[:6])
            added = await cluster.add()
            await until(lambda: divided(at_most=1), what="one account each of four")
            assert await cluster.remove("r1").stop() == 0
            await until(lambda: divided(at_most=1), what="one account each of three")
            assert await cluster.remove(added).stop() == 0
            await until(lambda: divided(at_most=2), what="two replicas sharing three")
            mark = len(expected)
            await all_arrived(hook, expected[: mark + 3])
        await all_arrived(hook, expected)
        await cluster.stop_all()
    assert_each_once(hook, expected)
