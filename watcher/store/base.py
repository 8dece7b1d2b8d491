"""What every state store offers (SQLite now, PostgreSQL planned), and the values that
cross its boundary. No I/O here."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from watcher.models import Alert, Event, JobState, OutboxItem, TemplateState


class StoreError(Exception):
    """The state store cannot be used; the message says which file and why."""


def ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def need_dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    pending: int
    sent: int
    given_up: int


@dataclass(frozen=True, slots=True)
class CycleCommit:
    """What one successful poll cycle writes, all at once."""

    states: Sequence[JobState]
    events: Sequence[Event]
    alerts: Iterable[Alert]  # read once
    watermark: datetime
    now: datetime
    unfollowed: Sequence[str] = ()
    templates: Sequence[TemplateState] = ()


class Store(Protocol):
    """The operations the pipeline needs; a second backend implements exactly these."""

    def watermark(self) -> datetime | None: ...
    def open_jobs(self) -> dict[str, JobState]: ...
    def states(self, srefs: Sequence[str]) -> dict[str, JobState]: ...
    def seen(self, srefs: Sequence[str]) -> tuple[dict[str, str], dict[str, JobState]]: ...
    def templates(self) -> dict[str, TemplateState]: ...
    def known_events(self, keys: Sequence[str]) -> set[str]: ...
    def count_started_between(self, start: datetime, end: datetime) -> int: ...
    def commit_cycle(self, commit: CycleCommit) -> tuple[int, set[str]]: ...
    def prune(self, before: datetime, limit: int = 5000) -> int: ...
    def due(
        self, now: datetime, limit: int = 1000, busy: Collection[str] = ()
    ) -> list[OutboxItem]: ...
    def next_due(self) -> datetime | None: ...
    def mark_sent(self, ids: Sequence[int], now: datetime) -> None: ...
    def mark_retry(
        self, ids: Sequence[int], next_at: datetime, error: str, done_targets: frozenset[int]
    ) -> None: ...
    def mark_held(self, ids: Sequence[int], until: datetime) -> None: ...
    def mark_resolved(self, ids: Sequence[int], now: datetime) -> None: ...
    def mark_given_up(self, ids: Sequence[int], now: datetime, error: str) -> None: ...
    def resolved(self, alert: Alert) -> bool: ...
    def outbox_counts(self, *, sent: bool = True) -> OutboxCounts: ...
    def checkpoint(self) -> None: ...
    def usable(self) -> bool: ...
    def close(self) -> None: ...
