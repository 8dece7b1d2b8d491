"""The JSON API under /api/v1/ (SPEC "People in the loop").

Reads are open; writes need `Authorization: Bearer <server.api_token>` (401 without it
or with another, 403 when no token is configured). Every answer is JSON with
`Cache-Control: no-store`; every error is `{"error": "..."}` naming the problem:

- 400: a query parameter that is unknown or malformed, a body that is not JSON or not
  a JSON object; 415: a body that says it is not JSON;
- 401 / 403: see above; 404: no such endpoint, silence, acknowledgement or alert;
- 405: a method the path does not take; 409: retrying an alert that is not given up;
- 413: a body over `MAX_BODY` (nothing is read past it, nothing changes);
- 422: a well-formed body the watcher refuses (unknown field or matcher key, an end
  before the start, ...);
- 503: the state store cannot be reached; 500: anything else (logged, never shown).

The routes are `ROUTES`; `openapi.document()` describes exactly these.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from watcher.people import Refused
from watcher.store import StoreError
from watcher.vocabulary import ALERT_STATES
from watcher.web import Console, actions, data

log = structlog.get_logger("watcher.api")

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024  # bytes of a request's body
MAX_LIMIT = 2000
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}

Handler = Callable[[Console, web.Request], Awaitable[web.Response]]


class Problem(Exception):
    """An answer other than success: an HTTP status and what to say."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # after PREFIX, in OpenAPI's {name} form
    handler: Handler
    write: bool = False


# -- answers ---------------------------------------------------------------------------


def answer(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers={**HEADERS, **(headers or {})})


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return answer({"error": message}, status, headers)


# -- reading a request -----------------------------------------------------------------


def query(request: web.Request, allowed: set[str]) -> Mapping[str, str]:
    """The query parameters, each given once and known."""
    for key in request.query:
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise Problem(400, f"{key}: unknown query parameter (known: {known})")
        if len(request.query.getall(key)) > 1:
            raise Problem(400, f"{key}: give it once")
    return request.query


def limit_of(params: Mapping[str, str], default: int) -> int:
    text = params.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise Problem(400, f"limit: {text[:40]!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def flag_of(params: Mapping[str, str], name: str) -> bool:
    text = params.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise Problem(400, f"{name}: {text[:40]!r} is not true or false")
    return text in ("true", "1")


def since_of(params: Mapping[str, str], now: datetime) -> datetime:
    """`since`: a duration back from now (90m, 2d) or an ISO 8601 time; default 1 day."""
    text = params.get("since")
    if text is None:
        return now - data.DAY
    try:
        return actions.since("since", text, now)
    except Refused as exc:
        raise Problem(400, str(exc)) from None


def number_of(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route only matches digits


async def body_of(request: web.Request) -> dict[str, Any]:
    """The request's body: a JSON object of at most MAX_BODY bytes."""
    kind = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if kind.lower() != "application/json":
        raise Problem(415, f"Content-Type: {kind[:60]!r}: send application/json")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Problem(413, f"body: {request.content_length} bytes, at most {MAX_BODY}")
    raw = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Problem(413, f"body: over {MAX_BODY} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Problem(400, "body: not valid JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, f"body: a JSON object is wanted, not {type(body).__name__}")
    return body


def check_token(console: Console, request: web.Request) -> None:
    """Writes need the configured token: 403 when none is, 401 without it."""
    if console.token is None:
        raise Problem(403, "writes are disabled: no server.api_token is configured")
    header = request.headers.get("Authorization")
    if not header:
        raise Problem(401, "Authorization: a Bearer token is needed", _challenge())
    if not header.startswith("Bearer ") or not actions.authorized(console, header):
        raise Problem(401, "Authorization: the token is not the one configured", _challenge())


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="watcher"'}


# -- the handlers ----------------------------------------------------------------------


async def get_status(console: Console, request: web.Request) -> web.Response:
    query(request, set())
    store = console.store
    known, followed = await store.known_jobs()
    counts = await store.outbox_counts(sent=False)
    accounts = await data.accounts(
        store, console.accounts, shared=console.shared, replica=console.replica
    )
    return answer(
        {
            "replica": console.replica,
            "shared": console.shared,
            "accounts": accounts,
            "outbox": {"pending": counts.pending, "given_up": counts.given_up},
            "jobs": {"known": known, "followed": followed},
            "recent_events": await store.recent_events(20),
        }
    )


async def get_accounts(console: Console, request: web.Request) -> web.Response:
    query(request, set())
    found = await data.accounts(
        console.store, console.accounts, shared=console.shared, replica=console.replica
    )
    return answer(found)


async def get_templates(console: Console, request: web.Request) -> web.Response:
    query(request, set())
    return answer(await data.templates(console.store, console.accounts, console.clock()))


async def get_series(console: Console, request: web.Request) -> web.Response:
    params = query(request, {"limit"})
    found = await data.series(
        console.store,
        console.accounts,
        console.thresholds,
        limit=limit_of(params, data.SERIES_SHOWN),
    )
    return answer(found)


async def get_events(console: Console, request: web.Request) -> web.Response:
    params = query(request, {"limit"})
    return answer(await console.store.recent_events(limit_of(params, 50)))


async def get_alerts(console: Console, request: web.Request) -> web.Response:
    params = query(request, {"since", "channel", "state", "limit"})
    state = params.get("state")
    if state is not None and state not in ALERT_STATES:
        raise Problem(400, f"state: {state[:40]!r} is not one of {', '.join(ALERT_STATES)}")
    found = await data.alerts(
        console.store,
        since_of(params, console.clock()),
        channel=params.get("channel"),
        state=state,
        limit=limit_of(params, 500),
    )
    return answer(found)


async def get_silences(console: Console, request: web.Request) -> web.Response:
    params = query(request, {"all"})
    found = await data.silences(console.store, console.clock(), everything=flag_of(params, "all"))
    return answer(found)


async def post_silence(console: Console, request: web.Request) -> web.Response:
    query(request, set())
    return answer(await actions.add_silence(console, await body_of(request)), 201)


async def delete_silence(console: Console, request: web.Request) -> web.Response:
    return answer(await actions.expire_silence(console, number_of(request)))


async def get_acks(console: Console, request: web.Request) -> web.Response:
    params = query(request, {"all"})
    return answer(await data.acks(console.store, everything=flag_of(params, "all")))


async def post_ack(console: Console, request: web.Request) -> web.Response:
    query(request, set())
    return answer(await actions.add_ack(console, await body_of(request)), 201)


async def delete_ack(console: Console, request: web.Request) -> web.Response:
    return answer(await actions.expire_ack(console, number_of(request)))


async def post_retry(console: Console, request: web.Request) -> web.Response:
    return answer(await actions.retry(console, number_of(request)))


async def get_openapi(_console: Console, _request: web.Request) -> web.Response:
    from watcher.web import openapi

    return answer(openapi.document())


ROUTES = (
    Route("GET", "/openapi.json", get_openapi),
    Route("GET", "/status", get_status),
    Route("GET", "/accounts", get_accounts),
    Route("GET", "/templates", get_templates),
    Route("GET", "/series", get_series),
    Route("GET", "/events", get_events),
    Route("GET", "/alerts", get_alerts),
    Route("POST", "/alerts/{id}/retry", post_retry, write=True),
    Route("GET", "/silences", get_silences),
    Route("POST", "/silences", post_silence, write=True),
    Route("DELETE", "/silences/{id}", delete_silence, write=True),
    Route("GET", "/acks", get_acks),
    Route("POST", "/acks", post_ack, write=True),
    Route("DELETE", "/acks/{id}", delete_ack, write=True),
)


# -- wiring ----------------------------------------------------------------------------


def _bound(console: Console, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        if route.write:
            check_token(console, request)
        return await route.handler(console, request)

    return handle


def _aiohttp_path(path: str) -> str:
    return PREFIX + path.replace("{id}", r"{id:\d{1,18}}")


def _not_allowed(request: web.Request, exc: web.HTTPMethodNotAllowed) -> web.Response:
    allowed = ", ".join(sorted(exc.allowed_methods))
    message = f"{request.method} {request.path}: method not allowed (allowed: {allowed})"
    return error(405, message, {"Allow": allowed})


def _from_http(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no such route, wrong method, ...) as JSON."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return _not_allowed(request, exc)
    if exc.status == 404:
        return error(404, f"{request.path[:200]}: no such endpoint (see {PREFIX}/openapi.json)")
    return error(exc.status, exc.reason)


async def _guarded(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as exc:
        return error(exc.status, str(exc), exc.headers)
    except actions.Missing as exc:
        return error(404, str(exc))
    except actions.Conflict as exc:
        return error(409, str(exc))
    except Refused as exc:
        return error(422, str(exc))
    except web.HTTPException as exc:
        return _from_http(request, exc)
    except StoreError as exc:
        log.warning(
            "api_store_unavailable", method=request.method, path=request.path, error=str(exc)
        )
        return error(503, "the state store cannot be reached now; try again later")
    except Exception:
        log.exception("api_failed", method=request.method, path=request.path)
        return error(500, "the watcher failed to answer this request; its log says why")


@web.middleware
async def api_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Under /api/: every answer JSON with the API's headers, every error JSON too."""
    if request.path != "/api" and not request.path.startswith("/api/"):
        return await handler(request)
    return await _guarded(request, handler)


def mount(app: web.Application, console: Console) -> None:
    """Add the API's routes, and the middleware that keeps its answers JSON."""
    app.middlewares.append(api_errors)
    for route in ROUTES:
        app.router.add_route(route.method, _aiohttp_path(route.path), _bound(console, route))
