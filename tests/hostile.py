"""A hostile API for tests: a real aiohttp server on 127.0.0.1 whose handler writes the
bytes a test chose straight onto the connection, so that any status line, any header, a
wrong Content-Length, a gzip bomb, a stream that never ends or a trickle can be served.

Each request is recorded (method, path with query, headers) before it is answered, so a
test can tell what reached the server, credentials included."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.conftest import serve


@dataclass(frozen=True)
class Answer:
    """One response as bytes on the wire: after `delay` seconds, `head` (status line and
    headers, raw), then `body`, then `endless` over and over until the client hangs up
    (`pause` seconds between two writes makes it a trickle)."""

    head: bytes
    body: bytes = b""
    endless: bytes = b""
    pause: float = 0.0
    delay: float = 0.0

    def __repr__(self) -> str:
        """Short enough for a hypothesis report: the head, and the rest by size."""
        return (
            f"Answer(head={_short(self.head)}, body={_short(self.body)},"
            f" endless={_short(self.endless)}, pause={self.pause}, delay={self.delay})"
        )


def _short(data: bytes) -> str:
    return repr(data) if len(data) <= 80 else f"{data[:60]!r}... ({len(data)} bytes)"


def answer(
    status: int = 200,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    length: int | None = -1,
    endless: bytes = b"",
    pause: float = 0.0,
) -> Answer:
    """An Answer with a status line and headers written the usual way; `length` is the
    Content-Length to declare (-1: the body's true length, None: none at all)."""
    lines = [f"HTTP/1.1 {status} Whatever", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length is not None:
        lines.append(f"Content-Length: {len(body) if length == -1 else length}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return Answer(head=head, body=body, endless=endless, pause=pause)


def json_answer(document: Any, status: int = 200) -> Answer:
    body = json.dumps(document).encode()
    return answer(status, body, [("Content-Type", "application/json")])


def redirect(location: str, status: int = 301) -> Answer:
    return answer(status, headers=[("Location", location)])


def token_answer(token: str = "hostile-token-value", expires_in: object = 3600) -> Answer:  # noqa: S107
    return json_answer({"access_token": token, "token_type": "Bearer", "expires_in": expires_in})


def gzip_bomb(prefix: bytes, padding: int, suffix: bytes = b"") -> bytes:
    """`prefix`, `padding` spaces and `suffix`, gzipped: a few kB on the wire that inflate
    to `padding` bytes of valid JSON whitespace."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    parts = [squeeze.compress(prefix)]
    block = b" " * (1 << 20)
    for _ in range(padding >> 20):
        parts.append(squeeze.compress(block))
    parts.append(squeeze.compress(b" " * (padding % (1 << 20)) + suffix))
    parts.append(squeeze.flush())
    return b"".join(parts)


@dataclass(frozen=True)
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes = b""


Answerer = Callable[[web.Request], Answer]


@dataclass
class HostileApi:
    """The server's state: `answer` chooses each response; `seen` lists every request."""

    answer: Answerer
    port: int = 0
    seen: list[Seen] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/pa/v1"

    @property
    def token_url(self) -> str:
        return f"{self.origin}/authorisation/token"

    def paths(self) -> list[str]:
        return [s.path_qs for s in self.seen]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        chosen = self.answer(request)
        try:
            await asyncio.sleep(chosen.delay)
            await request.writer.write(chosen.head + chosen.body)
            while chosen.endless:
                await request.writer.write(chosen.endless)
                await request.writer.drain()
                await asyncio.sleep(chosen.pause)
            await request.writer.drain()
        except ConnectionError:
            pass  # the client hung up: what a client should do with an endless answer
        if request.transport is not None:
            request.transport.close()
        # The answer is on the wire already; aiohttp's attempt to send this one meets the
        # closed connection, which it takes quietly.
        return web.Response()


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The peak of Python's allocations inside the block (this server's included), in
    bytes, in [0] after it."""
    result = [0]
    tracemalloc.start()
    try:
        yield result
        result[0] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@asynccontextmanager
async def hostile_api(answerer: Answerer) -> AsyncIterator[HostileApi]:
    api = HostileApi(answer=answerer)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api._handle)
    runner, api.port = await serve(app)
    try:
        yield api
    finally:
        await runner.cleanup()
