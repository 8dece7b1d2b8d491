"""One writer per state file: a second `run` or `once` on a state file that a daemon holds
exits 2 naming the holder, readers keep working, a killed holder never blocks, and the
files are created owner-only."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Hook, config_document, free_port, write_config
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World


def cfg(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, state: Path, name: str = "a", **kw: Any
) -> str:
    """A configuration file `name`.yaml polling every 0.3s into the state file `state`."""
    poll, path = {"interval": "0.3s"}, {"path": str(state)}
    doc = config_document(sim, tmp_path, {"hook": hook.url}, poll=poll, state=path, **kw)
    return str(write_config(tmp_path / f"{name}.yaml", doc))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def pid(daemon: proc.Daemon) -> int:
    assert daemon.proc is not None
    return daemon.proc.pid


async def start(*args: str) -> proc.Daemon:
    """`watcher ARGS` in the background (one a failed test leaves running is killed)."""
    return await proc.Daemon(list(args)).start()


def holder_message(state: Path, daemon: proc.Daemon, command: str = "watcher run") -> str:
    host = socket.gethostname()
    return f"watcher: state file {state} is in use by {command} (pid {pid(daemon)} on host {host}"


async def test_run_and_once_are_refused_while_a_daemon_holds_the_state(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """Beside a running `run`, a second `run` and a `once` exit 2 and name the holder."""
    state = tmp_path / "state" / "watcher.db"
    path = cfg(tmp_path, sim, hook, state)
    holder = await start("run", "-c", path)
    await holder.wait_for_line('"poll_done"')
    second = await start("run", "-c", path)
    assert await second.wait() == 2
    assert holder_message(state, holder) in second.output()
    code, out, err = await proc.run_apart("once", "-c", path)
    assert (code, out) == (2, "")
    assert err.startswith(holder_message(state, holder) + ", since ")
    assert err.rstrip().endswith("); stop it first")
    assert await holder.stop() == 0


async def test_readers_keep_working_while_a_daemon_holds_the_state(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """status, check and a dry run (which records nothing) work beside a running daemon."""
    path = cfg(tmp_path, sim, hook, tmp_path / "state" / "watcher.db")
    holder = await start("run", "-c", path)
    await holder.wait_for_line('"poll_done"')
    world.add_job(name="Checkout", status="failed")
    await proc.eventually(lambda: hook.titles() == ["Checkout failed"])
    code, out = await proc.run("status", "--json", "-c", path)
    assert (code, '"jobs_known": 1' in out) == (0, True), out
    code, out = await proc.run("check", "-c", path)
    assert code == 0, out
    code, out = await proc.run("once", "--dry-run", "-c", path)
    assert code == 0, out
    assert await holder.stop() == 0
    assert hook.titles() == ["Checkout failed"]


async def test_two_daemons_started_together_leave_one_and_alert_once(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """Two `run`s racing for a new state file: one exits 2, ten failures are ten alerts."""
    path = cfg(tmp_path, sim, hook, tmp_path / "state" / "watcher.db")
    pair = [await start("run", "-c", path) for _ in range(2)]
    await proc.eventually(lambda: any(d.proc and d.proc.returncode is not None for d in pair))
    (loser,) = [d for d in pair if d.proc and d.proc.returncode is not None]
    (winner,) = [d for d in pair if d is not loser]
    assert await loser.wait() == 2
    assert f"(pid {pid(winner)} on host" in loser.output()
    await winner.wait_for_line('"poll_done"')
    expected = [f"Job {n} failed" for n in range(10)]
    for n in range(10):
        world.add_job(name=f"Job {n}", status="failed")
    await proc.eventually(lambda: sorted(hook.titles()) == expected)
    await asyncio.sleep(1)  # a few more cycles: nothing else may arrive
    assert await winner.stop() == 0
    assert sorted(hook.titles()) == expected


async def test_a_daemon_killed_with_sigkill_does_not_block_the_next(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """The lock file outlives a SIGKILL, the lock does not: `once` and `run` start at once."""
    state = tmp_path / "state" / "watcher.db"
    path = cfg(tmp_path, sim, hook, state)
    killed = await start("run", "-c", path)
    await killed.wait_for_line('"poll_done"')
    await killed.kill()
    assert f'"pid": {pid(killed)}' in Path(f"{state}.lock").read_text()
    code, out = await proc.run("once", "-c", path)
    assert code == 0, out
    again = await start("run", "-c", path)
    await again.wait_for_line('"poll_done"')
    assert await again.stop() == 0


async def test_daemons_on_different_state_files_both_run(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """The lock is per state file: two daemons on two files in one folder both poll."""
    first = cfg(tmp_path, sim, hook, tmp_path / "state" / "one.db", "one")
    second = cfg(tmp_path, sim, hook, tmp_path / "state" / "two.db", "two")
    pair = [await start("run", "-c", path) for path in (first, second)]
    for daemon in pair:
        await daemon.wait_for_line('"poll_done"')
    for daemon in pair:
        assert await daemon.stop() == 0


async def test_a_second_daemon_on_a_taken_port_exits_2_naming_server_listen(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """Two state files, one `server.listen`: the second daemon says which key to change,
    without a traceback, and the first runs on."""
    server = {"listen": f"127.0.0.1:{free_port()}"}
    first = cfg(tmp_path, sim, hook, tmp_path / "one.db", "one", server=server)
    second = cfg(tmp_path, sim, hook, tmp_path / "two.db", "two", server=server)
    holder = await start("run", "-c", first)
    await holder.wait_for_line('"server_listening"')
    code, out, err = await proc.run_apart("run", "-c", second, timeout=30)
    assert code == 2, out + err
    assert f"server.listen: cannot listen on {server['listen']}: " in err
    assert "Traceback" not in out + err
    await holder.wait_for_line('"poll_done"')
    assert await holder.stop() == 0


async def test_a_symlinked_state_path_shares_the_lock_of_its_target(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """A daemon on a symlink to the state file holds the file itself, not the link."""
    target = tmp_path / "real" / "watcher.db"
    link = tmp_path / "link.db"
    target.parent.mkdir()
    link.symlink_to(target)
    holder = await start("run", "-c", cfg(tmp_path, sim, hook, link, "link"))
    await holder.wait_for_line('"poll_done"')
    code, out, err = await proc.run_apart("once", "-c", cfg(tmp_path, sim, hook, target, "real"))
    assert code == 2, out + err
    assert f"(pid {pid(holder)} on host" in err
    assert await holder.stop() == 0


async def test_a_lock_path_that_is_a_folder_is_refused_before_any_write(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """`<state>.lock` taken by a folder: exit 2 naming it; the state file is not created."""
    state = tmp_path / "state" / "watcher.db"
    Path(f"{state}.lock").mkdir(parents=True)
    code, out, err = await proc.run_apart("once", "-c", cfg(tmp_path, sim, hook, state))
    assert (code, out) == (2, "")
    assert f"cannot lock {state}.lock: it is a folder" in err
    assert not state.exists()


@pytest.mark.usefixtures("lenient_umask")
async def test_state_files_and_the_folder_made_for_them_are_owner_only(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """Under umask 022: new folders 0700; the state file, its -wal and -shm, and the lock
    file 0600."""
    made = tmp_path / "made"
    state = made / "deeper" / "watcher.db"
    daemon = await start("run", "-c", cfg(tmp_path, sim, hook, state))
    await daemon.wait_for_line('"poll_done"')
    files = [state, Path(f"{state}-wal"), Path(f"{state}-shm"), Path(f"{state}.lock")]
    modes = {p.name: mode(p) for p in [made, state.parent, *files]}
    assert await daemon.stop() == 0
    assert modes == {"made": 0o700, "deeper": 0o700} | {p.name: 0o600 for p in files}


@pytest.mark.usefixtures("lenient_umask")
async def test_a_folder_that_existed_keeps_its_mode(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """A state folder made by someone else (systemd's StateDirectory=, the working folder)
    keeps its mode; the files in it are still owner-only."""
    folder = tmp_path / "var-lib-watcher"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    state = folder / "watcher.db"
    code, out = await proc.run("once", "-c", cfg(tmp_path, sim, hook, state))
    assert code == 0, out
    assert mode(folder) == 0o755
    assert (mode(state), mode(Path(f"{state}.lock"))) == (0o600, 0o600)
