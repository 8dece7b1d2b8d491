"""The status page at / (SPEC "People in the loop"): one server-rendered HTML page
that refreshes itself, with no script at all, so a strict Content-Security-Policy
costs nothing and it works with JavaScript off. Its forms post the token in a
password field (no cookie, so no CSRF) and land back on the page: 303 on success,
the page again with the problem named on failure."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import MultiMapping

from watcher import chart, people
from watcher.people import Refused
from watcher.vocabulary import SILENCE_KEYS
from watcher.web import Console, actions, data

if TYPE_CHECKING:
    import jinja2

STATIC = Path(__file__).with_name("static")
_TYPES = {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
Form = MultiMapping[Any]  # a form's fields: text, or a file that is no answer
Change = Callable[[web.Request, Form], Awaitable[object]]


class Denied(Exception):
    """The form's token is missing (401) or wrong, or writes are off (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def ago(value: str | None, now: datetime) -> str:
    """ "3 min ago", coarse on purpose: the page refreshes every 30 s."""
    if not value:
        return "never"
    seconds = int((now - datetime.fromisoformat(value)).total_seconds())
    span = _span(abs(seconds))
    return f"{span} ago" if seconds >= 0 else f"in {span}"


def _span(seconds: int) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def clock(value: str | None) -> str:
    return datetime.fromisoformat(value).strftime("%d %b %H:%M UTC") if value else ""


def shown_state(alert: Mapping[str, Any]) -> str:
    """The delivery state a person cares about: a pending alert is held (quiet hours),
    retrying (an attempt failed) or simply pending."""
    if alert["state"] != "pending":
        return str(alert["state"])
    steps = alert["steps"]
    if steps and steps[-1]["what"] == "held":
        return "held"
    return "retrying" if alert["attempts"] else "pending"


def quantity(value: float | None, unit: str) -> str:
    """A series' value as its chart labels it; a dash for none."""
    return "-" if value is None else chart.quantity(value, unit)


@functools.cache
def _templates() -> jinja2.Environment:
    """The page's templates, loaded with Jinja2 when the page is first asked for: a
    daemon whose page nobody opens keeps neither (about 2 MB)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("watcher.web", "templates"),
        autoescape=True,  # every name and comment comes from the API or a person: escape all
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, clock=clock, shown_state=shown_state, quantity=quantity)
    return env


async def render(
    console: Console,
    *,
    status: int = 200,
    refresh: bool = True,
    error: str = "",
    failed: str = "",
    form: Mapping[str, str] | None = None,
) -> web.Response:
    """The page; after a refused write, with the problem named and the form's values
    (never its token) back in the form that failed, and without the refresh that would
    throw them away."""
    now = console.clock()
    store, names = console.store, console.accounts
    recent = await data.day_of_alerts(store, now)
    context = {
        "now": now,
        "accounts": await data.accounts(
            store, names, shared=console.shared, replica=console.replica
        ),
        # one read of the day's alerts: the newest are listed, all give each template's last
        "templates": await data.templates(store, names, now, recent),
        "alerts": [data.record(found) for found in recent[: data.ALERTS_SHOWN]],
        "silences": await data.silences(store, now),
        "acks": await data.acks(store),
        "writable": console.token is not None,
        "keys": SILENCE_KEYS,
        "refresh": refresh and not error,
        "error": error,
        "failed": failed,
        "form": form or {},
    }
    html = _templates().get_template("index.html").render(context)
    return web.Response(text=html, status=status, content_type="text/html", headers=HEADERS)


async def render_series(console: Console, *, refresh: bool = True) -> web.Response:
    """The series page: the series updated last, each with its chart inline (an SVG
    `data:` image, which the CSP's img-src allows and which runs no script)."""
    context = {
        "now": console.clock(),
        "here": "/series",
        "refresh": refresh,
        "accounts": console.accounts,
        "shown": data.SERIES_SHOWN,
        "series": await data.series(
            console.store, console.accounts, console.thresholds, charts=True
        ),
    }
    html = _templates().get_template("series.html").render(context)
    return web.Response(text=html, content_type="text/html", headers=HEADERS)


def _text(form: Form, key: str) -> str:
    value = form.get(key, "")
    return value if isinstance(value, str) else ""  # a file upload is no answer


def _check(console: Console, form: Form) -> None:
    if console.token is None:
        raise Denied(403, "Writes are off: no server.api_token is configured.")
    token = _text(form, "token")
    if not token:
        raise Denied(401, "Give the API token (server.api_token) to change anything.")
    if not actions.authorized(console, token):
        raise Denied(403, "That token is not the configured server.api_token.")


def matcher_pairs(text: str) -> list[tuple[str, str]]:
    """ "template=jobTemplates/6789, name=Nightly *" as (key, glob) pairs."""
    pairs = [people.parse_matcher(part.strip()) for part in text.split(",") if part.strip()]
    return [(key, glob.strip()) for key, glob in pairs]


async def _add_silence(console: Console, form: Form) -> object:
    body = {
        "matchers": [{"key": k, "value": v} for k, v in matcher_pairs(_text(form, "matchers"))],
        "duration": _text(form, "duration") or "4h",
        "comment": _text(form, "comment"),
        "author": _text(form, "author") or "status page",
    }
    return await actions.add_silence(console, body)


async def _add_ack(console: Console, form: Form) -> object:
    target = _text(form, "target").strip()
    what = "template" if target.startswith("jobTemplates/") else "job"
    body = {
        what: target,
        "account": _text(form, "account"),
        "comment": _text(form, "comment"),
        "author": _text(form, "author") or "status page",
    }
    return await actions.add_ack(console, body)


def _status(exc: Exception) -> int:
    if isinstance(exc, Denied):
        return exc.status
    return 404 if isinstance(exc, actions.Missing) else 400


def _number(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route's pattern allows digits only


def mount(app: web.Application, console: Console) -> None:
    """The page, the series page, their stylesheet, and the four form targets."""

    async def index(request: web.Request) -> web.Response:
        # ?refresh=off: a person writing a comment does not want it thrown away in 30 s.
        return await render(console, refresh=request.query.get("refresh") != "off")

    async def series(request: web.Request) -> web.Response:
        return await render_series(console, refresh=request.query.get("refresh") != "off")

    async def static(request: web.Request) -> web.Response:
        path = STATIC / request.match_info["name"]
        if path.suffix not in _TYPES or not path.is_file():
            raise web.HTTPNotFound()
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"}
        return web.Response(
            body=path.read_bytes(), content_type=_TYPES[path.suffix], headers=headers
        )

    def write(change: Change) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            form = await request.post()
            try:
                _check(console, form)
                await change(request, form)
            except (Denied, Refused, actions.Missing) as exc:
                shown = {k: v for k, v in form.items() if isinstance(v, str) and k != "token"}
                failed = request.path.split("/")[1]
                return await render(
                    console, status=_status(exc), error=str(exc), failed=failed, form=shown
                )
            raise web.HTTPSeeOther("/", headers=HEADERS)

        return handle

    app.router.add_get("/", index)
    app.router.add_get("/series", series)
    app.router.add_get(r"/static/{name:[a-z0-9-]+\.[a-z]+}", static)
    app.router.add_post("/silences", write(lambda _r, form: _add_silence(console, form)))
    app.router.add_post(
        r"/silences/{id:\d{1,18}}/expire",
        write(lambda request, _f: actions.expire_silence(console, _number(request))),
    )
    app.router.add_post("/acks", write(lambda _r, form: _add_ack(console, form)))
    app.router.add_post(
        r"/acks/{id:\d{1,18}}/expire",
        write(lambda request, _f: actions.expire_ack(console, _number(request))),
    )
