"""The render worker's child (`render_worker` starts it and is its only client): sets
its own memory limit and a time alarm per template, then answers each request on stdin
with text or why not. It alone loads Jinja2 for the configured templates."""

from __future__ import annotations

import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import IO, Any

import msgspec
from jinja2 import TemplateError

from watcher import sandbox
from watcher.formats import Format
from watcher.render_worker import HEADER, READY, Answer


def _render(source: str, variables: dict[str, Any], to: Format) -> str:
    return sandbox.render_capped(sandbox.compiled(source, to), variables)


def _check(source: str, sample: dict[str, Any], to: Format) -> str:
    if problem := sandbox.lint(sandbox.parse(source)):
        raise sandbox.Unbounded(problem)
    return _render(source, sample, to)


def _alarm(_signum: int, _frame: object) -> None:
    raise sandbox.OverBudget("took longer than the time budget")


def _serve(request: list[Any], seconds: float, memory: int) -> Answer:
    kind, source, variables, to = request
    work: Callable[[str, dict[str, Any], Format], str] = _check if kind == "check" else _render
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return "ok", work(source, variables, Format(to))
    except sandbox.OverBudget as exc:
        return "over", str(exc)
    except MemoryError:
        return "over", f"needed more than {memory // 2**20} MB"
    except TemplateError as exc:
        return "error", f"{type(exc).__name__}: {_short(exc.message or str(exc))}"
    except Exception as exc:  # parses, but fails when rendered: 1/0, "a" + 1, ...
        return "error", f"{type(exc).__name__}: {_short(str(exc))}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _short(text: str) -> str:
    return text if len(text) <= 500 else text[:499] + "…"


def _limit_memory(extra: int) -> None:
    """Cap the address space at what the child has now plus `extra` (Linux)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            now = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = now + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:  # prlimit64, allowed by the unit's @system-service filter
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError) as exc:  # still bounded in time; say why not in memory
        print(f"watcher.render_child: no memory limit: {exc}", file=sys.stderr)


def _frames(source: IO[bytes]) -> Any:
    while header := source.read(HEADER.size):
        if len(header) < HEADER.size:
            return
        yield source.read(HEADER.unpack(header)[0])


def main(seconds: float, memory: int) -> None:
    """Answer requests on stdin until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGALRM, _alarm)
    with os.fdopen(os.dup(1), "wb") as replies:
        os.dup2(2, 1)  # anything printed by mistake must not corrupt the replies
        _limit_memory(memory)

        def send(frame: bytes) -> None:
            replies.write(HEADER.pack(len(frame)) + frame)
            replies.flush()

        send(READY)
        for frame in _frames(sys.stdin.buffer):
            send(msgspec.msgpack.encode(_serve(msgspec.msgpack.decode(frame), seconds, memory)))


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]))
