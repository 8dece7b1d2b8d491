"""The commands against PostgreSQL, as subprocesses: a database that cannot be used
stops `run` at start (exit 2, saying why, never the password); `once` beside a running
replica takes no lease it holds; `status` names each account's leader."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.conftest import Hook, config_document, write_config
from tests.e2e import proc
from tests.postgres import PASSWORD, PostgresServer
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World


def pg_config(tmp_path: Path, sim: SimulatorHandle, hook: Hook, url: str, name: str = "a") -> str:
    doc = config_document(sim, tmp_path, {"hook": hook.url}, poll={"interval": "0.3s"})
    doc["state"] = {"url": url}
    doc["ha"] = {"lease": "3s", "replica": name}
    return str(write_config(tmp_path / f"{name}.yaml", doc))


async def test_an_unreachable_database_stops_run_at_start(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """Exit 1, not 2: the database may be back soon, and a service manager restarts on 1
    (the systemd unit does not restart after 2, a configuration error)."""
    url = f"postgresql://watcher:{PASSWORD}@127.0.0.1:1/watcher"
    code, out = await proc.run("run", "-c", pg_config(tmp_path, sim, hook, url))
    assert code == 1, out
    assert "state.url: cannot use 127.0.0.1:1/watcher" in out
    assert PASSWORD not in out


async def test_a_wrong_password_stops_run_without_showing_it(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, postgres: PostgresServer
) -> None:
    database = postgres.create_database().rsplit("/", 1)[1]
    url = postgres.url(database, password="wrong-Pa55-7f3a")
    code, out = await proc.run("run", "-c", pg_config(tmp_path, sim, hook, url))
    assert code == 2, out
    assert "password authentication failed" in out
    assert "wrong-Pa55-7f3a" not in out


async def test_a_database_from_a_newer_watcher_is_refused(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, pg_url: str
) -> None:
    path = pg_config(tmp_path, sim, hook, pg_url)
    assert (await proc.run("status", "-c", path))[0] == 0  # creates the schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    code, out = await proc.run("run", "-c", path)
    assert code == 2, out
    assert "written by a newer watcher (schema 99" in out


async def test_once_beside_a_running_replica_polls_nothing_it_leads(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    """`once` takes part in the election: the account has a leader, so it says which
    and exits 2; the running replica alerts once; status shows who leads."""
    replica = await proc.Daemon(["run", "-c", pg_config(tmp_path, sim, hook, pg_url)]).start()
    await replica.wait_for_line('"poll_done"')
    world.add_job(name="Checkout", status="failed")
    await proc.eventually(lambda: hook.titles() == ["Checkout failed"])
    code, out = await proc.run("once", "-c", pg_config(tmp_path, sim, hook, pg_url, "cron"))
    assert code == 2, out
    assert '"account_led_elsewhere"' in out
    assert '"leader": "a"' in out
    code, out = await proc.run("status", "--json", "-c", pg_config(tmp_path, sim, hook, pg_url))
    assert code == 0, out
    status = json.loads(out)
    assert status["accounts"] == [
        {"name": "default", "last_poll": status["last_poll"], "leader": "a"}
    ]
    assert PASSWORD not in status["state"]
    assert await replica.stop() == 0
    assert hook.titles() == ["Checkout failed"]


async def test_once_alone_polls_and_delivers(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    world.add_job(name="Checkout", status="failed")
    path = pg_config(tmp_path, sim, hook, pg_url)
    assert (await proc.run("once", "-c", path))[0] == 0  # the first poll records, alerts not
    world.add_job(name="Search", status="failed")
    code, out = await proc.run("once", "-c", path)
    assert code == 0, out
    assert hook.titles() == ["Search failed"]


async def test_migrate_moves_a_sqlite_installation_and_the_replica_goes_on(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    """A failure alerted on SQLite is not alerted again after the move; a new one is."""
    doc = config_document(sim, tmp_path, {"hook": hook.url}, poll={"interval": "0.3s"})
    sqlite_cfg = str(write_config(tmp_path / "sqlite.yaml", doc))
    assert (await proc.run("once", "-c", sqlite_cfg))[0] == 0
    world.add_job(name="Checkout", status="failed")
    assert (await proc.run("once", "-c", sqlite_cfg))[0] == 0
    assert (await proc.run("migrate", "-c", sqlite_cfg))[0] == 64  # --to is required
    code, out = await proc.run("migrate", "--to", "mysql://x@y/z", "-c", sqlite_cfg)
    assert (code, "--to: not a PostgreSQL URL" in out) == (2, True), out
    code, out = await proc.run("migrate", "--to", pg_url, "-c", sqlite_cfg)
    assert code == 0, out
    assert "copied 1 jobs, 1 templates, 1 events, 1 alerts (0 pending)" in out
    assert PASSWORD not in out
    code, out = await proc.run("migrate", "--to", pg_url, "-c", sqlite_cfg)
    assert (code, "already holds watcher state" in out) == (2, True), out
    world.add_job(name="Search", status="failed")
    assert (await proc.run("once", "-c", pg_config(tmp_path, sim, hook, pg_url)))[0] == 0
    assert hook.titles() == ["Checkout failed", "Search failed"]
