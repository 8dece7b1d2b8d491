"""`POST /jobs` (the flake filter's start request) against a hostile server over a real
socket: any 2xx with a jobUri starts; a 4xx is refused and not retried; 429 and 5xx
fail for a later try; an answer that never comes, or a 2xx without a jobUri, leaves it
unknown whether a job started. One request each time (two after a 401)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from aiohttp import web

from tests.hostile import Answer, answer, hostile_api, json_answer, token_answer
from tests.unit.test_client_hostile import CLIENT_SECRET, no_sleep, settings
from watcher.client import ApiError, Client, JobRefused, StartUnknown

TEMPLATE = "jobTemplates/6789"


def posts(reply: Answer, first: Answer | None = None) -> Callable[[web.Request], Answer]:
    """A token endpoint, and `POST /jobs` answering `first` once (if given), then `reply`."""
    pending = [first] if first is not None else []

    def route(request: web.Request) -> Answer:
        if request.path.endswith("/token"):
            return token_answer()
        return pending.pop() if pending else reply

    return route


async def start(route: Callable[[web.Request], Answer], **kw: object) -> tuple[object, int]:
    """The outcome of one start_job (the sref, or the exception) and the POSTs made."""
    async with hostile_api(route) as api:
        async with Client(settings(api, **kw), sleep=no_sleep) as client:
            try:
                outcome: object = await client.start_job(TEMPLATE)
            except ApiError as exc:
                outcome = exc
        assert CLIENT_SECRET not in str(outcome)
        return outcome, sum(1 for p in api.paths() if p.split("?")[0].endswith("/jobs"))


@pytest.mark.parametrize("status", [200, 201, 202])
async def test_any_2xx_with_a_job_uri_is_the_new_job(status: int) -> None:
    got, sent = await start(posts(json_answer({"results": {"jobUri": "jobs/98765"}}, status)))
    assert (got, sent) == ("jobs/98765", 1)


async def test_the_request_names_the_template_as_json() -> None:
    async with hostile_api(posts(json_answer({"results": {"jobUri": "jobs/1"}}))) as api:
        async with Client(settings(api), sleep=no_sleep) as client:
            await client.start_job(TEMPLATE)
        (post,) = [s for s in api.seen if s.path_qs.endswith("/jobs")]
    assert post.method == "POST"
    assert post.body == b'{"jobTemplateUri": "jobTemplates/6789"}'
    assert post.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
async def test_a_4xx_is_refused_once(status: int) -> None:
    got, sent = await start(posts(answer(status, b"<html>no</html>")))
    assert isinstance(got, JobRefused)
    assert f"HTTP {status}" in str(got)
    assert sent == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_429_and_5xx_fail_for_a_later_try(status: int) -> None:
    got, sent = await start(posts(answer(status, b"busy", [("Retry-After", "1")])))
    assert type(got) is ApiError
    assert sent == 1


async def test_a_401_renews_the_token_and_asks_once_more() -> None:
    ok = json_answer({"results": {"jobUri": "jobs/7"}})
    got, sent = await start(posts(ok, first=answer(401)))
    assert (got, sent) == ("jobs/7", 2)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"results": {}}',
        b'{"results": {"jobUri": 98765}}',
        b'{"results": {"jobUri": "templates/1"}}',
        b'{"results": [{"jobUri": "jobs/1"}]}',
    ],
)
async def test_a_2xx_without_a_job_uri_leaves_the_start_unknown(body: bytes) -> None:
    got, sent = await start(posts(answer(201, body, [("Content-Type", "application/json")])))
    assert isinstance(got, StartUnknown)
    assert sent == 1


async def test_an_answer_that_never_comes_leaves_the_start_unknown() -> None:
    late = dataclasses.replace(json_answer({"results": {"jobUri": "jobs/1"}}), delay=5)
    got, sent = await start(posts(late), timeout=0.5)
    assert isinstance(got, StartUnknown)
    assert "may have started" in str(got)
    assert sent == 1
