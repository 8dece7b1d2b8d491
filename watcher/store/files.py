"""The state's files on disk, created owner-only: the state file holds job names, alert
texts and channel errors, which are nobody else's to read.

Creates what is missing and never changes the mode of what exists: a folder made by
someone else (systemd's StateDirectory=, a volume, the working folder) keeps the mode
its owner chose.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from watcher.store.base import StoreError

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def real_path(state: Path) -> Path:
    """`state` with symbolic links followed: where the file is, so where its folder is
    made, where it is created and where its lock goes."""
    try:
        return state.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of links (Python < 3.13)
        raise StoreError(f"state.path: cannot open {state}: {exc}") from None


def private_folder(state: Path) -> None:
    """Create the folder of the state file `state`, and each missing parent, with mode 0700
    (`Path.mkdir(parents=True)` would make the parents with the umask's mode, as `mkdir -p`
    does)."""
    folder = real_path(state).parent
    missing: list[Path] = []
    try:
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        if not folder.is_dir():
            raise StoreError(f"state.path: cannot open {state}: {folder} is not a folder")
        for path in reversed(missing):
            path.mkdir(mode=FOLDER_MODE, exist_ok=True)
    except OSError as exc:  # e.g. a parent that this user may not enter or write
        raise StoreError(f"state.path: cannot open {state}: {exc}") from None


def private_file(state: Path) -> None:
    """Create the state file empty with mode 0600 unless it exists. SQLite gives its -wal
    and -shm files the mode of this one; had SQLite made it, it would be 0644 under umask
    022."""
    # O_EXCL: a file that exists is left as the operator set it (0640, say, for a group
    # that runs `watcher status`).
    with contextlib.suppress(FileExistsError):
        os.close(os.open(real_path(state), os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
