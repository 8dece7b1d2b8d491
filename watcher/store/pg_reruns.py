"""The flake filter's rows in the PostgreSQL store: the same rows and SQL as SQLite's
(`store.reruns`); a change outside a cycle's commit is fenced by the account's lease,
so a deposed leader cannot move a rerun that the new one owns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from psycopg import AsyncConnection

from watcher.flakes import Change, Rerun
from watcher.people import Step
from watcher.store.base import Lease
from watcher.store.reruns import (
    HELD,
    HOLD,
    INSERT_RERUN,
    SELECT_RERUNS,
    hold_step,
    release_update,
    rerun_row,
    reruns_from,
    update_params,
)

T = TypeVar("T")


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class PgReruns:
    """Mixed into PgStore, which provides `_run`, `_rows` and `_fence`."""

    account: str

    async def _run(
        self, work: Callable[[AsyncConnection[Any]], Awaitable[T]], *, budget: float = ...
    ) -> T:
        raise NotImplementedError

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _fence(self, conn: AsyncConnection[Any], lease: Lease) -> None:
        raise NotImplementedError

    async def reruns(self, since: datetime) -> list[Rerun]:
        rows = await self._rows(_pg(SELECT_RERUNS), (self.account, since.timestamp()))
        return reruns_from(rows)

    async def save_rerun(
        self,
        change: Change,
        now: datetime,
        *,
        expect: tuple[str, int] | None = None,
        fence: Lease | None = None,
    ) -> bool:
        async def work(conn: AsyncConnection[Any]) -> bool:
            if fence is not None:
                await self._fence(conn, fence)
            return await write_change(conn, self.account, change, now, expect)

        return await self._run(work)


async def write_change(
    conn: AsyncConnection[Any],
    account: str,
    change: Change,
    now: datetime,
    expect: tuple[str, int] | None = None,
) -> bool:
    """A rerun's change in the caller's transaction (see the SQLite store's `_change`)."""
    if change.new:
        await conn.execute(_pg(INSERT_RERUN), rerun_row(account, change.rerun))
        for key, rule in change.holds:
            ids = await _ids(conn, HOLD, (account, key, rule, now.timestamp()))
            await conn.execute("UPDATE outbox SET state = 'waiting' WHERE id = ANY(%s)", (ids,))
            await _step(conn, ids, hold_step(change))
    else:
        sql, params = update_params(account, change.rerun, expect)
        if (await conn.execute(_pg(sql), params)).rowcount == 0:
            return False
    if change.release is not None:
        ids = await _ids(conn, HELD, (account, change.rerun.sref))
        sql, params = release_update(change.release.state, now)
        for alert_id in ids:
            await conn.execute(_pg(sql), (*params, alert_id))
        await _step(conn, ids, change.release.step)
    return True


async def _ids(conn: AsyncConnection[Any], sql: str, params: Sequence[Any]) -> list[int]:
    cursor = await conn.execute(_pg(sql), params)
    return [row[0] for row in await cursor.fetchall()]


async def _step(conn: AsyncConnection[Any], ids: list[int], step: Step) -> None:
    if ids:
        await conn.execute(
            "INSERT INTO alert_steps (alert_id, at, what, detail)"
            " SELECT unnest(%s::bigint[]), %s, %s, %s",
            (ids, step.at.timestamp(), step.what, step.detail),
        )
