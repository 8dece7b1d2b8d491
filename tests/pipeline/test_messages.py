"""Messages as they arrive: the daemon against the simulator, with real receivers (a
webhook, an SMTP server, a Mattermost endpoint served locally) and a job whose name is
hostile markup. Each receiver gets its own format, the portal link intact, and the
name shown as itself: escaped once, never twice, never read as markup."""

from __future__ import annotations

import contextlib
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from apprise.conversion.format import markdown_to_html

from tests.conftest import Hook, Mailbox, config_document, receiving, serve
from watcher.app import Daemon
from watcher.settings import Settings
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

HOSTILE = "<b>x</b> *y* [z](http://evil) a_b"
PORTAL = "https://portal.example.com/jobs/{id}?t={template}"


@dataclass
class Mattermost:
    """A Mattermost incoming webhook (apprise's mmost:// plugin posts to /hooks/TOKEN)."""

    port: int = 0
    texts: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"mmost://127.0.0.1:{self.port}/t0ken"


@contextlib.asynccontextmanager
async def mattermost() -> AsyncIterator[Mattermost]:
    receiver = Mattermost()

    async def handle(request: web.Request) -> web.Response:
        receiver.texts.append(str((await request.json())["text"]))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hooks/t0ken", handle)
    runner, receiver.port = await serve(app)
    try:
        yield receiver
    finally:
        await runner.cleanup()


def daemon(
    sim: SimulatorHandle, tmp_path: Path, channels: dict[str, str], **overrides: Any
) -> Daemon:
    document = config_document(sim, tmp_path, channels, api={"portal_url": PORTAL})
    # The default templates: the configured document's rule has its own.
    document["rules"] = [{"name": "failures", "match": {"to": ["failed"]}, "notify": ["all"]}]
    document["channels"] = {"all": list(channels.values())}
    for key, value in overrides.items():
        document[key] = value
    return Daemon(Settings(**document))


async def fail_jobs(d: Daemon, world: World, *names: str) -> list[str]:
    """Jobs that fail between two polls; their portal links."""
    jobs = [
        world.add_job(name=name, status="running", template="jobTemplates/77") for name in names
    ]
    assert await d.poll_once()
    for job in jobs:
        world.set_status(job, "failed")
    assert await d.poll_once()
    await d.notifier.flush(budget=20)
    await d.close()
    return [PORTAL.format(id=job.sref.rsplit("/", 1)[-1], template="77") for job in jobs]


def part(raw: str, kind: str) -> str:
    """The text of a mail's `kind` part (html, plain), with its line ends as written."""
    message = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    found = message.get_body((kind,))
    assert found is not None, f"no {kind} part"
    return str(found.get_content()).replace("\r\n", "\n")


def html_part(raw: str) -> str:
    return part(raw, "html")


def subject(raw: str) -> str:
    return str(email.message_from_string(raw, policy=email.policy.default)["Subject"])


async def test_each_receiver_gets_its_format_with_the_name_as_itself_and_the_portal_link(
    sim: SimulatorHandle, world: World, hook: Hook, smtp: Mailbox, tmp_path: Path
) -> None:
    """Text to the webhook, Markdown to Mattermost and to a webhook asking for it, HTML to
    email: the hostile name shows literally in each, the portal link is a link."""
    async with receiving(Hook()) as markdown_hook, mattermost() as mm:
        channels = {
            "text": hook.url,
            "markdown": markdown_hook.url + "?format=markdown",
            "mail": smtp.url,
            "mattermost": mm.url,
        }
        d = daemon(sim, tmp_path, channels)
        [link] = await fail_jobs(d, world, HOSTILE)

    plain = hook.received[0]["message"]
    assert f"Job {HOSTILE} (jobs/" in plain
    assert f"Open in the Performance Analyzer portal: {link}" in plain
    assert hook.titles() == [f"{HOSTILE} failed"]

    markdown = markdown_hook.received[0]["message"]
    assert r"Job \<b\>x\</b\> \*y\* \[z\](http://evil) a\_b (jobs/" in markdown
    assert f"[Open in the Performance Analyzer portal]({link})" in markdown
    # Read as Markdown, it shows the name and one link: the portal's.
    shown = markdown_to_html(markdown)
    assert "&lt;b&gt;x&lt;/b&gt; *y* [z](http://evil) a_b" in shown
    assert shown.count("<a href=") == 1
    assert f'<a href="{link.replace("&", "&amp;")}">' in shown

    [mail] = smtp.messages
    assert subject(mail) == f"{HOSTILE} failed"  # a header: plain text
    body = html_part(mail)
    assert "Job &lt;b&gt;x&lt;/b&gt; *y* [z](http://evil) a_b (jobs/" in body
    assert "&amp;lt;" not in body  # escaped once
    assert f'<a href="{link.replace("&", "&amp;")}">Open in the Performance Analyzer' in body
    assert "<br>" in body  # lines stay lines

    # Mattermost has no title: it leads the Markdown body, escaped like the name in it.
    [text] = mm.texts
    assert text.startswith(r"\<b\>x\</b\> \*y\* \[z\](http://evil) a\_b failed")
    assert f"[Open in the Performance Analyzer portal]({link})" in text


async def test_a_digest_links_each_line_in_each_format(
    sim: SimulatorHandle, world: World, hook: Hook, smtp: Mailbox, tmp_path: Path
) -> None:
    """A digest lists each alert's title, linked to its job in the portal."""
    async with receiving(Hook()) as markdown_hook:
        channels = {
            "text": hook.url,
            "md": markdown_hook.url + "?format=markdown",
            "mail": smtp.url,
        }
        d = daemon(sim, tmp_path, channels, delivery={"group_wait": "10s"})
        links = await fail_jobs(d, world, "Checkout", "*Search*")

    assert hook.titles() == ["2 jobs failed"]
    # (in the order the cycle found the events)
    assert sorted(hook.received[0]["message"].splitlines()) == [
        f"- *Search* failed: {links[1]}",
        f"- Checkout failed: {links[0]}",
    ]
    assert sorted(markdown_hook.received[0]["message"].splitlines()) == [
        f"- [Checkout failed]({links[0]})",
        rf"- [\*Search\* failed]({links[1]})",
    ]
    body = html_part(smtp.messages[0])
    for name, link in zip(["Checkout", "*Search*"], links, strict=True):
        assert f'<li><a href="{link.replace("&", "&amp;")}">{name} failed</a></li>' in body


async def test_a_rules_format_and_own_body_decide_what_email_gets(
    sim: SimulatorHandle, world: World, smtp: Mailbox, tmp_path: Path
) -> None:
    """A rule's own body is plain text unless the rule says `format`; in html its values
    are escaped and its markup kept."""
    rules = [
        {
            "name": "own-text",
            "match": {"to": ["failed"]},
            "notify": ["all"],
            "body": "{{ job.name }} failed\nsee {{ job.portal_url }}",
        },
        {
            "name": "own-html",
            "match": {"to": ["failed"]},
            "notify": ["all"],
            "format": "html",
            "body": "<p><b>{{ job.name }}</b> {{ link(job.portal_url, 'portal') }}</p>",
        },
    ]
    d = daemon(sim, tmp_path, {"mail": smtp.url}, rules=rules)
    [link] = await fail_jobs(d, world, "<i>n</i>")
    texts = sorted(smtp.messages, key=lambda raw: "text/html" in raw)
    plain, html = texts
    assert "text/html" not in plain  # sent as text: no HTML part at all
    assert f"<i>n</i> failed\nsee {link}" in part(plain, "plain")
    assert (
        f'<p><b>&lt;i&gt;n&lt;/i&gt;</b> <a href="{link.replace("&", "&amp;")}">portal</a></p>'
        in html_part(html)
    )
