"""Configured templates render in a child process, within a time and a memory budget.

A template is code: a loop that depends on the job's name can run for hours, and a
filter can ask for gigabytes. In-process, neither can be interrupted, so such a
template would stop the event loop (no health answers, SIGTERM unheard) and, since
alerts are rendered when sent, freeze every restart again. Here the child sets its
own memory limit (RLIMIT_AS) and an alarm; if it does not answer within the alarm
plus a grace, the parent kills it and starts another for the next request. The child
sees only plain variables and answers with text, over length-prefixed msgpack frames
on its stdin and a private copy of its stdout (its side: `render_child`).

Callers block until the answer (at most `RENDER_SECONDS` + `GRACE_SECONDS` per
template): the daemon asks from a thread, never from the event loop. A child left
unasked for `IDLE_SECONDS` is stopped: an idle daemon keeps no second interpreter (about
23 MB), and the next alert starts one again (about 0.2 s).
"""

from __future__ import annotations

import atexit
import os
import select
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Literal

import msgspec

from watcher.formats import Format

RENDER_SECONDS = 1.0  # per template, measured by the child's alarm
GRACE_SECONDS = 2.0  # then the parent kills a child that did not answer
START_SECONDS = 30.0  # for a new child to import and say it is ready
MEMORY_BYTES = 128 * 2**20  # address space a child may add to what it has at start
IDLE_SECONDS = 10.0  # long enough for one cycle's alerts, short beside a poll interval

Outcome = Literal["ok", "error", "over"]
Answer = tuple[Outcome, str]
HEADER = struct.Struct(">I")  # each frame's length, then the msgpack frame
READY = b"ready"
CHILD = "watcher.render_child"  # the child's module: the parent never loads Jinja2 for it


class Worker:
    """One child at a time, asked one template at a time; thread-safe."""

    def __init__(
        self,
        seconds: float = RENDER_SECONDS,
        memory: int = MEMORY_BYTES,
        idle: float = IDLE_SECONDS,
    ) -> None:
        self._seconds = seconds
        self._memory = memory
        self._idle = idle
        self._child: subprocess.Popen[bytes] | None = None
        self._ready = False  # the child said so (it may be started and still importing)
        self._lock = threading.Lock()
        self._asked = 0.0  # monotonic time of the last request
        self._timer: threading.Timer | None = None  # one at a time, to stop an idle child

    def start(self) -> None:
        """Start the child now and return at once; the first request waits for it to be
        ready. A short-lived process (`watcher check`) calls this before its own imports,
        so that the child's start-up runs beside them."""
        with self._lock:
            if self._child is None or self._child.poll() is not None:
                self._spawn()

    def render(self, source: str, variables: dict[str, Any], to: Format = Format.TEXT) -> Answer:
        """("ok", text), ("error", why it cannot render) or ("over", which budget), in
        format `to` (values escaped for it: `sandbox`)."""
        return self._ask(("render", source, variables, str(to)))

    def check(self, source: str, sample: dict[str, Any]) -> Answer:
        """As `render` with the sample variables, after parsing and `sandbox.lint`."""
        return self._ask(("check", source, sample, str(Format.TEXT)))

    def close(self) -> None:
        """Stop the child: it exits when its stdin closes, or is killed after a second (at
        once if it never said it was ready)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._stop(patience=1.0)

    def _ask(self, request: tuple[str, str, dict[str, Any], str]) -> Answer:
        frame = msgspec.msgpack.encode(request)
        with self._lock:
            self._asked = time.monotonic()
            if self._timer is None:
                self._expire_in(self._idle)
            try:
                child = self._started()
                _write_frame(child, frame)
                reply = _read_frame(child, time.monotonic() + self._seconds + GRACE_SECONDS)
            except (OSError, _NoAnswer) as exc:
                self._stop()
                return "over", f"no answer within {self._seconds:g} s ({exc})"
        outcome, text = msgspec.msgpack.decode(reply)
        return outcome, text

    def _expire_in(self, delay: float) -> None:
        timer = threading.Timer(delay, self._expire)
        timer.daemon = True  # never what keeps the process from exiting
        timer.start()
        self._timer = timer

    def _expire(self) -> None:
        """Stop the child if it was not asked for `idle` seconds, else look again then."""
        with self._lock:
            self._timer = None
            left = self._asked + self._idle - time.monotonic()
            if self._child is None:
                return  # closed meanwhile: nothing to stop
            if left > 0:
                self._expire_in(left)
            else:
                self._stop(patience=1.0)

    def _started(self) -> subprocess.Popen[bytes]:
        child = self._child
        if child is None or child.poll() is not None:
            child = self._spawn()
        if not self._ready:
            if _read_frame(child, time.monotonic() + START_SECONDS) != READY:
                raise _NoAnswer("the render worker did not start")
            self._ready = True
        return child

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._stop()
        command = [sys.executable, "-m", CHILD, repr(self._seconds), str(self._memory)]
        # Our own module, run by our own interpreter: no outside input in the command.
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # noqa: S603
        self._child = child
        return child

    def _stop(self, patience: float = 0.0) -> None:
        child, self._child = self._child, None
        ready, self._ready = self._ready, False
        if child is None:
            return
        if not ready:  # still starting, or never asked: it holds nothing to wait for
            child.kill()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        try:
            child.wait(patience)
        except (subprocess.TimeoutExpired, OSError):  # OSError: a faked clock's sleep
            child.kill()
            child.wait()


class _NoAnswer(Exception):
    pass


def _write_frame(child: subprocess.Popen[bytes], frame: bytes) -> None:
    assert child.stdin is not None
    child.stdin.write(HEADER.pack(len(frame)) + frame)
    child.stdin.flush()


def _read_frame(child: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert child.stdout is not None
    fd = child.stdout.fileno()
    header = _read_exactly(fd, HEADER.size, deadline)
    return _read_exactly(fd, HEADER.unpack(header)[0], deadline)


def _read_exactly(fd: int, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise _NoAnswer("timed out")
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise _NoAnswer("the render worker exited")
        data += chunk
    return bytes(data)


_worker: Worker | None = None
_worker_lock = threading.Lock()


def shared() -> Worker:
    """The process's worker, started on first use and stopped at exit."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = Worker()
            atexit.register(_worker.close)
        return _worker
