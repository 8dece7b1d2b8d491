"""A throwaway PostgreSQL server for the benchmarks, from the test suite's tests/postgres.py,
but with a durable configuration: fsync, full_page_writes and synchronous_commit on (the
tests turn the first two off), and its data on the same disk as the benchmarks' SQLite
files (the tests put it in /dev/shm, where fsync costs nothing).

`server()` yields the server, or None with the reason printed when it cannot start (no
PostgreSQL binaries, or psycopg missing).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.postgres import Installation, PostgresError, PostgresServer, find_bindir


class DiskInstallation(Installation):
    """Folders on the disk of the system's temporary folder, not in /dev/shm."""

    def folder(self, prefix: str) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        if self.owner is not None:
            os.chown(folder, self.owner.pw_uid, self.owner.pw_gid)
        self._folders.append(folder)
        return folder


class DurableServer(PostgresServer):
    """PostgreSQL's defaults for durability: fsync, full_page_writes, synchronous_commit."""

    durability = ("-c", "fsync=on", "-c", "full_page_writes=on")


def unavailable() -> str | None:
    """Why no server can start here, or None."""
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed"
    if find_bindir() is None:
        return "no PostgreSQL binaries (initdb, pg_ctl, postgres) on PATH or in /usr/lib/postgresql"
    return None


@contextlib.contextmanager
def server() -> Iterator[DurableServer | None]:
    """A started durable server (stopped and removed after), or None if it cannot start."""
    reason = unavailable()
    bindir = find_bindir()
    if reason is not None or bindir is None:
        print(f"PostgreSQL skipped: {reason}", flush=True)
        yield None
        return
    installation = DiskInstallation(bindir)
    pg = DurableServer(installation)
    try:
        try:
            pg.start()
        except (PostgresError, OSError) as exc:
            print(f"PostgreSQL skipped: the server did not start: {exc}", flush=True)
            yield None
            return
        yield pg
    finally:
        pg.cleanup()
        installation.cleanup()
