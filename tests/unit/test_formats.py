"""Formats: which one a channel reads, and values written so that they show as themselves."""

from __future__ import annotations

import pytest
from apprise.conversion.format import markdown_to_html

from watcher.formats import Format, escape, for_url, link


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("slack://T1/B2/C3/#perf", Format.MARKDOWN),
        ("discord://123/abc", Format.MARKDOWN),
        ("mmost://chat.example.com/token", Format.MARKDOWN),
        ("tgram://123:abc/456", Format.MARKDOWN),
        ("workflows://host/wid/sig", Format.MARKDOWN),
        ("mailto://127.0.0.1:25?to=a@example.com", Format.HTML),
        ("mailtos://user@example.com", Format.HTML),
        ("json://127.0.0.1:8080/hook", Format.TEXT),
        ("ntfy://topic", Format.TEXT),
        ("slack://T1/B2/C3?format=text", Format.TEXT),  # the URL's own choice
        ("json://host/hook?format=HTML", Format.HTML),
    ],
)
def test_a_channel_reads_the_format_of_its_kind(url: str, expected: Format) -> None:
    """Chat apps read Markdown, email HTML, the rest text; `?format=` in the URL wins."""
    assert for_url(url) is expected


HOSTILE = ["<b>x</b>", "*x*", "[x](http://evil)", "_x_ ~~y~~ `z`", "# h", "1. item", "- item"]


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_escaping_shows_a_value_as_itself(value: str) -> None:
    """Read as Markdown, an escaped value is its own text: no tag, emphasis, link or list."""
    shown = markdown_to_html(escape(value, Format.MARKDOWN))
    assert shown == f"<p>{escape(value, Format.HTML).replace('&#x27;', chr(39))}</p>"


def test_markdown_escaping_leaves_ordinary_names_readable() -> None:
    """Only what could start markup is escaped: dots, dashes and brackets inside a name stay."""
    assert escape("Nightly build-1.2 (eu) AT&T", Format.MARKDOWN) == "Nightly build-1.2 (eu) AT&T"


def test_html_escaping_covers_attributes_too() -> None:
    assert escape('<a href="x">&', Format.HTML) == "&lt;a href=&quot;x&quot;&gt;&amp;"


def test_text_is_never_escaped() -> None:
    assert escape("<b>*x*</b>", Format.TEXT) == "<b>*x*</b>"


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        (Format.TEXT, "Portal: https://p.example.com/jobs/1?a=%281%29&b=2"),
        (Format.MARKDOWN, "[Portal](https://p.example.com/jobs/1?a=%281%29&b=2)"),
        (Format.HTML, '<a href="https://p.example.com/jobs/1?a=%281%29&amp;b=2">Portal</a>'),
    ],
)
def test_a_link_is_native_to_each_format(to: Format, expected: str) -> None:
    """A Markdown link, an HTML <a>, the bare address in text; parentheses encoded so
    they cannot end a Markdown link."""
    assert link("https://p.example.com/jobs/1?a=(1)&b=2", "Portal", to) == expected


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "/relative", ""])
@pytest.mark.parametrize("to", list(Format))
def test_only_http_addresses_become_links(url: str, to: Format) -> None:
    """An address from the API that is not http(s) is shown as text, never linked."""
    assert link(url, "<label>", to) == escape("<label>", to)
