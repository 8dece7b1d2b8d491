"""Silences, acknowledgements and template runs in the PostgreSQL store: the same rows
as SQLite's (`store.people`), read by the same readers; every replica sees them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from watcher.models import JobState
from watcher.people import Ack, Silence
from watcher.store.base import STATE_COLUMNS
from watcher.store.people import (
    ACK_SELECT,
    RUNS_SELECT,
    SILENCE_COLUMNS,
    ack_row,
    acks_from,
    runs_from,
    silence_row,
    silences_from,
)


class PgPeople:
    """Mixed into PgStore, which provides `_rows`."""

    account: str

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def add_silence(self, silence: Silence, now: datetime) -> int:
        rows = await self._rows(
            f"INSERT INTO silences ({SILENCE_COLUMNS.removeprefix('id, ')})"  # noqa: S608
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            silence_row(silence, now),
        )
        return int(rows[0][0])

    async def silences(self, since: datetime | None = None) -> list[Silence]:
        sql = f"SELECT {SILENCE_COLUMNS} FROM silences"  # noqa: S608  # constant columns
        params: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE LEAST(ends_at, expired_at) > %s"
            params = (since.timestamp(),)
        return silences_from(await self._rows(sql + " ORDER BY id DESC", params))

    async def expire_silence(self, silence_id: int, now: datetime) -> Silence | None:
        await self._rows(
            "UPDATE silences SET expired_at = %s WHERE id = %s AND expired_at IS NULL RETURNING id",
            (now.timestamp(), silence_id),
        )
        found = silences_from(
            await self._rows(
                f"SELECT {SILENCE_COLUMNS} FROM silences WHERE id = %s",  # noqa: S608
                (silence_id,),
            )
        )
        return found[0] if found else None

    async def add_ack(self, ack: Ack, now: datetime) -> int:
        rows = await self._rows(
            "INSERT INTO acks (account, job, template, status, streak, last_start, author,"
            " comment, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            ack_row(ack, now),
        )
        return int(rows[0][0])

    async def acks(self) -> list[Ack]:
        return acks_from(await self._rows(ACK_SELECT + " ORDER BY a.id DESC"))

    async def expire_ack(self, ack_id: int, now: datetime) -> Ack | None:
        await self._rows(
            "UPDATE acks SET expired_at = %s WHERE id = %s AND expired_at IS NULL RETURNING id",
            (now.timestamp(), ack_id),
        )
        found = acks_from(await self._rows(ACK_SELECT + " WHERE a.id = %s", (ack_id,)))
        return found[0] if found else None

    async def runs(self, per_template: int) -> dict[str, list[JobState]]:
        sql = RUNS_SELECT.format(columns=STATE_COLUMNS, mark="%s")
        return runs_from(await self._rows(sql, (self.account, per_template)))
