"""Running the `watcher` command as a real subprocess, reading its output as it comes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from tests.conftest import assert_no_secret

ROOT = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    # apprise imports the deprecated imghdr module; every other warning fails the test.
    warnings = "error,ignore:'imghdr' is deprecated:DeprecationWarning"
    base.update(PYTHONPATH=str(ROOT), PYTHONWARNINGS=warnings, **extra)
    return base


async def run(*args: str, timeout: float = 60, **extra_env: str) -> tuple[int, str]:
    """Run `watcher ARGS` to the end; (exit code, stdout and stderr together)."""
    code, out, _ = await _run(args, asyncio.subprocess.STDOUT, timeout, extra_env)
    return code, out


async def run_apart(*args: str, timeout: float = 60, **extra_env: str) -> tuple[int, str, str]:
    """Run `watcher ARGS` to the end; (exit code, stdout, stderr) kept apart."""
    return await _run(args, asyncio.subprocess.PIPE, timeout, extra_env)


async def _run(
    args: Sequence[str], stderr: int, timeout: float, extra_env: dict[str, str]
) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "watcher",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env=env(**extra_env),
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout)
    text, errors = out.decode(), (err or b"").decode()
    assert_no_secret(text + errors, f"the output of watcher {' '.join(args)}")
    assert child.returncode is not None
    return child.returncode, text, errors


async def run_in_terminal(*args: str, timeout: float = 60, **extra_env: str) -> tuple[int, str]:
    """Run `watcher ARGS` with its standard output on a pseudo-terminal, as a person at a
    shell sees it; (exit code, what the terminal received, line ends as "\\n")."""
    master, slave = pty.openpty()
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "watcher",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=slave,
            stderr=asyncio.subprocess.PIPE,
            env=env(**extra_env),
            cwd=ROOT,
        )
        os.close(slave)
        slave = -1
        received, (_, err) = await asyncio.wait_for(
            asyncio.gather(asyncio.to_thread(_read_all, master), child.communicate()), timeout
        )
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = received.decode().replace("\r\n", "\n")
    assert_no_secret(text + err.decode(), f"the output of watcher {' '.join(args)}")
    assert child.returncode is not None
    return child.returncode, text


def _read_all(fd: int) -> bytes:
    """Everything until the other end is closed (Linux reports that as EIO)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


class Daemon:
    """`watcher run` in the background; its output lines are collected. One that a
    failed test left running is killed after the test (`kill_leftovers`)."""

    started: ClassVar[list[Daemon]] = []

    def __init__(self, args: Sequence[str], **extra_env: str) -> None:
        self.args = list(args)
        self.extra_env = extra_env
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Daemon:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "watcher",
            "--log-format",
            "json",
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env(**self.extra_env),
            cwd=ROOT,
        )
        self._reader = asyncio.create_task(self._read())
        Daemon.started.append(self)
        return self

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode())

    def output(self) -> str:
        return "".join(self.lines)

    async def wait_for_line(self, needle: str, timeout: float = 30) -> None:
        await eventually(lambda: needle in self.output(), timeout, f"{needle!r} in the output")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        assert self._reader is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        assert_no_secret(self.output(), "the daemon's output")
        return code

    async def stop(self, timeout: float = 30) -> int:
        self.signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self.wait()


def kill_leftovers() -> None:
    """SIGKILL every daemon still running (a test that failed before stopping it)."""
    for daemon in Daemon.started:
        if daemon.proc is not None and daemon.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon.proc.pid, signal.SIGKILL)
    Daemon.started.clear()


async def eventually(check: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    """Wait (without asserting on time) until `check()` holds; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)
