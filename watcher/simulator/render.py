"""How the simulated API writes its bodies: job objects (sound or broken), test runs,
error bodies (JSON or the HTML a proxy would send), and how it reads query dates.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from watcher.simulator.perf import PerfModel
from watcher.simulator.world import SimJob

# Gateways in front of real APIs answer these with their own HTML page, not JSON.
_HTML_STATUSES = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def job_json(job: SimJob, *, malformed: bool = False) -> dict[str, object]:
    """The API's job object; ``malformed`` breaks its typed fields but keeps the sref,
    so a client can name the record it had to skip."""
    body = job.to_json()
    if malformed:
        body.update(startedAt="not-a-date", updatedAt=None, status=42, pageCount="x")
    return body


def runs_for(job: SimJob, perf: PerfModel | None = None) -> list[dict[str, object]]:
    """The job's test runs (see ``perf``), the same every time for the same job."""
    return (perf or PerfModel()).runs(job)


def error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """An error answer; 502/503/504 come back as HTML, as from a gateway."""
    title = _HTML_STATUSES.get(status)
    if title is None:
        return web.json_response({"error": message}, status=status, headers=headers)
    page = (
        f"<html><head><title>{status} {title}</title></head>"
        f"<body><center><h1>{status} {title}</h1></center><hr><center>nginx</center>"
        "</body></html>\n"
    )
    return web.Response(text=page, status=status, content_type="text/html", headers=headers)


class BadParameter(ValueError):
    """A query parameter the API refuses; the message names the parameter."""


def query_date(request: web.Request, name: str) -> datetime | None:
    """An ISO 8601 date with a mandatory offset, or None when absent.

    An unencoded ``+`` reaches us as a space, so a client that forgot to URL-encode
    the offset gets a 400 here, as it would upstream.
    """
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadParameter(f"{name}: not an ISO 8601 date: {raw!r}") from None
    if value.tzinfo is None:
        raise BadParameter(f"{name}: the date needs an offset such as +00:00: {raw!r}")
    return value


def query_int(request: web.Request, name: str, default: int, *, minimum: int = 1) -> int:
    """A positive integer query parameter."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name}: not an integer: {raw!r}") from None
    if value < minimum:
        raise BadParameter(f"{name}: must be at least {minimum}")
    return value
