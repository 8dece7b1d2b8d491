"""Reading a small file that the configuration names (the configuration file itself, a
secret file): a regular file only, and no more than a limit.

Never blocks on a FIFO, never reads a device such as /dev/zero without end, and never
puts a byte of the file into an error message (a secret file's content is the secret).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileProblem(Exception):
    """Why a file could not be read, in words without its path or content."""


def size_text(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit // KIB} KiB"


def read_text(path: Path, limit: int) -> str:
    """The file's text (UTF-8); FileProblem if it is not a regular file, is larger than
    `limit` bytes, is not UTF-8 or cannot be read."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FileProblem(exc.strerror or type(exc).__name__) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS if test(mode)), "not a file")
        raise FileProblem(f"it is {kind}, not a regular file")
    with os.fdopen(fd, "rb") as stream:
        try:
            data = stream.read(limit + 1)
        except OSError as exc:
            raise FileProblem(exc.strerror or type(exc).__name__) from None
    if len(data) > limit:
        raise FileProblem(f"it is larger than {size_text(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Not str(exc): it quotes the offending byte, a byte of a secret in a secret file.
        raise FileProblem(f"it is not UTF-8 text (byte {exc.start + 1})") from None
