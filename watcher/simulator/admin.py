"""The ``/_sim`` admin routes, so a test or a person can drive a simulator running in
another process: add jobs, change statuses, set faults, read counters.
No auth: the simulator only ever listens on loopback.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from aiohttp import web

from watcher.simulator.world import Faults, World

_BOOL = frozenset({"down", "next_links", "omit_total"})
_INT = frozenset({"fail_next", "fail_status", "truncate_next", "nest_next", "token_fail_next"})
_FLOAT = frozenset({"delay", "token_ttl"})
_JOB_STR = frozenset(
    {"name", "status", "template", "type", "run_type", "started_by", "url", "started_at"}
)


def faults_json(faults: Faults) -> dict[str, object]:
    body = dataclasses.asdict(faults)
    body["malformed"] = sorted(faults.malformed)
    return body


def _checked_fault(key: str, value: Any) -> object:
    """The value to store for fault ``key``; ValueError naming the key if it is wrong."""
    # bool is an int subclass: keep true/false out of the numeric knobs.
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key in _BOOL and isinstance(value, bool):
        return value
    if key in _INT and is_int:
        return value
    if key in _FLOAT and (is_int or isinstance(value, float)):
        return float(value)
    if key == "retry_after" and (value is None or isinstance(value, str)):
        return value
    if key == "page_size_cap" and (value is None or is_int):
        return value
    if key == "malformed" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return set(value)
    known = {f.name for f in dataclasses.fields(Faults)}
    raise ValueError(f"{key}: {'bad value' if key in known else 'unknown fault'}: {value!r}")


def update_faults(faults: Faults, changes: dict[str, Any]) -> None:
    """Apply JSON-shaped changes all or nothing."""
    checked = {key: _checked_fault(key, value) for key, value in changes.items()}
    for key, value in checked.items():
        setattr(faults, key, value)


def _job_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for key, value in body.items():
        if key not in _JOB_STR or not isinstance(value, str):
            raise ValueError(f"{key}: unknown field or not a string")
        kwargs[key] = value
    if "started_at" in kwargs:
        started = datetime.fromisoformat(kwargs["started_at"])
        if started.tzinfo is None:
            raise ValueError("started_at: needs an offset such as +00:00")
        kwargs["started_at"] = started
    return kwargs


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


class _Admin:
    def __init__(self, world: World) -> None:
        self.world = world

    def _job_id(self, request: web.Request) -> int:
        raw = request.match_info["id"].removeprefix("jobs/")
        if not raw.isdigit() or self.world.get(int(raw)) is None:
            raise web.HTTPNotFound(text="no such job")
        return int(raw)

    async def add_job(self, request: web.Request) -> web.Response:
        try:
            job = self.world.add_job(**_job_kwargs(await _json_object(request)))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(job.to_json(), status=201)

    async def set_status(self, request: web.Request) -> web.Response:
        job_id = self._job_id(request)
        status = (await _json_object(request)).get("status")
        if not isinstance(status, str):
            return web.json_response({"error": "status: a string is required"}, status=400)
        return web.json_response(self.world.set_status(job_id, status).to_json())

    async def remove_job(self, request: web.Request) -> web.Response:
        job_id = self._job_id(request)
        self.world.remove(job_id)
        return web.json_response({"removed": f"jobs/{job_id}"})

    async def list_jobs(self, request: web.Request) -> web.Response:
        return web.json_response([job.to_json() for job in self.world.jobs()])

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(faults_json(self.world.faults))

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            update_faults(self.world.faults, await _json_object(request))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(faults_json(self.world.faults))

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.world.requests))

    async def expire_tokens(self, request: web.Request) -> web.Response:
        count = len(self.world.tokens)
        self.world.tokens.expire_all()
        return web.json_response({"expired": count})


def add_admin_routes(app: web.Application, world: World) -> None:
    """Mount the admin routes; their names start with ``sim_`` so they go uncounted."""
    admin = _Admin(world)
    router = app.router
    router.add_get("/_sim/jobs", admin.list_jobs, name="sim_jobs")
    router.add_post("/_sim/jobs", admin.add_job, name="sim_add_job")
    router.add_post("/_sim/jobs/{id}/status", admin.set_status, name="sim_status")
    router.add_delete("/_sim/jobs/{id}", admin.remove_job, name="sim_remove")
    router.add_get("/_sim/faults", admin.get_faults, name="sim_faults")
    router.add_post("/_sim/faults", admin.set_faults, name="sim_set_faults")
    router.add_get("/_sim/stats", admin.stats, name="sim_stats")
    router.add_post("/_sim/tokens/expire", admin.expire_tokens, name="sim_expire_tokens")
