"""The state store: last known job states, templates, the poll watermark, events seen
and the outbox. `Store` is the interface; `SqliteStore` the implementation."""

from watcher.store.base import CycleCommit, OutboxCounts, Store, StoreError
from watcher.store.schema import SCHEMA_VERSION
from watcher.store.sqlite import SqliteStore

__all__ = ["SCHEMA_VERSION", "CycleCommit", "OutboxCounts", "SqliteStore", "Store", "StoreError"]
