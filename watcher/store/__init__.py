"""The state store: last known job states, templates, the poll watermark, events seen,
the outbox and, with PostgreSQL, the leases. `Store` is the interface; `SqliteStore`
(the default) and `postgres.PgStore` (imported only when a URL asks for it: psycopg is
not loaded otherwise) implement it."""

from watcher.store.base import (
    CycleCommit,
    Fenced,
    Leader,
    Lease,
    Lookup,
    OutboxCounts,
    SeriesKey,
    SeriesRow,
    Store,
    StoreError,
    Unreachable,
)
from watcher.store.schema import SCHEMA_VERSION
from watcher.store.sqlite import SqliteStore

__all__ = [
    "SCHEMA_VERSION",
    "CycleCommit",
    "Fenced",
    "Leader",
    "Lease",
    "Lookup",
    "OutboxCounts",
    "SeriesKey",
    "SeriesRow",
    "SqliteStore",
    "Store",
    "StoreError",
    "Unreachable",
]
