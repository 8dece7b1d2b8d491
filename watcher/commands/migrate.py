"""`watcher migrate`: the SQLite state copied into an empty PostgreSQL database."""

from __future__ import annotations

import argparse
import asyncio

from watcher import logs, report
from watcher.arguments import EXIT_OK
from watcher.commands import configured
from watcher.store import StoreError, lock, migrate


def run(args: argparse.Namespace) -> int:
    settings = configured.load(args).settings
    url: str = args.to
    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError("--to: not a PostgreSQL URL (postgresql://user:password@host/db)")
    if settings.state.url is not None:
        raise StoreError("migrate copies a SQLite state: state.path is the source, not state.url")
    logs.protect(*report.database_secrets(url))
    with lock.hold(settings.state.path, "watcher migrate"):
        copied = asyncio.run(migrate.migrate(settings.state.path, url))
    print(copied)
    print("next: set state.url to that database, remove state.path, start the replicas")
    return EXIT_OK
