"""The simulated Performance Analyzer HTTP API as an aiohttp application.

Owns the routes (token, jobs, one job, test runs, job creation), the realm and
bearer checks, and where each fault knob of ``World.faults`` bites.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from watcher.simulator.admin import add_admin_routes
from watcher.simulator.render import (
    BadParameter,
    error,
    job_json,
    query_date,
    query_int,
)
from watcher.simulator.world import World

REALM = "sim-realm"
CLIENT_ID = "sim-client"
CLIENT_SECRET = "sim-secret"  # noqa: S105 - the simulator's well-known fake secret
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
DEEP = 100_000  # levels of the `nest_next` fault: past Python's and msgspec's recursion limits
API_USER = "Performance Analyzer API"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class _Config:
    realm: str
    client_id: str
    client_secret: str


WORLD = web.AppKey("sim_world", World)
CONFIG = web.AppKey("sim_config", _Config)


def make_app(
    world: World,
    *,
    realm: str = REALM,
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    admin: bool = True,
) -> web.Application:
    """Build the simulator app over ``world``; ``admin`` adds the ``/_sim`` routes."""
    app = web.Application(middlewares=[_middleware])
    app[WORLD] = world
    app[CONFIG] = _Config(realm, client_id, client_secret)
    # Route names double as the request kinds counted in world.requests.
    app.router.add_post("/authorisation/token", _token, name="token")
    app.router.add_get("/pa/v1/jobs", _list_jobs, name="list")
    app.router.add_post("/pa/v1/jobs", _create_job, name="create")
    app.router.add_get("/pa/v1/jobs/{id}", _get_job, name="get")
    app.router.add_get("/pa/v1/testRuns", _test_runs, name="testRuns")
    if admin:
        add_admin_routes(app, world)
    return app


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count API requests and apply the faults; admin and unknown routes pass through."""
    kind = request.match_info.route.name
    world = request.app[WORLD]
    world.tick()  # jobs started through POST /jobs move on with the clock
    if kind is None or kind.startswith("sim_"):
        return await handler(request)
    world.requests[kind] += 1
    if kind == "token":
        response = await _token_faults(request, handler, world)
    else:
        response = await _data_faults(request, handler, world)
    if response.status >= 400:
        world.requests["error"] += 1
    return response


def _fault_headers(world: World) -> dict[str, str] | None:
    retry_after = world.faults.retry_after
    return None if retry_after is None else {"Retry-After": retry_after}


async def _token_faults(request: web.Request, handler: Handler, world: World) -> web.StreamResponse:
    faults = world.faults
    if faults.token_fail_next > 0:
        faults.token_fail_next -= 1
        return error(faults.fail_status, "injected failure", headers=_fault_headers(world))
    return await handler(request)


async def _data_faults(request: web.Request, handler: Handler, world: World) -> web.StreamResponse:
    # Faults act first, as a gateway in front of the API would, in the documented order.
    faults = world.faults
    if faults.delay > 0:
        await asyncio.sleep(faults.delay)
    if faults.down:
        return error(503, "service down", headers=_fault_headers(world))
    if faults.fail_next > 0:
        faults.fail_next -= 1
        return error(faults.fail_status, "injected failure", headers=_fault_headers(world))
    denied = _check_access(request, world)
    if denied is not None:
        return denied
    response = await handler(request)
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes) or not 200 <= response.status < 300:
        return response
    if faults.truncate_next > 0:
        faults.truncate_next -= 1
        world.requests["truncated"] += 1
        body = body[: len(body) // 2]
    elif faults.nest_next > 0 and body.startswith(b"{"):
        faults.nest_next -= 1
        world.requests["nested"] += 1
        body = b'{"nested": ' + b"[" * DEEP + b"]" * DEEP + b", " + body[1:]
    else:
        return response
    return web.Response(body=body, status=response.status, content_type="application/json")


def _check_access(request: web.Request, world: World) -> web.Response | None:
    """403 without the right realm, 401 without a live bearer token, else None."""
    config = request.app[CONFIG]
    if request.headers.get("Realm") != config.realm:
        return error(403, "missing or unknown Realm header")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not world.tokens.valid(token.strip()):
        return error(
            401,
            "invalid_token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None


def _basic_ok(header: str, config: _Config) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    client_id, sep, secret = decoded.partition(":")
    # compare_digest: habit for credential checks, even in a simulator.
    return bool(sep) and (
        hmac.compare_digest(client_id, config.client_id)
        & hmac.compare_digest(secret, config.client_secret)
    )


async def _token(request: web.Request) -> web.Response:
    world, config = request.app[WORLD], request.app[CONFIG]
    if not _basic_ok(request.headers.get("Authorization", ""), config):
        return error(
            401, "invalid_client", headers={"WWW-Authenticate": 'Basic realm="authorisation"'}
        )
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return error(400, "unsupported_grant_type")
    ttl = world.faults.token_ttl
    return web.json_response(
        {
            "access_token": world.tokens.issue(ttl),
            "token_type": "bearer",
            # The OAuth2 norm is whole seconds; sub-second lifetimes only occur in tests.
            "expires_in": int(ttl) if float(ttl).is_integer() else ttl,
        }
    )


def _paging(request: web.Request, world: World) -> tuple[int, int]:
    """The page (1-based) and page size asked for, the size capped as the API does."""
    page = query_int(request, "page", 1)
    size = min(query_int(request, "pageSize", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    cap = world.faults.page_size_cap
    if cap is not None:
        # Silently: the client is not told its pageSize was ignored.
        size = min(size, max(1, cap))
    return page, size


def _meta(
    request: web.Request, world: World, page: int, size: int, total: int, started: float
) -> dict[str, object]:
    meta: dict[str, object] = {}
    for name in ("fromDate", "toDate"):
        if name in request.query:
            meta[name] = request.query[name]
    if not world.faults.omit_total:
        meta["paginationTotalResults"] = total
    if world.faults.next_links and page * size < total:
        meta["next"] = str(request.url.update_query(page=page + 1))
    meta["response_in_sec"] = round(max(time.perf_counter() - started, 0.001), 3)
    return meta


async def _list_jobs(request: web.Request) -> web.Response:
    started = time.perf_counter()
    world = request.app[WORLD]
    try:
        start = query_date(request, "fromDate")
        end = query_date(request, "toDate")
        page, size = _paging(request, world)
    except BadParameter as exc:
        return error(400, str(exc))
    items, total = world.page(
        start,
        end,
        template=request.query.get("jobTemplate"),
        offset=(page - 1) * size,
        limit=size,
    )
    malformed = world.faults.malformed
    results = [job_json(job, malformed=job.sref in malformed) for job in items]
    meta = _meta(request, world, page, size, total, started)
    return web.json_response({"results": results, "meta": meta})


async def _get_job(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    raw = request.match_info["id"]
    job = world.get(int(raw)) if raw.isdigit() else None
    if job is None:
        return error(404, "not found")
    malformed = job.sref in world.faults.malformed
    return web.json_response({"results": job_json(job, malformed=malformed)})


async def _test_runs(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    sref = request.query.get("job")
    if sref is None:
        return error(400, "job: required, e.g. job=jobs%2F12345")
    try:
        page, size = _paging(request, world)
    except BadParameter as exc:
        return error(400, str(exc))
    try:
        runs = world.perf.runs(world.resolve(sref))
    except KeyError:
        # A filter that matches nothing is an empty list, not a 404.
        runs = []
    offset = (page - 1) * size
    meta = _meta(request, world, page, size, len(runs), time.perf_counter())
    meta["response_in_sec"] = 0.01  # fixed: the same job answers the same body
    return web.json_response({"results": runs[offset : offset + size], "meta": meta})


async def _create_job(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    try:
        body = await request.json()
    except ValueError:
        return error(400, "body must be JSON")
    template = body.get("jobTemplateUri") if isinstance(body, dict) else None
    if not isinstance(template, str) or not template.startswith("jobTemplates/"):
        return error(400, "jobTemplateUri: required, e.g. jobTemplates/6789")
    world.launches.posts[template] += 1
    faults = world.faults
    if faults.create_fail_next > 0:
        faults.create_fail_next -= 1
        status = faults.create_fail_status
        return error(status, "injected job start failure", headers=_fault_headers(world))
    # A new run of a known template looks like its previous runs.
    previous = next((j for j in world.jobs() if j.template == template), None)
    job = world.start_job(
        template,
        name=previous.name if previous else None,
        type=previous.type if previous else "Single",
        url=previous.url if previous else "",
        started_by=API_USER,
        run_type="manual",
    )
    if faults.create_delay:
        await asyncio.sleep(faults.create_delay)
    return web.json_response({"results": {"jobUri": job.sref}}, status=201)
