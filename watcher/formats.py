"""Message formats: which one a channel reads, and how a value is written in each so
that it shows as itself.

Values in a message come from the API (job names, URLs) and are hostile input: a job
named `<b>x</b>`, `*x*` or `[x](http://evil)` must show those characters, not bold
text or someone else's link. Markdown is written as CommonMark with backslash escapes,
which apprise translates for each service's own dialect (Slack's mrkdwn, Telegram's
Markdown, ...); HTML as HTML. Pure: no apprise, no I/O.
"""

from __future__ import annotations

import html
import re
from enum import StrEnum
from urllib.parse import parse_qs, quote, urlsplit


class Format(StrEnum):
    """A message body's format; the values are apprise's `NotifyFormat` values."""

    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


# Channels whose apps render Markdown, and email, which reads HTML best. Every other
# channel (webhooks, SMS, pagers, ntfy...) gets plain text, which apprise converts
# where a service wants something else.
_BY_SCHEME: dict[str, Format] = {
    "slack": Format.MARKDOWN,
    "msteams": Format.MARKDOWN,  # Teams, in apprise versions that still have it
    "workflow": Format.MARKDOWN,  # Teams through Power Automate workflows (apprise 2.x)
    "workflows": Format.MARKDOWN,
    "discord": Format.MARKDOWN,
    "mmost": Format.MARKDOWN,
    "mmosts": Format.MARKDOWN,
    "tgram": Format.MARKDOWN,
    "mailto": Format.HTML,
    "mailtos": Format.HTML,
}


def for_url(url: str) -> Format:
    """The format a channel URL gets by default: its own `?format=` if it names one
    (apprise's URL option, which would otherwise override what we declare), else by
    the kind of channel its scheme names."""
    scheme, _, rest = url.partition("://")
    query = rest.partition("?")[2]
    named = parse_qs(query).get("format", [""])[-1].lower()
    if named in Format.__members__.values():
        return Format(named)
    return _BY_SCHEME.get(scheme.lower(), Format.TEXT)


# CommonMark punctuation that can start markup anywhere in a line: emphasis, code,
# links, raw HTML and autolinks, strikethrough and tables (the extensions most
# services add); `&` only where it would read as an entity ("&amp;").
_INLINE = re.compile(r"([\\`*_~\[\]<>|])|&(?=#?[0-9A-Za-z]{1,32};)")
# What starts a block only at the start of a line: headings, list items, setext
# underlines and thematic breaks, ordered list numbers (a quote's ">" is escaped
# everywhere already).
_LINE_START = re.compile(r"^([ \t]*)(?:([#+=-])|(\d{1,9})([.)]))", re.MULTILINE)


def _escape_markdown(text: str) -> str:
    inline = _INLINE.sub(lambda m: "\\" + m.group(0), text)

    def block(match: re.Match[str]) -> str:
        indent, marker, number, dot = match.groups()
        if marker:
            return f"{indent}\\{marker}"
        return f"{indent}{number}\\{dot}"

    return _LINE_START.sub(block, inline)


def escape(text: str, to: Format) -> str:
    """`text` written in format `to` so that it shows as itself."""
    if to is Format.HTML:
        return html.escape(text, quote=True)
    if to is Format.MARKDOWN:
        return _escape_markdown(text)
    return text


# Characters left as they are in a link's address: what RFC 3986 allows outside
# percent-encoding, less the parentheses, which would end a Markdown link.
_URL_SAFE = "!#$%&'*+,/:;=?@[]~"


def web_address(url: str) -> str | None:
    """`url` if it is an absolute http(s) address, percent-encoded so that it can stand
    in a Markdown link or an HTML attribute as it is; else None (a `javascript:` URL
    from the API must never become a link)."""
    candidate = url.strip()
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return quote(candidate, safe=_URL_SAFE)


def link(url: str, label: str, to: Format) -> str:
    """A link to `url` in format `to`, shown as `label` (the address itself if no
    label): a Markdown link, an HTML <a>, or in text the label and the bare address.
    Anything but an http(s) address is shown as text, not linked."""
    address = web_address(url)
    shown = label or url
    if address is None:
        return escape(shown, to)
    if to is Format.MARKDOWN:
        return f"[{escape(shown, to)}]({address})"
    if to is Format.HTML:
        return f'<a href="{html.escape(address, quote=True)}">{escape(shown, to)}</a>'
    return f"{label}: {address}" if label else address
