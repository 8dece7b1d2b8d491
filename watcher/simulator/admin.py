"""The ``/_sim`` admin routes, so a test or a person can drive a simulator running in
another process: add jobs, change statuses, set faults, read counters; shift and
recover test-run metrics (``/_sim/perf``), make a template's jobs fail and its reruns
pass or fail (``/_sim/flakes``), and read or tune the jobs started through
``POST /jobs`` (``/_sim/launches``).
No auth: the simulator only ever listens on loopback.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from aiohttp import web

from watcher.simulator.perf import Page, check_rate
from watcher.simulator.world import Faults, World

_BOOL = frozenset({"down", "next_links", "omit_total"})
_INT = frozenset(
    {
        "fail_next",
        "fail_status",
        "truncate_next",
        "nest_next",
        "token_fail_next",
        "create_fail_next",
        "create_fail_status",
    }
)
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


def _number(body: dict[str, Any], key: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: a number is required")
    return float(value)


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: a string is required")
    return value


def _bad(exc: ValueError) -> web.Response:
    return web.json_response({"error": str(exc)}, status=400)


_PERF_KNOBS = {"noise": 10.0, "size_noise": 10.0, "null_rate": 1.0, "error_rate": 1.0}


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

    async def get_perf(self, request: web.Request) -> web.Response:
        return web.json_response(self.world.perf.settings())

    async def set_perf(self, request: web.Request) -> web.Response:
        """Global knobs (noise, size_noise, null_rate, error_rate), all or nothing; with
        ``template``, ``noise`` is that template's alone (null: back to the default)."""
        body = await _json_object(request)
        perf = self.world.perf
        try:
            template = _text(body, "template", required=False)
            if template is not None:
                if set(body) != {"template", "noise"}:
                    raise ValueError("with template, only noise may be set")
                noise = body["noise"]
                perf.set_noise(template, None if noise is None else _number(body, "noise"))
                return web.json_response(perf.settings())
            checked = {}
            for key in body:
                if key not in _PERF_KNOBS:
                    raise ValueError(f"{key}: unknown perf knob")
                checked[key] = check_rate(key, _number(body, key), top=_PERF_KNOBS[key])
        except ValueError as exc:
            return _bad(exc)
        for key, value in checked.items():
            setattr(perf, key, value)
        return web.json_response(perf.settings())

    async def shift(self, request: web.Request) -> web.Response:
        """``{template, metric, factor, page?}``: see ``PerfModel.shift``."""
        body = await _json_object(request)
        try:
            self.world.perf.shift(
                _text(body, "template") or "",
                _text(body, "metric") or "",
                _number(body, "factor"),
                page=_text(body, "page", required=False),
            )
        except ValueError as exc:
            return _bad(exc)
        return web.json_response(self.world.perf.settings())

    async def recover(self, request: web.Request) -> web.Response:
        """``{template, metric?, page?}``: see ``PerfModel.recover``."""
        body = await _json_object(request)
        try:
            self.world.perf.recover(
                _text(body, "template") or "",
                _text(body, "metric", required=False),
                page=_text(body, "page", required=False),
            )
        except ValueError as exc:
            return _bad(exc)
        return web.json_response(self.world.perf.settings())

    async def pages(self, request: web.Request) -> web.Response:
        """``GET ?template=``: its pages and browsers. ``POST {template, pages:
        [{title, url}], browsers?}`` sets them."""
        perf = self.world.perf
        if request.method == "POST":
            body = await _json_object(request)
            try:
                template = _text(body, "template") or ""
                raw, browsers = body.get("pages"), body.get("browsers")
                if not isinstance(raw, list) or not all(
                    isinstance(p, dict)
                    and isinstance(p.get("title"), str)
                    and isinstance(p.get("url"), str)
                    for p in raw
                ):
                    raise ValueError("pages: a list of {title, url} is required")
                if browsers is not None and not (
                    isinstance(browsers, list) and all(isinstance(b, str) for b in browsers)
                ):
                    raise ValueError("browsers: a list of strings")
                perf.set_pages(template, [Page(p["title"], p["url"]) for p in raw], browsers)
            except ValueError as exc:
                return _bad(exc)
        else:
            template = request.query.get("template", "")
            if not template:
                return _bad(ValueError("template: required"))
        return web.json_response(
            {
                "template": template,
                "pages": [{"title": p.title, "url": p.url} for p in perf.pages(template)],
                "browsers": list(perf.browsers(template)),
            }
        )

    async def get_flakes(self, request: web.Request) -> web.Response:
        return web.json_response(self.world.flakes())

    async def set_flakes(self, request: web.Request) -> web.Response:
        """``{template, count?: 1, mode?: "flaky" | "broken"}``: see ``World.fail_next``."""
        body = await _json_object(request)
        try:
            count = body.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, int):
                raise ValueError("count: an integer is required")
            mode = body.get("mode", "flaky")
            if not isinstance(mode, str):
                raise ValueError("mode: a string is required")
            self.world.fail_next(_text(body, "template") or "", count, mode=mode)
        except ValueError as exc:
            return _bad(exc)
        return web.json_response(self.world.flakes())

    async def heal(self, request: web.Request) -> web.Response:
        """``{template}``: see ``World.heal``."""
        try:
            self.world.heal(_text(await _json_object(request), "template") or "")
        except ValueError as exc:
            return _bad(exc)
        return web.json_response(self.world.flakes())

    def _launches(self) -> dict[str, object]:
        launches = self.world.launches
        return {
            "pending_for": launches.pending_for,
            "run_for": launches.run_for,
            "posts": dict(launches.posts),
            "created": launches.created,
        }

    async def get_launches(self, request: web.Request) -> web.Response:
        return web.json_response(self._launches())

    async def set_launches(self, request: web.Request) -> web.Response:
        """``{pending_for?, run_for?}`` in simulated seconds, for jobs started from now."""
        body = await _json_object(request)
        try:
            checked = {}
            for key in body:
                if key not in ("pending_for", "run_for"):
                    raise ValueError(f"{key}: unknown")
                checked[key] = _number(body, key)
                if checked[key] < 0:
                    raise ValueError(f"{key}: must not be negative")
        except ValueError as exc:
            return _bad(exc)
        for key, value in checked.items():
            setattr(self.world.launches, key, value)
        return web.json_response(self._launches())

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
    router.add_get("/_sim/perf", admin.get_perf, name="sim_perf")
    router.add_post("/_sim/perf", admin.set_perf, name="sim_set_perf")
    router.add_post("/_sim/perf/shift", admin.shift, name="sim_shift")
    router.add_post("/_sim/perf/recover", admin.recover, name="sim_recover")
    router.add_get("/_sim/perf/pages", admin.pages, name="sim_pages")
    router.add_post("/_sim/perf/pages", admin.pages, name="sim_set_pages")
    router.add_get("/_sim/flakes", admin.get_flakes, name="sim_flakes")
    router.add_post("/_sim/flakes", admin.set_flakes, name="sim_set_flakes")
    router.add_post("/_sim/flakes/heal", admin.heal, name="sim_heal")
    router.add_get("/_sim/launches", admin.get_launches, name="sim_launches")
    router.add_post("/_sim/launches", admin.set_launches, name="sim_set_launches")
