"""`watcher migrate --to URL`: the SQLite state copied whole into an empty PostgreSQL
database, in one transaction (a failure leaves the target empty), streamed with COPY
(a table is never held in memory whole). The caller holds the state file's lock, so no
daemon writes the file meanwhile."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection

from watcher.models import DEFAULT_ACCOUNT
from watcher.store.base import StoreError
from watcher.store.postgres import PgStore, connect_args, where
from watcher.store.sqlite import SqliteStore

# The columns both schemas share, in one order; PostgreSQL takes SQLite's 0/1 as booleans.
COLUMNS = {
    "jobs": "account, sref, status, status_since, first_seen, updated_at, started_at,"
    " template, name, ended, followed",
    "templates": "account, template, watching_since, streak, last_start, last_name",
    "events": "account, key, kind, sref, from_status, to_status, at, recorded_at, template, lasted",
    "outbox": "id, account, event_key, rule, channel, severity, title, body, sref,"
    " created_at, attempts, next_attempt_at, state, last_error, done_targets, kind,"
    " template, resolvable, held, done_at, vars, title_source, body_source, status, seq,"
    " requeued_at",
    "alert_steps": "alert_id, at, what, detail",
    "silences": "id, matchers, starts_at, ends_at, author, comment, created_at, expired_at",
    "acks": "id, account, job, template, status, streak, last_start, author, comment,"
    " created_at, expired_at",
    "series": "account, template, page, browser, metric, state, regressions, updated_at",
    "lookups": "account, sref, job, started_at, queued_at, attempts",
    "reruns": "account, failed, template, job, rules, state, decided_at, due_at, deadline,"
    " attempts, claimed_at, rerun, rerun_status, last_error, ended_at",
}
# The tables whose ids the target's sequences must continue after.
SEQUENCES = ("outbox", "silences", "acks")
BATCH = 5000


@dataclass(frozen=True, slots=True)
class Copied:
    rows: dict[str, int]
    pending: int
    target: str

    def __str__(self) -> str:
        r = self.rows
        return (
            f"copied {r['jobs']} jobs, {r['templates']} templates, {r['events']} events,"
            f" {r['outbox']} alerts ({self.pending} pending), {r['silences']} silences,"
            f" {r['acks']} acknowledgements to {self.target}"
        )


async def migrate(path: Path, url: str) -> Copied:
    """Copy the state file at `path` into the database at `url`; StoreError if the file
    is not a current state file or the database is not empty."""
    await SqliteStore(path, readonly=True).close()  # refuses a foreign or older file
    await (await PgStore.open(url)).close()  # creates the schema
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        async with (
            await AsyncConnection.connect(url, **connect_args()) as conn,
            conn.transaction(),
        ):
            await _refuse_non_empty(conn, url)
            rows = {table: await _copy(source, conn, table) for table in COLUMNS}
            await _copy_watermarks(source, conn)
            for table in SEQUENCES:
                await conn.execute(
                    f"SELECT setval('{table}_id_seq',"  # noqa: S608  # constant names
                    f" GREATEST((SELECT MAX(id) FROM {table}), 1))"
                )
        pending = source.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
        return Copied(rows, int(pending.fetchone()[0]), where(url))
    except psycopg.Error as exc:
        raise StoreError(f"--to: {where(url)}: {' '.join(str(exc).split())}") from None
    finally:
        source.close()


async def _refuse_non_empty(conn: AsyncConnection[Any], url: str) -> None:
    cursor = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM jobs) OR EXISTS (SELECT 1 FROM events)"
        " OR EXISTS (SELECT 1 FROM templates) OR EXISTS (SELECT 1 FROM outbox)"
        " OR EXISTS (SELECT 1 FROM silences) OR EXISTS (SELECT 1 FROM acks)"
        " OR EXISTS (SELECT 1 FROM meta WHERE key LIKE 'watermark/%')"
    )
    row = await cursor.fetchone()
    if row is not None and row[0]:
        raise StoreError(f"--to: {where(url)} already holds watcher state; give an empty database")


async def _copy(source: sqlite3.Connection, conn: AsyncConnection[Any], table: str) -> int:
    columns = COLUMNS[table]
    rows = source.execute(f"SELECT {columns} FROM {table}")  # noqa: S608  # names are ours
    count = 0
    async with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        while batch := rows.fetchmany(BATCH):
            for row in batch:
                await copy.write_row(row)
            count += len(batch)
    return count


async def _copy_watermarks(source: sqlite3.Connection, conn: AsyncConnection[Any]) -> None:
    """SQLite keeps the default account's watermark as `watermark`; PostgreSQL names every
    account's `watermark/<account>`."""
    for key, value in source.execute("SELECT key, value FROM meta WHERE key LIKE 'watermark%'"):
        name = f"watermark/{DEFAULT_ACCOUNT}" if key == "watermark" else key
        await conn.execute("INSERT INTO meta (key, value) VALUES (%s, %s)", (name, value))
