"""files.read_text: a configured file is read only if it is a regular file, and only up to
a limit; nothing of its content is ever in the error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from watcher import files
from watcher.files import FileProblem

SECRET = "fi1e-SECRET-x7y8"


def problem(path: Path, limit: int = 1024) -> str:
    with pytest.raises(FileProblem) as caught:
        files.read_text(path, limit)
    text = str(caught.value)
    assert SECRET not in text
    assert str(path) not in text  # the caller names the file, once
    return text


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    """A regular file within the limit is read as UTF-8 text."""
    path = tmp_path / "secret"
    path.write_text(f"{SECRET}\n", encoding="utf-8")
    assert files.read_text(path, 1024) == f"{SECRET}\n"


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    """The limit is inclusive."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1024)
    assert len(files.read_text(path, 1024)) == 1024


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    """One byte more than the limit is refused, saying the limit."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * (64 * files.KIB + 1))
    assert problem(path, 64 * files.KIB) == "it is larger than 64 KiB"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """A named pipe with no writer would block a plain open() forever: refused at once."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    assert problem(path) == "it is a FIFO, not a regular file"


def test_dev_zero_is_refused() -> None:
    """A device that never ends is not read at all."""
    assert problem(Path("/dev/zero")) == "it is a character device, not a regular file"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    """A directory is named as one."""
    assert problem(tmp_path) == "it is a directory, not a regular file"


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    """The operating system's reason, without the path."""
    assert problem(tmp_path / "absent") == "No such file or directory"


def test_text_that_is_not_utf8_is_refused_without_the_byte(tmp_path: Path) -> None:
    """The decoder's own message quotes the byte (of a secret): only its position is said."""
    path = tmp_path / "f"
    path.write_bytes(SECRET.encode() + b"\xfe\xff")
    assert problem(path) == f"it is not UTF-8 text (byte {len(SECRET) + 1})"
