"""Templates per message format: values escaped for Markdown and HTML (never the
template's own text), the portal link, and what a channel without titles is sent."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest
from pydantic import ValidationError

from watcher.cycle import alerts_for
from watcher.formats import Format
from watcher.models import Alert, Event, EventKind, OutboxItem
from watcher.notifier import Message, compose, destination
from watcher.render import (
    DEFAULT_BODIES,
    SAMPLE_EVENT,
    SAMPLE_JOB,
    Looks,
    check,
    context,
    finish,
    render,
)
from watcher.settings import ApiSettings, Rule

HOSTILE = dataclasses.replace(
    SAMPLE_EVENT, job=msgspec.structs.replace(SAMPLE_JOB, name="<b>x</b> *y* [z](http://evil)")
)
PATTERN = "https://portal.example.com/jobs/{id}"
LINK = "https://portal.example.com/jobs/12345"


def variables(event: Event = HOSTILE, pattern: str = PATTERN) -> dict[str, Any]:
    return context(event, "failures", "failure", portal_pattern=pattern)


@pytest.mark.parametrize(
    ("to", "name", "link"),
    [
        (Format.TEXT, "<b>x</b> *y* [z](http://evil)", f"portal: {LINK}"),
        (Format.MARKDOWN, r"\<b\>x\</b\> \*y\* \[z\](http://evil)", f"portal]({LINK})"),
        (Format.HTML, "&lt;b&gt;x&lt;/b&gt; *y* [z](http://evil)", f'<a href="{LINK}">Open'),
    ],
)
def test_a_rules_template_escapes_values_for_its_format(to: Format, name: str, link: str) -> None:
    """`{{ ... }}` output is escaped for the format; `link` writes the format's link."""
    text = render(
        "{{ job.name }} | {{ link(job.portal_url, 'Open in the portal') }}", variables(), to
    )
    assert text.startswith(f"{name} | ")
    assert text.endswith(link) or link in text


@pytest.mark.parametrize("to", [Format.MARKDOWN, Format.HTML])
def test_the_templates_own_markup_and_safe_values_are_kept(to: Format) -> None:
    """Markup written in the template, or marked `safe`, is the author's and passes."""
    assert render("<b>**{{ '<i>' | safe }}**</b>", variables(), to) == "<b>**<i>**</b>"


@pytest.mark.parametrize("to", list(Format))
def test_the_escape_filter_escapes_once(to: Format) -> None:
    """`| e` marks a value escaped, so the output step does not escape it again."""
    once = render("{{ job.name | e }}", variables(), to)
    assert once == render("{{ job.name }}", variables(), to)
    assert render("{{ job.name | e | e }}", variables(), to) == once


def test_portal_url_is_empty_without_a_pattern() -> None:
    """No `api.portal_url`: the variable is empty and the default body has no link line."""
    assert variables(pattern="")["job"]["portal_url"] == ""
    body = render(DEFAULT_BODIES[EventKind.TRANSITION], variables(pattern=""))
    assert "portal" not in body


def test_check_knows_portal_url_and_link() -> None:
    assert check("{{ link(job.portal_url, job.name) }} {{ job.name | e }}") is None


@pytest.mark.parametrize(
    ("to", "ends"),
    [
        (Format.TEXT, f"\nOpen in the Performance Analyzer portal: {LINK}"),
        (Format.MARKDOWN, f"\n[Open in the Performance Analyzer portal]({LINK})"),
        (Format.HTML, f'<br>\n<a href="{LINK}">Open in the Performance Analyzer portal</a>'),
    ],
)
@pytest.mark.parametrize("kind", [EventKind.TRANSITION, EventKind.STUCK, EventKind.RECOVERED])
def test_default_bodies_end_with_the_portal_link(kind: EventKind, to: Format, ends: str) -> None:
    alert = queued(dataclasses.replace(HOSTILE, kind=kind))
    assert finish(alert, to, PATTERN).body.endswith(ends)


def test_a_missed_run_links_its_template_when_the_pattern_needs_no_job() -> None:
    missed = dataclasses.replace(
        SAMPLE_EVENT,
        kind=EventKind.MISSED,
        to_status="missed",
        job=msgspec.structs.replace(SAMPLE_JOB, sref=""),
    )
    by_template = finish(queued(missed), Format.TEXT, "https://p.example.com/t/{template}").body
    assert by_template.endswith("portal: https://p.example.com/t/6789")
    assert "portal" not in finish(queued(missed), Format.TEXT, PATTERN).body


def test_the_title_is_plain_text_whatever_the_body() -> None:
    assert finish(queued(HOSTILE), Format.HTML, PATTERN).title == (
        "<b>x</b> *y* [z](http://evil) failed"
    )


def queued(event: Event = HOSTILE, **rule: Any) -> Alert:
    settings = Rule.model_validate({"name": "failures", "notify": ["ops"], **rule})
    (alert,) = alerts_for(event, [settings])
    return alert


def outbox(alert: Alert, n: int = 1) -> OutboxItem:
    return OutboxItem(
        id=n, alert=alert, created_at=SAMPLE_EVENT.at, attempts=0, next_attempt_at=SAMPLE_EVENT.at
    )


@pytest.mark.parametrize(
    ("rule", "formats", "reads", "expected"),
    [
        ({}, {}, Format.MARKDOWN, Format.MARKDOWN),  # the default body: the channel's
        ({"body": "{{ job.name }}"}, {}, Format.HTML, Format.TEXT),  # own body: text
        ({"body": "{{ job.name }}"}, {"failures": Format.HTML}, Format.MARKDOWN, Format.HTML),
        ({}, {"failures": Format.TEXT}, Format.HTML, Format.TEXT),
    ],
)
def test_the_body_format_is_the_rules_else_the_channels(
    rule: dict[str, str], formats: dict[str, Format], reads: Format, expected: Format
) -> None:
    """A rule's `format` wins; a rule's own body is text; the default body is the channel's."""
    message = compose([outbox(queued(**rule))], reads, Looks(formats=formats))
    assert message.format is expected


def test_a_digest_is_a_list_in_the_channels_format() -> None:
    items = [outbox(queued(), 1), outbox(queued(dataclasses.replace(HOSTILE, job=SAMPLE_JOB)), 2)]
    message = compose(items, Format.HTML, Looks(portals={"default": PATTERN}))
    assert message.body == (
        "<ul>\n"
        f'<li><a href="{LINK}">&lt;b&gt;x&lt;/b&gt; *y* [z](http://evil) failed</a></li>\n'
        f'<li><a href="{LINK}">Homepage failed</a></li>\n'
        "</ul>"
    )


@pytest.mark.parametrize(
    ("url", "title"),
    [
        ("mmost://127.0.0.1:9/token", r"\*x\* failed"),  # no title: it leads the body
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#c", "*x* failed"),  # a header
    ],
)
def test_a_service_without_titles_gets_it_escaped_for_the_body(url: str, title: str) -> None:
    message = Message("*x* failed", "body", queued().severity, Format.MARKDOWN)
    assert message.title_for(destination(url)) == title


def test_a_rule_format_must_be_known() -> None:
    with pytest.raises(ValidationError, match="format"):
        Rule.model_validate({"name": "r", "notify": ["ops"], "format": "rtf"})


def test_a_bad_portal_pattern_is_named() -> None:
    with pytest.raises(ValidationError, match=r"(?s)portal_url.*unknown placeholder \{job\}"):
        ApiSettings.model_validate(
            {"realm": "r", "access_token": "t", "portal_url": "https://p.example.com/{job}"}
        )
