"""One writer per state file: `<state>.lock` beside it, held with flock(2) by `watcher
run` and `watcher once` from before the state file is first opened until they end.

The kernel releases the lock when its holder ends, however it ends (SIGKILL included),
so a lock file left behind never blocks. The file is never deleted: a process that
opened it before the deletion would lock the old file while the next locks a new one,
and both would write. Its text says who holds it, for the message of the one refused;
nothing else depends on it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from watcher.store.base import StoreError
from watcher.store.files import FILE_MODE, private_folder, real_path

RECORD_WAIT = 1.0  # seconds a refused process waits for a new holder to say who it is
_RECORD_MAX = 4096


class StateInUse(StoreError):
    """Another process holds the state file."""


def lock_path(state: Path) -> Path:
    """`<state>.lock` beside the file that `state` names once symbolic links are followed:
    a daemon given a link and one given its target must meet at one lock."""
    real = real_path(state)
    return real.with_name(f"{real.name}.lock")


@contextmanager
def hold(state: Path, command: str) -> Iterator[None]:
    """Hold the state file `state` for the `with` block, as `command` (e.g. "watcher run");
    StateInUse if another process holds it, StoreError if it cannot be locked."""
    private_folder(state)
    path = lock_path(state)
    fd = _open(path)
    try:
        _take(fd, path, state)
        _record(fd, path, command)
        yield
    finally:
        os.close(fd)  # releases the lock; Python's descriptors are not inherited (PEP 446)


def _open(path: Path) -> int:
    # O_NOFOLLOW: the lock file is written to, and a link planted in a shared folder must
    # not turn that write onto another file.
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        raise StoreError(f"state.path: cannot lock {path}: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    if exc.errno == errno.EISDIR:
        return "it is a folder"
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link"
    return exc.strerror or str(exc)


def _take(fd: int, path: Path, state: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StateInUse(f"state file {state} is in use by {_holder(fd)}; stop it first") from None
    except OSError as exc:  # e.g. ENOLCK on a network filesystem without locks
        raise StoreError(f"state.path: cannot lock {path}: {_why(exc)}") from None


def _record(fd: int, path: Path, command: str) -> None:
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command}
    data = (json.dumps(record | {"since": since}) + "\n").encode()
    # One write, then cut off what a longer old record left after it: a refused process
    # reads a whole record or an unreadable mix, which it reads again.
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    except OSError as exc:
        raise StoreError(f"state.path: cannot write {path}: {_why(exc)}") from None


def _holder(fd: int) -> str:
    """Who holds the lock, from its record. The holder writes it just after locking, so a
    process refused in between waits a moment for it."""
    deadline = time.monotonic() + RECORD_WAIT
    while (holder := _read(fd)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return holder or "another process (which has not said which)"


def _read(fd: int) -> str | None:
    try:
        record = json.loads(os.pread(fd, _RECORD_MAX, 0))
        pid, host = int(record["pid"]), _printable(record["host"])
        command, since = _printable(record["command"]), _printable(record["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"{command} (pid {pid} on host {host}, since {since})"


def _printable(value: object) -> str:
    # The record is only text in a file: keep terminal control sequences out of the message.
    return "".join(c if c.isprintable() else "?" for c in str(value))[:200]
