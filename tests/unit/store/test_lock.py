"""The one-writer lock, on real files: flock conflicts between two open files even in one
process, so a second holder can be tried here without a second process."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from watcher.store import StoreError
from watcher.store.lock import StateInUse, hold, lock_path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state" / "watcher.db"


@contextmanager
def held_by_hand(state: Path, text: str) -> Iterator[None]:
    """The lock held as another process would, with `text` as its record."""
    state.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(state), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, text.encode())
        yield
    finally:
        os.close(fd)


def refusal(state: Path) -> str:
    with pytest.raises(StateInUse) as caught, hold(state, "watcher once"):
        pass
    return str(caught.value)


def test_a_second_holder_is_refused_with_the_first_ones_name(state: Path) -> None:
    """While one holds the lock, another is refused with its command, pid, host and start."""
    with hold(state, "watcher run"):
        message = refusal(state)
    assert message.startswith(
        f"state file {state} is in use by watcher run "
        f"(pid {os.getpid()} on host {socket.gethostname()}, since 20"
    )
    assert message.endswith("Z); stop it first")


def test_the_refusal_is_a_store_error(state: Path) -> None:
    """The CLI turns it into exit 2 with the other unusable-state errors."""
    with hold(state, "watcher run"):
        assert issubclass(StateInUse, StoreError)
        with pytest.raises(StoreError), hold(state, "watcher run"):
            pass


def test_the_lock_is_released_when_its_block_ends(state: Path) -> None:
    """After the holder's block, the next one takes the lock."""
    with hold(state, "watcher once"):
        pass
    with hold(state, "watcher run"):
        pass


def test_a_lock_file_left_behind_does_not_block(state: Path) -> None:
    """A record without a lock (its holder was killed) is overwritten, whole."""
    state.parent.mkdir()
    stale = {"pid": 99999999, "host": "gone", "command": "watcher run", "since": "x" * 500}
    lock_path(state).write_text(json.dumps(stale))
    with hold(state, "watcher run"):
        record = json.loads(lock_path(state).read_text())
    assert (record["pid"], record["host"]) == (os.getpid(), socket.gethostname())


def test_a_holder_without_a_record_yet_is_named_as_another_process(state: Path) -> None:
    """A lock taken whose record never comes: refused all the same, after a moment."""
    with held_by_hand(state, ""):
        message = refusal(state)
    assert message == (
        f"state file {state} is in use by another process (which has not said which); stop it first"
    )


def test_control_characters_in_a_record_are_not_printed(state: Path) -> None:
    """The record is only text in a file: a terminal escape in it is not passed on."""
    record = {"pid": 1, "host": "h\x1b[2J", "command": "watcher run", "since": "s"}
    with held_by_hand(state, json.dumps(record)):
        message = refusal(state)
    assert "\x1b" not in message
    assert "(pid 1 on host h?[2J, since s)" in message


def test_a_symbolic_link_at_the_lock_path_is_refused_and_its_target_untouched(
    state: Path, tmp_path: Path
) -> None:
    """A link planted where the lock file goes is not followed: its target is not written."""
    target = tmp_path / "precious"
    target.write_text("keep me")
    state.parent.mkdir()
    lock_path(state).symlink_to(target)
    with (
        pytest.raises(StoreError, match=f"cannot lock {lock_path(state)}: it is a symbolic link"),
        hold(state, "watcher run"),
    ):
        pass
    assert target.read_text() == "keep me"


def test_a_folder_at_the_lock_path_is_refused_naming_it(state: Path) -> None:
    lock_path(state).mkdir(parents=True)
    with (
        pytest.raises(StoreError, match=f"state.path: cannot lock {lock_path(state)}: it is a"),
        hold(state, "watcher run"),
    ):
        pass


def test_a_link_to_the_state_file_and_the_file_share_one_lock(state: Path, tmp_path: Path) -> None:
    """The lock belongs to the file, not to the name it was given by."""
    link = tmp_path / "link.db"
    link.symlink_to(state)
    with hold(link, "watcher run"):
        assert "is in use by watcher run" in refusal(state)
    assert not Path(f"{link}.lock").exists()


def test_two_state_files_have_two_locks(state: Path) -> None:
    """Daemons on different state files, even in one folder, do not exclude each other."""
    with hold(state, "watcher run"), hold(state.with_name("other.db"), "watcher run"):
        pass


@pytest.mark.usefixtures("lenient_umask")
def test_the_lock_file_and_the_folder_made_for_it_are_owner_only(state: Path) -> None:
    with hold(state, "watcher run"):
        pass
    assert stat.S_IMODE(lock_path(state).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
