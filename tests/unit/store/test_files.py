"""The state's files on disk: created owner-only, and what exists is left as it is. Run
under umask 022, so that a strict umask cannot make them pass."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from watcher.store import StoreError
from watcher.store.files import private_file, private_folder

pytestmark = pytest.mark.usefixtures("lenient_umask")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_folders_are_made_owner_only_parents_included(tmp_path: Path) -> None:
    private_folder(tmp_path / "a" / "b" / "state.db")
    assert (mode(tmp_path / "a"), mode(tmp_path / "a" / "b")) == (0o700, 0o700)


def test_a_folder_that_exists_keeps_its_mode(tmp_path: Path) -> None:
    """A StateDirectory= made by systemd, or the working folder, is not the watcher's."""
    folder = tmp_path / "var-lib-watcher"
    folder.mkdir()
    folder.chmod(0o755)
    private_folder(folder / "sub" / "state.db")
    assert (mode(folder), mode(folder / "sub")) == (0o755, 0o700)


def test_a_file_in_the_way_of_the_folder_is_an_error_naming_the_state(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    state = blocker / "deeper" / "state.db"
    with pytest.raises(StoreError, match=f"cannot open {state}: {blocker} is not a folder"):
        private_folder(state)


def test_a_new_file_is_owner_only(tmp_path: Path) -> None:
    private_file(tmp_path / "state.db")
    assert mode(tmp_path / "state.db") == 0o600


def test_a_file_that_exists_keeps_its_mode_and_content(tmp_path: Path) -> None:
    """An operator's choice (say 0640 for a group that reads `status`) is kept."""
    path = tmp_path / "state.db"
    path.write_bytes(b"content")
    path.chmod(0o640)
    private_file(path)
    assert (mode(path), path.read_bytes()) == (0o640, b"content")


def test_through_a_link_the_folder_and_file_are_made_at_its_target(tmp_path: Path) -> None:
    """A state path that is a link to a file yet to be made: made there, owner-only."""
    link = tmp_path / "link.db"
    target = tmp_path / "volume" / "state.db"
    link.symlink_to(target)
    private_folder(link)
    private_file(link)
    assert (mode(target.parent), mode(target)) == (0o700, 0o600)


def test_a_loop_of_links_is_an_error_naming_the_state(tmp_path: Path) -> None:
    loop = tmp_path / "loop.db"
    loop.symlink_to(loop)
    with pytest.raises(StoreError, match=f"state.path: cannot open {loop}: "):
        private_folder(loop)
