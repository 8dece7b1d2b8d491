"""The outbox and the leases of the PostgreSQL store, which every replica shares.

Delivery: any replica sends; it first claims a batch (`claim`: FOR UPDATE SKIP LOCKED,
so two replicas never wait on each other or take the same alert) until a time on the
database's clock, renewed right before the send. A replica that dies mid-send leaves a
claim that expires, and the alert goes from another replica. Claimers are process
instances (`replica/nonce`): a replica restarted under the same name does not take
its predecessor's claims for its own.

Leases: a row per account with its holder, its expiry (the database's clock) and an
epoch that grows with every change of holder; a cycle's commit checks its epoch in the
same transaction (`postgres._hold`). A renewal succeeds while the epoch is unchanged,
even past the expiry if nobody took the account meanwhile: nothing was written by
anyone else. `replicas` records who is alive, so each takes about its share.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

from psycopg import AsyncConnection

from watcher.models import Alert, EventKind, OutboxItem
from watcher.people import AlertRecord, Step
from watcher.store.base import Leader, Lease, OutboxCounts, dt
from watcher.store.outbox import (
    DUE_COLUMNS,
    REPORT_COLUMNS,
    SELECT_ALERTS,
    STEP_COLUMNS,
    alert_records,
    outbox_item,
    record_id,
    records_query,
    report_item,
)

T = TypeVar("T")


class PgOutbox:
    """Mixed into PgStore, which provides `_run` and `_rows`. A recorded outcome (sent,
    retry, held...) ends the claim."""

    async def _run(
        self, work: Callable[[AsyncConnection[Any]], Awaitable[T]], *, budget: float = ...
    ) -> T:
        raise NotImplementedError

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _update(self, sql: str, params: Sequence[Any]) -> int:
        async def work(conn: AsyncConnection[Any]) -> int:
            return (await conn.execute(sql, params)).rowcount

        return await self._run(work)

    async def due(
        self, now: datetime, limit: int = 1000, busy: Collection[str] = ()
    ) -> list[OutboxItem]:
        """Pending alerts due, oldest first, not claimed by a replica, leaving out the
        `busy` channels."""
        rows = await self._rows(
            SELECT_ALERTS + DUE_COLUMNS + " FROM outbox WHERE state = 'pending'"
            " AND next_attempt_at <= %s AND NOT (channel = ANY(%s)) AND (claim_until IS NULL"
            " OR claim_until < extract(epoch FROM now()))"
            " ORDER BY id LIMIT %s",
            (now.timestamp(), list(busy), limit),
        )
        return [outbox_item(row) for row in rows]

    async def claim(self, ids: Sequence[int], holder: str, seconds: float) -> set[int]:
        """Those of `ids` that are now `holder`'s to send for `seconds`: still pending,
        and not claimed, or not being claimed, by another replica."""
        rows = await self._rows(
            "UPDATE outbox SET claimed_by = %s, claim_until = extract(epoch FROM now()) + %s"
            " WHERE id IN (SELECT id FROM outbox WHERE id = ANY(%s) AND state = 'pending'"
            " AND (claim_until IS NULL OR claim_until < extract(epoch FROM now())"
            " OR claimed_by = %s) FOR UPDATE SKIP LOCKED) RETURNING id",
            (holder, seconds, list(ids), holder),
        )
        return {row[0] for row in rows}

    async def next_due(self) -> datetime | None:
        """The earliest time an alert may be sent: its next attempt, or the end of
        another replica's claim on it."""
        rows = await self._rows(
            "SELECT MIN(GREATEST(next_attempt_at, COALESCE(claim_until, 0)"
            " - extract(epoch FROM now()) + %s)) FROM outbox WHERE state = 'pending'",
            (datetime.now().timestamp(),),
        )
        return dt(rows[0][0])

    async def _mark(self, sql: str, params: Sequence[Any], step: Step) -> None:
        """An update of some alerts (returning their ids) and the step of their lives it
        is, in one statement."""
        await self._update(
            f"WITH done AS ({sql} RETURNING id) INSERT INTO alert_steps"  # noqa: S608  # ours
            " (alert_id, at, what, detail) SELECT id, %s, %s, %s FROM done",
            (*params, step.at.timestamp(), step.what, step.detail),
        )

    async def mark_sent(self, ids: Sequence[int], now: datetime) -> None:
        await self._mark(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, done_at = %s,"
            " last_error = '', claimed_by = NULL, claim_until = NULL WHERE id = ANY(%s)",
            (now.timestamp(), list(ids)),
            Step(now, "sent"),
        )

    async def mark_retry(
        self,
        ids: Sequence[int],
        next_at: datetime,
        error: str,
        done_targets: frozenset[int],
        *,
        now: datetime,
    ) -> None:
        done = ",".join(str(t) for t in sorted(done_targets))
        await self._mark(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = %s, last_error = %s,"
            " done_targets = %s, claimed_by = NULL, claim_until = NULL WHERE id = ANY(%s)",
            (next_at.timestamp(), error, done, list(ids)),
            Step(now, "attempt", error),
        )

    async def mark_held(self, ids: Sequence[int], until: datetime, *, now: datetime) -> None:
        await self._mark(
            "UPDATE outbox SET held = TRUE, next_attempt_at = %s, claimed_by = NULL,"
            " claim_until = NULL WHERE id = ANY(%s)",
            (until.timestamp(), list(ids)),
            Step(now, "held", f"quiet hours until {until.isoformat()}"),
        )

    async def mark_resolved(self, ids: Sequence[int], now: datetime) -> None:
        await self._mark(
            "UPDATE outbox SET state = 'resolved', done_at = %s, claimed_by = NULL,"
            " claim_until = NULL WHERE id = ANY(%s)",
            (now.timestamp(), list(ids)),
            Step(now, "resolved", "over before quiet hours ended"),
        )

    async def mark_given_up(self, ids: Sequence[int], now: datetime, error: str) -> None:
        await self._mark(
            "UPDATE outbox SET state = 'given_up', attempts = attempts + 1, done_at = %s,"
            " last_error = %s, claimed_by = NULL, claim_until = NULL WHERE id = ANY(%s)",
            (now.timestamp(), error, list(ids)),
            Step(now, "given_up", error),
        )

    async def mark_dropped(self, ids: Sequence[int], step: Step) -> None:
        await self._mark(
            "UPDATE outbox SET state = %s, done_at = %s, claimed_by = NULL,"
            " claim_until = NULL WHERE state = 'pending' AND id = ANY(%s)",
            (step.what, step.at.timestamp(), list(ids)),
            step,
        )

    async def requeue(self, ids: Sequence[int] | None, now: datetime) -> list[int]:
        chosen = None if ids is None else list(ids)
        stamp = now.timestamp()
        rows = await self._rows(
            "WITH done AS (UPDATE outbox SET state = 'pending', attempts = 0,"
            " next_attempt_at = %s, requeued_at = %s, held = FALSE, done_at = NULL,"
            " claimed_by = NULL, claim_until = NULL WHERE state = 'given_up'"
            " AND (%s::bigint[] IS NULL OR id = ANY(%s)) RETURNING id),"
            " steps AS (INSERT INTO alert_steps (alert_id, at, what)"
            " SELECT id, %s, 'requeued' FROM done) SELECT id FROM done ORDER BY id",
            (stamp, stamp, chosen, chosen, stamp),
        )
        return [row[0] for row in rows]

    async def alert_records(
        self,
        since: datetime,
        *,
        channel: str | None = None,
        state: str | None = None,
        ids: Sequence[int] | None = None,
        limit: int = 500,
    ) -> list[AlertRecord]:
        sql, params = records_query("%s", since, channel, state, limit)
        if ids is not None:
            sql = sql.replace(" ORDER BY", " AND id = ANY(%s) ORDER BY")
            params = [*params[:-1], list(ids), params[-1]]
        rows = await self._rows(sql, params)
        found = [record_id(row) for row in rows]
        steps = await self._rows(
            f"SELECT {STEP_COLUMNS} FROM alert_steps"  # noqa: S608  # constant columns
            " WHERE alert_id = ANY(%s) ORDER BY at, ctid",
            (found,),
        )
        return alert_records(rows, steps)

    async def resolved(self, alert: Alert) -> bool:
        """Whether what an alert reported is over (see the SQLite store's)."""
        if alert.kind is EventKind.STUCK:
            rows = await self._rows(
                "SELECT status FROM jobs WHERE account = %s AND sref = %s",
                (alert.account, alert.sref),
            )
            return bool(rows) and bool(alert.status) and rows[0][0] != alert.status
        if alert.template:
            rows = await self._rows(
                "SELECT streak FROM templates WHERE account = %s AND template = %s",
                (alert.account, alert.template),
            )
            return bool(rows) and rows[0][0] == 0
        return False

    async def outbox_counts(self, *, sent: bool = True) -> OutboxCounts:
        sql = (
            "SELECT COUNT(*) FILTER (WHERE state = 'pending'),"
            " COUNT(*) FILTER (WHERE state = 'given_up'),"
            " COUNT(*) FILTER (WHERE state = 'sent') FROM outbox"
        )
        if not sent:  # the partial indexes only
            sql = (
                "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending'),"
                " (SELECT COUNT(*) FROM outbox WHERE state = 'given_up'), 0"
            )
        pending, given_up, done = (await self._rows(sql))[0]
        return OutboxCounts(pending=pending, sent=done, given_up=given_up)

    async def outbox_items(
        self, state: str, limit: int = 50
    ) -> list[tuple[Alert, dict[str, object]]]:
        rows = await self._rows(
            SELECT_ALERTS + REPORT_COLUMNS + " FROM outbox WHERE state = %s"
            " ORDER BY id DESC LIMIT %s",
            (state, limit),
        )
        return [report_item(row) for row in rows]

    # -- leases -------------------------------------------------------------------------

    async def acquire(self, account: str, holder: str, seconds: float) -> Lease | None:
        """Take `account` if its lease is free (never held, expired or released) or
        already `holder`'s; a new epoch either way."""
        rows = await self._rows(
            "INSERT INTO leases AS l (account, holder, epoch, expires_at)"
            " VALUES (%s, %s, 1, now() + make_interval(secs => %s))"
            " ON CONFLICT (account) DO UPDATE SET holder = excluded.holder,"
            " epoch = l.epoch + 1, expires_at = excluded.expires_at"
            " WHERE l.expires_at <= now() OR l.holder = excluded.holder RETURNING epoch",
            (account, holder, seconds),
        )
        return Lease(account, holder, rows[0][0]) if rows else None

    async def renew(self, lease: Lease, seconds: float) -> bool:
        changed = await self._update(
            "UPDATE leases SET expires_at = now() + make_interval(secs => %s)"
            " WHERE account = %s AND holder = %s AND epoch = %s",
            (seconds, lease.account, lease.holder, lease.epoch),
        )
        return changed == 1

    async def release(self, lease: Lease) -> None:
        """Let a standby take the account at once (the epoch stays: the next holder's
        grows from it)."""
        await self._update(
            "UPDATE leases SET expires_at = now() - interval '1 second'"
            " WHERE account = %s AND holder = %s AND epoch = %s",
            (lease.account, lease.holder, lease.epoch),
        )

    async def leaders(self) -> list[Leader]:
        rows = await self._rows(
            "SELECT account, holder, epoch, extract(epoch FROM expires_at - now())::float8"
            " FROM leases ORDER BY account"
        )
        return [Leader(a, h, e, x) for a, h, e, x in rows]

    async def replicas(self, holder: str, seconds: float) -> int:
        """Record `holder` as alive for `seconds`; return how many replicas are."""
        rows = await self._rows(
            "WITH seen AS (INSERT INTO replicas (name, seen_until)"
            " VALUES (%s, now() + make_interval(secs => %s)) ON CONFLICT (name)"
            " DO UPDATE SET seen_until = excluded.seen_until)"
            " SELECT COUNT(*) + 1 FROM replicas WHERE seen_until > now() AND name != %s",
            (holder, seconds, holder),
        )
        return int(rows[0][0])
