"""Logging: structlog and the stdlib loggers (apprise, aiohttp, apscheduler) through one
pipeline to stdout, one event a line, JSON or console, with secrets masked.

`Redactor` masks every secret it has been told about (configuration values, tokens,
credentials inside channel URLs) wherever it appears in a log line, tracebacks
included. It runs last before rendering, so nothing can slip in after it. `url_secrets`
finds the credentials inside a channel URL by asking apprise which parts of it are private,
and takes every value of a plugin argument (`+header`, `-param`, `:field`) as one too.
A stdlib record's free text becomes `message` under an `event` naming its source, and the
console renderer gets text with control and bidi characters escaped: job names come from
the API, and must not drive the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from difflib import SequenceMatcher
from typing import Any, TextIO
from urllib.parse import SplitResult, parse_qsl, quote, quote_plus, unquote, urlsplit

import structlog

MASK = "***"
MIN_SECRET = 4  # shorter strings are too common to mask without garbling every line
_SAFE_QUERY_KEYS = frozenset(
    {
        "to",
        "from",
        "cc",
        "bcc",
        "cto",
        "rto",
        "verify",
        "format",
        "overflow",
        "method",
        "smtp",
        "mode",
        "name",
        "avatar",
        "image",
        "footer",
        "priority",
        "tags",
        "port",
        "secure",
        "retry",
    }
)
# Credential shapes, whoever's they are: an Authorization value (also URL-encoded, as in
# a header argument of a channel URL), a URL's password, a token or secret written as
# key=value. One pattern, one pass over each string.
_SHAPES = re.compile(
    r"(?i:\b(?P<scheme>bearer|basic)(?P<gap>\s+|%20|%2B|\+))[A-Za-z0-9._~+/=%-]+"
    r"|(?P<userinfo>://[^/\s:@]*:)[^@\s/]+@"
    r"|(?P<key>\"?(?:access_token|client_secret|password)\"?\s*[=:]\s*\"?)[^\s\",&]+"
)
_SCHEMED = re.compile(r"(?i:bearer|basic|token)[ +]+(?P<credential>\S+)")
# apprise's plugin arguments in a URL's query: `+name` an HTTP header (json, xml, form,
# apprise, email and more), `-name` a GET parameter or a removed field, `:name` a payload
# field. Any of them may carry a key, and apprise shows them all in its private form.
_PLUGIN_ARGUMENT = ("+", "-", ":")
_RENDERED_BY_US = frozenset({"timestamp", "level", "logger"})  # never carry a secret


def _mask_shape(match: re.Match[str]) -> str:
    if match["scheme"]:
        return f"{match['scheme']}{match['gap']}{MASK}"
    if match["userinfo"]:
        return f"{match['userinfo']}{MASK}@"
    return f"{match['key']}{MASK}"


def url_secrets(url: str) -> set[str]:
    """The secrets inside one apprise channel URL, each as written, URL-encoded and decoded:
    the URL itself, its password, the query values under keys not known to be public, and
    the values that apprise hides in its private form of the URL. For a URL that apprise
    cannot load, the parts that look like credentials instead."""
    found = {url, unquote(url)}
    try:
        parts = urlsplit(url)
        found.add(unquote(parts.password or ""))
    except ValueError:
        return {url}
    # A query value is an argument that a plugin may put anywhere (apprise shows custom
    # headers, `+Authorization=...`, unmasked), so only the keys known to be public are
    # left out.
    found.update(v for k, v in _query_pairs(parts.query) if k.lower() not in _SAFE_QUERY_KEYS)
    private = _apprise_secrets(url)
    found |= _shaped_secrets(parts) if private is None else private
    # A credential with its scheme (an Authorization header's "Bearer tok") is quoted
    # without it too: the token alone is a secret.
    found.update(m["credential"] for m in map(_SCHEMED.fullmatch, list(found)) if m)
    return {form for secret in found for form in _written_forms(secret) if len(form) >= MIN_SECRET}


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """The query's pairs read both ways: as apprise reads them (a "+" stays a plus, ";"
    separates too) and as the web does (a "+" is a space)."""
    raw = [pair.partition("=") for pair in re.split("[&;]", query) if pair]
    return [(unquote(k), unquote(v)) for k, _, v in raw] + parse_qsl(query)


def hide_arguments(url: str) -> str:
    """The URL with the value of every plugin argument (`+header=`, `-param=`, `:field=`)
    replaced by the mask, names kept; the rest of the URL as it was."""
    base, mark, query = url.partition("?")
    if not mark:
        return url
    query, hash_, fragment = query.partition("#")
    pairs = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if eq and value and unquote(key).startswith(_PLUGIN_ARGUMENT):
            value = MASK
        pairs.append(f"{key}{eq}{value}")
    return f"{base}?{'&'.join(pairs)}{hash_}{fragment}"


def _written_forms(secret: str) -> set[str]:
    return {secret, unquote(secret), quote(secret, safe=""), quote(secret), quote_plus(secret)}


def _apprise_secrets(url: str) -> set[str] | None:
    """What apprise masks in its private form of the URL; None if no plugin loads it.

    Both forms are written by the plugin, so they differ only where it hides a value; the
    two are compared part by part (user, password, host, path segments, query values by
    key), as the plugin may order the query and encode values differently from the user.
    """
    from watcher.plugins import target  # deferred: apprise is only needed here

    # Its own object, like each channel's; one URL loads one plugin, whose two forms
    # are then the only entries of `urls`.
    service = target(url)
    if not service:
        return None
    try:
        (plain,), (masked,) = service.urls(), service.urls(privacy=True)
        hidden = _differing_parts(urlsplit(plain), urlsplit(masked))
    except ValueError:
        return None
    # apprise also masks values that the URL never gave, a plugin's defaults (PagerDuty's
    # source "Apprise"): they are no secret, and masking such words would garble lines.
    given = f"{url}\n{unquote(url)}".casefold()
    return {value for value in hidden if value.casefold() in given}


def _differing_parts(plain: SplitResult, masked: SplitResult) -> set[str]:
    pairs = [
        (plain.username, masked.username),
        (plain.password, masked.password),
        (_host(plain.netloc), _host(masked.netloc)),
        (plain.fragment, masked.fragment),
    ]
    found = {unquote(p) for p, m in pairs if p and p != m}
    found |= _differing_segments(plain.path.split("/"), masked.path.split("/"))
    shown = dict(parse_qsl(masked.query))
    found.update(v for k, v in parse_qsl(plain.query) if shown.get(k) != v)
    return found


def _host(netloc: str) -> str:
    # Not SplitResult.hostname: it is lower-cased, and a token in the host place is not.
    host, _, port = netloc.rpartition("@")[2].rpartition(":")
    return host if host and port.isdigit() else netloc.rpartition("@")[2]


def _differing_segments(plain: list[str], masked: list[str]) -> set[str]:
    """Path segments that the masked path replaces. Aligned as sequences, not by position:
    a hidden value holding a "/" is one segment when masked and several when not."""
    found: set[str] = set()
    matcher = SequenceMatcher(None, plain, masked, autojunk=False)
    for tag, start, end, _, _ in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            run = plain[start:end]
            found.update(map(unquote, run))
            found.add(unquote("/".join(run)))
    return found


def _shaped_secrets(parts: SplitResult) -> set[str]:
    """For a URL that apprise cannot load: user info, a host that is a token rather than a
    host name, and path segments that look like tokens."""
    host = _host(parts.netloc)
    found = {unquote(parts.username or "")}
    if "." not in host and host != "localhost":
        found.add(unquote(host))
    # Path segments are tokens for many services (slack://T1/B2/C3) but plain paths for
    # others (json://host/hook): those that look like tokens, not words.
    found.update(s for s in map(unquote, parts.path.split("/")) if _token_like(s))
    return found


def _token_like(segment: str) -> bool:
    mixed = any(c.isupper() for c in segment) and any(c.islower() for c in segment)
    return len(segment) >= 8 and (mixed or any(c.isdigit() for c in segment))


class Redactor:
    """A structlog processor (and helper) that masks known secrets and credential shapes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        fresh = {s for s in secrets if s and len(s) >= MIN_SECRET} - self._secrets
        if not fresh:
            return
        self._secrets |= fresh
        # Longest first, so a URL is masked whole before its parts are.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def text(self, value: str) -> str:
        if len(value) < MIN_SECRET:
            return value
        return _SHAPES.sub(_mask_shape, self.known(value))

    def known(self, value: str) -> str:
        """Masks the registered secrets only, leaving masks already in place as they are."""
        if self._pattern is None or len(value) < MIN_SECRET:
            return value
        return self._pattern.sub(MASK, value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self._walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.text(str(value))

    def __call__(
        self, _logger: object, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            if key not in _RENDERED_BY_US:
                event_dict[key] = self._walk(value)
        return event_dict


def protect(*secrets: str) -> None:
    """Tell the configured pipeline's redactor about secrets learnt at run time (tokens)."""
    for processor in structlog.get_config()["processors"]:
        if isinstance(processor, Redactor):
            processor.add(*secrets)


def redact(text: str) -> str:
    """`text` with every secret that the configured pipeline knows masked (for text
    kept beyond the logs: an alert's delivery error in its history)."""
    for processor in structlog.get_config()["processors"]:
        if isinstance(processor, Redactor):
            return processor.text(text)
    return Redactor().text(text)


# Where a stdlib record comes from -> its event name; any other logger's is "library".
_FOREIGN_EVENTS = (
    ("apscheduler", "scheduler"),
    ("apprise", "apprise"),
    ("aiohttp", "aiohttp"),
    ("asyncio", "asyncio"),
    ("py.warnings", "python_warning"),
)


def name_foreign_event(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A stdlib record's text goes to `message`, under an event that names its source: a
    library's free text ("Run time of job ... was missed by 0:00:02") is no stable name
    for a reader of the logs to select on."""
    record = event_dict.get("_record")
    if event_dict.get("_from_structlog") or record is None:
        return event_dict
    logger, event_dict["message"] = str(record.name), event_dict.get("event")
    event_dict["event"] = next(
        (event for prefix, event in _FOREIGN_EVENTS if f"{logger}.".startswith(f"{prefix}.")),
        "library",
    )
    return event_dict


# What must not reach a terminal raw: C0 and C1 controls (ESC starts a terminal command,
# CR and LF forge lines) and the bidi controls that reorder what is shown (U+202E).
_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(rf"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
_UNSAFE_IN_TRACEBACK = re.compile(rf"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# The keys that the console renderer prints as they are; it repr()s every other value
# (repr_native_str), and repr() escapes what is not printable.
_PRINTED_RAW = frozenset({"event", "timestamp", "level", "logger", "logger_name"})
_MULTILINE = frozenset({"exception", "stack"})


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return _NAMED_ESCAPES.get(match[0]) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text: str) -> str:
    """The text with control and bidi characters written as escapes (`\\x1b`, `\\u202e`)."""
    return _UNSAFE.sub(_escape, text)


def escape_for_console(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Escapes the text that the console renderer prints as it is; a traceback keeps its
    line breaks."""
    for key, value in event_dict.items():
        if isinstance(value, str) and key in _PRINTED_RAW:
            event_dict[key] = escape_controls(value)
        elif isinstance(value, str) and key in _MULTILINE:
            event_dict[key] = _UNSAFE_IN_TRACEBACK.sub(_escape, value)
    return event_dict


def rendering(fmt: str, *, colors: bool) -> list[Any]:
    """The last processors: JSON (which escapes every control and non-ASCII character
    itself), or the console renderer with what it would print raw escaped first."""
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=colors, repr_native_str=True)
        return [escape_for_console, renderer]
    return [structlog.processors.JSONRenderer()]


QUIET_LIBRARIES = {
    "apprise": logging.WARNING,  # its debug output has leaked credentials elsewhere
    "aiohttp": logging.WARNING,
    "apscheduler": logging.WARNING,  # logs every job run at INFO
    "asyncio": logging.WARNING,
}


class _LineLogger:
    """Writes structlog's rendered lines straight to the stream, under the stdlib
    handler's lock, so lines from both pipelines never interleave (and our own lines
    skip the cost of a stdlib LogRecord)."""

    def __init__(self, name: str, handler: logging.StreamHandler[TextIO]) -> None:
        self.name = name
        self._handler = handler

    def msg(self, line: str) -> None:
        with self._handler.lock or contextlib.nullcontext():
            self._handler.stream.write(line + "\n")
            self._handler.stream.flush()

    debug = info = warning = error = critical = exception = msg


def configure(
    *,
    fmt: str = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure logging for the process; secrets reach the redactor through `protect`.

    Configuring again keeps the redactor already in place, and what it has learnt.
    """
    current = [p for p in structlog.get_config()["processors"] if isinstance(p, Redactor)]
    redactor = current[0] if current else Redactor()
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    last = rendering(fmt, colors=stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), name_foreign_event, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last],
        )
    )
    # The handler applies the level; libraries log from their floor whatever it is, so
    # that apprise still records a channel's warnings in its result (an alert's history
    # keeps them) when the log shows errors only.
    handler.setLevel(level.upper())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, floor in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(floor)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*shared, *last],
        logger_factory=lambda name="watcher", *_: _LineLogger(name, handler),
        # Drops calls below the level before any processor runs: a debug line per rule
        # per event costs nothing when debug is off.
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
