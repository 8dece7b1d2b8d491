"""One bounded HTTP exchange with the API: one deadline for the whole request (every
redirect hop and the whole body), a body refused past its size bound, redirects
followed only within the configured origin.

It knows nothing of JSON, tokens or retries: those are the client's. It never puts a
request header, a query string or userinfo into an error: the caller shows its
messages to people and logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

# Same-origin redirects are followed, this many hops at most: an API moved behind a
# load balancer keeps working, a loop ends. Each hop's origin is checked again.
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024  # bytes asked of the connection at a time while reading a body
SHOWN = 200  # characters of a URL kept in an error message


class Refused(Exception):
    """The exchange was stopped on purpose (too large, off the origin, a redirect
    loop); retrying would only meet the same answer. `outcome` labels the metric."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes  # read only for 2xx answers: nothing else's body is used
    headers: Mapping[str, str]  # aiohttp's, whose lookups ignore case


def origin(url: URL) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default port when none is written), the unit that a
    credential is sent to; yarl lowercases scheme and host."""
    return url.scheme, url.host or "", url.port


def shown(url: URL) -> str:
    """`url` fit for an error message: no userinfo, query or fragment (where secrets
    travel), and no longer than a line."""
    text = str(url.with_user(None).with_query(None).with_fragment(None))
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


def _parse(url: str) -> URL:
    try:
        return URL(url, encoded=True)
    except ValueError:
        raise Refused("redirect_refused", "an unreadable URL; not requested") from None


def _target(resp: aiohttp.ClientResponse) -> URL | None:
    """Where a redirect points, resolved against the URL that answered; None if this
    is not a redirect."""
    location = resp.headers.get("Location")
    if resp.status not in REDIRECTS or location is None:
        return None
    try:
        return resp.url.join(URL(location))
    except (ValueError, UnicodeError):
        # The Location is not echoed: what cannot be parsed cannot be cleaned of secrets.
        raise Refused("redirect_refused", "redirected to an unreadable Location") from None


async def _read(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, in chunks, never holding more than `limit` + 1 bytes of it. aiohttp
    (from 3.14.1, the floor in pyproject.toml) inflates gzip and deflate in bounded
    steps as the body is read, so the bound counts inflated bytes: a compression bomb
    stops here like an endless stream."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise Refused(
            "too_large", f"declares {declared} bytes, over api.max_response_size ({limit} bytes)"
        )
    if declared is not None and resp.headers.get("Content-Encoding", "identity") == "identity":
        # Speed: the usual answer, plain and of a declared size within the bound, is read
        # whole; aiohttp reads no more than the declared length.
        return await resp.read()
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(min(CHUNK, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            raise Refused("too_large", f"body runs past api.max_response_size ({limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    home: URL,
    headers: Mapping[str, str],
    data: Mapping[str, str] | bytes | None = None,
    limit: int,
    timeout: float,
) -> Reply:
    """`method` `url` (already encoded) within `timeout` seconds in all, if `url` and
    every redirect after it stay on `home`'s origin (the configured URL's).

    Raises Refused, TimeoutError, or aiohttp.ClientError. A redirect is re-sent with the
    same method, headers and form (307/308 semantics for every redirect status): a GET
    is unchanged by it, and a token request turned into a GET would lose its form.
    """
    here = _parse(url)
    if origin(here) != origin(home):
        raise Refused(
            "redirect_refused",
            f"{shown(here)} is off the configured origin {shown(home.origin())}; not requested",
        )
    async with asyncio.timeout(timeout):
        for _ in range(MAX_REDIRECTS + 1):
            async with session.request(
                method, here, headers=headers, data=data, allow_redirects=False
            ) as resp:
                target = _target(resp)
                if target is None:
                    ok = 200 <= resp.status < 300
                    body = await _read(resp, limit) if ok else b""
                    return Reply(resp.status, body, resp.headers)
            if origin(target) != origin(home):
                raise Refused(
                    "redirect_refused",
                    f"redirected to {shown(target)}, off the configured origin"
                    f" {shown(home.origin())}; not followed",
                )
            here = target
    raise Refused("redirect_refused", f"more than {MAX_REDIRECTS} redirects")
