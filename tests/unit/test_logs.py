"""Redaction: registered secrets and credential shapes are masked wherever they appear."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import apprise
import pytest
import structlog

from watcher import logs, plugins
from watcher.logs import MASK, Redactor, url_secrets

SECRET = "s3cr3t-Value-91"
SLACK = "slack://TokenA/TokenB/TokenC/#chan"
JSON = "json://user:pass@127.0.0.1:8080/path"
MAILTOS = "mailtos://user:pass@example.com?to=x@example.com"


def redact(redactor: Redactor, **event: Any) -> dict[str, Any]:
    return dict(redactor(None, "info", dict(event)))


def test_registered_secret_is_masked_in_text() -> None:
    """A secret inside a longer string is replaced by the mask."""
    assert Redactor([SECRET]).text(f"token={SECRET}; done") == f"token={MASK}; done"


def test_registered_secret_is_masked_everywhere_in_the_event() -> None:
    """The processor masks secrets in the event text and in every field."""
    out = redact(Redactor([SECRET]), event=f"login {SECRET}", detail=SECRET)
    assert out == {"event": f"login {MASK}", "detail": MASK}


def test_secret_is_masked_in_nested_values() -> None:
    """Dicts and lists inside the event are walked."""
    out = redact(
        Redactor([SECRET]),
        event="x",
        request={"headers": {"X-Key": SECRET}, "args": [1, f"a{SECRET}b", (SECRET,)]},
    )
    assert out["request"] == {"headers": {"X-Key": MASK}, "args": [1, f"a{MASK}b", [MASK]]}


def test_other_values_are_stringified_and_masked() -> None:
    """A value of another type (an exception, say) is rendered as text, masked."""
    out = redact(Redactor([SECRET]), event="x", error=RuntimeError(f"bad {SECRET}"))
    assert out["error"] == f"bad {MASK}"


def test_plain_values_are_kept() -> None:
    """Numbers, booleans and None pass through unchanged."""
    out = redact(Redactor([SECRET]), event="x", n=3, ratio=0.5, ok=True, nothing=None)
    assert out == {"event": "x", "n": 3, "ratio": 0.5, "ok": True, "nothing": None}


def test_secrets_added_later_are_masked() -> None:
    """A secret learnt at run time (a fresh token) is masked from then on."""
    redactor = Redactor()
    redactor.add("fresh-token-123")
    assert redactor.text("Token fresh-token-123") == f"Token {MASK}"


def test_known_masks_registered_secrets_only() -> None:
    """`known` leaves credential shapes (and masks already in place) alone."""
    line = f"json://user:****@host/{SECRET}"
    assert Redactor([SECRET]).known(line) == f"json://user:****@host/{MASK}"


def test_short_secrets_are_not_registered() -> None:
    """Strings under four characters are not masked (they would garble every line)."""
    assert Redactor(["abc", ""]).text("abc def") == "abc def"


def test_longest_secret_is_masked_first() -> None:
    """A URL is masked whole, not left with its parts around masks."""
    redactor = Redactor(url_secrets(MAILTOS))
    assert redactor.text(f"sending to {MAILTOS}") == f"sending to {MASK}"


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("Authorization: Bearer xyz.abc-123", f"Authorization: Bearer {MASK}"),
        ("Authorization: Basic Y2xpZW50OnNlY3JldA==", f"Authorization: Basic {MASK}"),
        ("header bearer abc", f"header bearer {MASK}"),
        ("GET https://user:pass@host/x", f"GET https://user:{MASK}@host/x"),
        ("to json://hookuser:hook-pw@127.0.0.1:80/h", f"to json://hookuser:{MASK}@127.0.0.1:80/h"),
        ('{"access_token": "abc123"}', f'{{"access_token": "{MASK}"}}'),
        ("client_secret=abc&x=1", f"client_secret={MASK}&x=1"),
        ("password: hunter22", f"password: {MASK}"),
        ("?%2BAuthorization=Bearer%20xyz.abc-123&b=1", f"?%2BAuthorization=Bearer%20{MASK}&b=1"),
        ("?+Authorization=Bearer+xyz.abc-123", f"?+Authorization=Bearer+{MASK}"),
        ("%2BAuthorization=Bearer%2Bxyz%2Dabc", f"%2BAuthorization=Bearer%2B{MASK}"),
    ],
)
def test_credential_shapes_are_masked_without_registration(line: str, masked: str) -> None:
    """Bearer and Basic credentials, URL passwords and secret-named fields are masked."""
    assert Redactor().text(line) == masked


def test_text_without_secrets_is_unchanged() -> None:
    """An ordinary line goes through as it was."""
    line = "poll_done jobs=12 window=2024-03-01T10:00:00+00:00 https://api.example.com/pa/v1"
    assert Redactor([SECRET]).text(line) == line


@pytest.mark.parametrize(
    ("url", "credentials", "not_credentials"),
    [
        (SLACK, {"TokenA"}, {"chan", "#chan", "slack"}),
        (
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#perf-alerts",
            {"T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7F"},
            {"perf-alerts", "#perf-alerts"},
        ),
        (JSON, {"pass"}, {"user", "127.0.0.1", "8080"}),
        (MAILTOS, {"pass"}, {"user", "example.com", "x@example.com"}),
        (
            "pagerduty://IntegrationKey123@ApiKey456",
            {"IntegrationKey123", "ApiKey456"},
            set(),
        ),
        (
            "ntfy://user:pw-9876@ntfy.example.com/topic-name?token=tk-123456",
            {"pw-9876", "tk-123456"},
            {"ntfy.example.com"},
        ),
    ],
    ids=["slack-spec", "slack-real", "json", "mailtos", "pagerduty", "ntfy"],
)
def test_url_secrets_returns_the_credential_parts(
    url: str, credentials: set[str], not_credentials: set[str]
) -> None:
    """The credentials are returned as written; host names and user names are not."""
    found = url_secrets(url)
    assert credentials <= found
    assert not (not_credentials & found)


@pytest.mark.parametrize("url", [SLACK, JSON, MAILTOS])
def test_url_secrets_include_the_whole_url(url: str) -> None:
    """The URL itself is one of the secrets, so it is masked whole."""
    assert url in url_secrets(url)


def test_url_secrets_of_a_broken_url_is_the_url() -> None:
    """A URL that cannot be split is masked as a whole."""
    assert url_secrets("json://[broken") == {"json://[broken"}


def test_slack_tokens_are_masked_in_a_log_line() -> None:
    """Each slack token quoted on its own in a log line is masked."""
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#perf-alerts"
    line = Redactor(url_secrets(url)).text("tokens T1JJ3T3L2 A1BRTD4JD TIiajkdnlazkcOXrIdevi7F")
    assert line == f"tokens {MASK} {MASK} {MASK}"


@dataclass(frozen=True)
class Channel:
    """A channel URL as a user writes it, the secrets inside it (each whole, as apprise's
    private form of the URL hides it) and the parts that must stay readable."""

    url: str
    secrets: tuple[str, ...]
    public: tuple[str, ...] = ()


TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SLACK_TOKENS = ("T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7F")
DISCORD = ("1234567890123456789", "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefghijklmnopqrstuvwx")
WORKFLOW = ("8f2e4c1a9b7d4e6f8a0b1c2d3e4f5a6b", "Xq3vB9kLmN2pR7sT1uW4yZ6aC8dE0fGhIjKlMnOpQrS")
PAGERDUTY = ("0123456789abcdef0123456789abcdef", "y_zQ3Kwh8sVfuDC9Rnx-")
NTFY_TOKEN = "tk_AbCdEf0123456789xyz"
MAIL_PASSWORD = "Pa55-word-x9"
HOOK_PW = "hook-Pw-123"

# Every channel kind the README names, in the forms apprise 2.3 accepts.
CHANNELS: dict[str, Channel] = {
    "telegram": Channel(
        f"tgram://{TELEGRAM_TOKEN}/-1001234567/", (TELEGRAM_TOKEN,), ("-1001234567",)
    ),
    "slack": Channel(
        f"slack://{'/'.join(SLACK_TOKENS)}/#perf-alerts", SLACK_TOKENS, ("#perf-alerts",)
    ),
    "slack-webhook": Channel(
        f"https://hooks.slack.com/services/{'/'.join(SLACK_TOKENS)}", SLACK_TOKENS
    ),
    "slack-bot": Channel(
        "slack://xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx/#perf-alerts",
        ("xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",),
        ("#perf-alerts",),
    ),
    "mailto": Channel(
        f"mailto://alerts:{MAIL_PASSWORD}@example.com?to=oncall@example.com",
        (MAIL_PASSWORD,),
        ("example.com", "oncall@example.com"),
    ),
    "mailtos": Channel(
        f"mailtos://alerts:{MAIL_PASSWORD}@smtp.example.com"
        "?to=oncall@example.com&from=watcher@example.com",
        (MAIL_PASSWORD,),
        ("smtp.example.com", "oncall@example.com", "watcher@example.com"),
    ),
    "teams-workflow": Channel(
        f"workflows://prod-12.westus.logic.azure.com:443/{'/'.join(WORKFLOW)}",
        WORKFLOW,
        ("prod-12.westus.logic.azure.com",),
    ),
    "teams-webhook": Channel(
        f"https://prod-12.westus.logic.azure.com:443/workflows/{WORKFLOW[0]}/triggers/manual"
        "/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
        f"&sig={WORKFLOW[1]}",
        WORKFLOW,
        ("prod-12.westus.logic.azure.com",),
    ),
    "pagerduty": Channel(f"pagerduty://{PAGERDUTY[0]}@{PAGERDUTY[1]}", PAGERDUTY),
    "ntfy": Channel(
        f"ntfy://alerts:{MAIL_PASSWORD}@ntfy.example.com/perf-topic",
        (MAIL_PASSWORD,),
        ("ntfy.example.com", "perf-topic"),
    ),
    "ntfys-token": Channel(
        f"ntfys://{NTFY_TOKEN}@ntfy.example.com/perf-topic",
        (NTFY_TOKEN,),
        ("ntfy.example.com", "perf-topic"),
    ),
    "ntfy-token-query": Channel(
        f"ntfy://ntfy.example.com/perf-topic?token={NTFY_TOKEN}",
        (NTFY_TOKEN,),
        ("ntfy.example.com", "perf-topic"),
    ),
    "discord": Channel(f"discord://{'/'.join(DISCORD)}", DISCORD),
    "discord-webhook": Channel(f"https://discord.com/api/webhooks/{'/'.join(DISCORD)}", DISCORD),
    "json": Channel(
        f"json://hookuser:{HOOK_PW}@hooks.example.com/perf/alerts",
        (HOOK_PW,),
        ("hookuser", "hooks.example.com", "/perf/alerts"),
    ),
    "json-token-query": Channel(
        "json://hooks.example.com/perf/alerts?token=tk-AbCd123456",
        ("tk-AbCd123456",),
        ("hooks.example.com", "/perf/alerts"),
    ),
    "xml": Channel(
        f"xml://hookuser:{HOOK_PW}@hooks.example.com/perf",
        (HOOK_PW,),
        ("hookuser", "hooks.example.com"),
    ),
    "form": Channel(
        f"form://hookuser:{HOOK_PW}@hooks.example.com/perf",
        (HOOK_PW,),
        ("hookuser", "hooks.example.com"),
    ),
    # Custom headers, which apprise shows unmasked: each header's value is a secret, and so
    # is a bearer token quoted on its own, without its "Bearer ".
    "json-headers": Channel(
        "json://hooks.example.com/perf"
        "?+Authorization=Bearer%20tok3n-xyz987ab&+X-Api-Key=key-AbC4567",
        ("Bearer tok3n-xyz987ab", "tok3n-xyz987ab", "key-AbC4567"),
        ("hooks.example.com",),
    ),
    # The same written the way apprise reads a query: "+" stays a plus (so the header is
    # "Bearer+tok3n..." and apprise writes it back as Bearer%2B...); "-name" is a GET
    # parameter and ":name" a payload field, either of which may carry a key.
    "json-headers-plus": Channel(
        "json://hooks.example.com/perf"
        "?+Authorization=Bearer+tok3nPlus9876&-apikey=getKeyZz98765&:token=payloadYy8765",
        ("tok3nPlus9876", "getKeyZz98765", "payloadYy8765"),
        ("hooks.example.com", "Authorization", "apikey"),
    ),
    "xml-headers": Channel(
        "xml://hooks.example.com/perf?+X-Token=xmlTok3n4567",
        ("xmlTok3n4567",),
        ("hooks.example.com", "X-Token"),
    ),
    "form-headers": Channel(
        "form://hooks.example.com/perf?+X-Token=formTok3n4567&-fld=formGet8765x",
        ("formTok3n4567", "formGet8765x"),
        ("hooks.example.com", "X-Token"),
    ),
    "mailtos-headers": Channel(
        f"mailtos://alerts:{MAIL_PASSWORD}@smtp.example.com"
        "?to=oncall@example.com&+X-Mail-Key=mailKey12345",
        (MAIL_PASSWORD, "mailKey12345"),
        ("smtp.example.com", "oncall@example.com", "X-Mail-Key"),
    ),
    "apprise-api-headers": Channel(
        "apprise://apprise.example.com/cfgkey?+X-Auth=apiTok3n7788",
        ("apiTok3n7788",),
        ("apprise.example.com", "X-Auth"),
    ),
    "pagerduty-details": Channel(
        f"pagerduty://{PAGERDUTY[0]}@{PAGERDUTY[1]}?+detailKey=pdDetail99887",
        (*PAGERDUTY, "pdDetail99887"),
    ),
}
# Teams' own msteams:// scheme is gone from apprise 2.3 (Microsoft retired its connectors):
# no plugin loads it, so only the generic shapes can find its tokens.
LEGACY_TEAMS = Channel(
    "msteams://contoso/a1b2c3d4-e5f6-7890-abcd-ef1234567890@b1b2c3d4-e5f6-7890-abcd-ef1234567890"
    "/0123456789abcdef0123456789abcdef/c1b2c3d4-e5f6-7890-abcd-ef1234567890",
    (
        "a1b2c3d4-e5f6-7890-abcd-ef1234567890@b1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "0123456789abcdef0123456789abcdef",
        "c1b2c3d4-e5f6-7890-abcd-ef1234567890",
    ),
)


def fragments(secret: str) -> set[str]:
    """The secret, URL-encoded too, and each long run of letters and digits in it that
    holds a digit: a token masked only in part (the bot id of a Telegram token left before
    a mask) still leaks, while a word such as "Bearer" before a mask does not."""
    runs = re.findall(r"[A-Za-z0-9]{6,}", secret)
    return {secret, quote(secret, safe=""), *(r for r in runs if re.search(r"[0-9]", r))}


def leaks(text: str, channel: Channel) -> set[str]:
    return {f for secret in channel.secrets for f in fragments(secret) if f in text}


def plain_form(url: str) -> str:
    """apprise's own unmasked form of the URL (what a plugin's debug output would show)."""
    plugins.load(url)
    plugin = apprise.Apprise.instantiate(url)
    return url if plugin is None else str(plugin.url())


def test_channel_urls_are_valid_for_apprise() -> None:
    """The URLs below are ones apprise accepts, so the test covers what users configure."""
    assert all(plugins.target(c.url) for c in CHANNELS.values())
    assert not plugins.target(LEGACY_TEAMS.url)


def log_everything(url: str, channel: Channel) -> None:
    """Log the URL and its secrets the ways a line can carry them: the URL as written and as
    apprise writes it, each secret alone and URL-encoded, through structlog and through
    apprise's stdlib logger."""
    log = structlog.get_logger("test")
    plain = plain_form(url)
    log.warning("delivery_failed", url=url, error=f"POST {plain} failed")
    for secret in channel.secrets:
        log.warning("secret_seen", value=secret, encoded=quote(secret, safe=""))
        logging.getLogger("apprise").warning("token %s in %s", secret, plain)
    log.info("routed", public=" ".join(channel.public))


@pytest.mark.parametrize(
    "channel", [*CHANNELS.values(), LEGACY_TEAMS], ids=[*CHANNELS, "teams-legacy"]
)
def test_channel_secrets_never_reach_a_log_line(
    channel: Channel, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the configured pipeline (tests/conftest.py sends it to stdout), no secret of
    the URL, whole or in part, is printed, and host names, channels, chat ids and user names
    stay readable."""
    capsys.readouterr()
    logs.protect(*url_secrets(channel.url))
    log_everything(channel.url, channel)
    out = capsys.readouterr().out
    assert out.count("\n") >= 3, out
    assert not leaks(out, channel), out
    assert all(part in out for part in channel.public), out


@pytest.mark.parametrize("channel", CHANNELS.values(), ids=CHANNELS)
def test_url_secrets_hold_every_secret_apprise_masks(channel: Channel) -> None:
    """Each secret is registered whole (a Telegram token is one secret, not two halves)."""
    assert set(channel.secrets) <= url_secrets(channel.url)


def test_public_parts_are_not_secrets() -> None:
    """What apprise shows in its private form is not masked: chat ids, channels, hosts,
    user names, and values the URL never gave (PagerDuty's default source "Apprise")."""
    found = set().union(*(url_secrets(c.url) for c in CHANNELS.values()))
    public = {p for c in CHANNELS.values() for p in c.public}
    assert not (public & found)
    assert not ({"Apprise", "Notification", "alerts", "perf-alerts"} & found)


# -- foreign loggers and the console ------------------------------------------------------


@pytest.mark.parametrize(
    ("logger", "event"),
    [
        ("apscheduler.scheduler", "scheduler"),
        ("apscheduler.executors.default", "scheduler"),
        ("apprise", "apprise"),
        ("aiohttp.client", "aiohttp"),
        ("asyncio", "asyncio"),
        ("py.warnings", "python_warning"),
        ("some.other.library", "library"),
    ],
)
def test_a_foreign_logger_s_text_is_the_message_under_a_stable_event(
    logger: str, event: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stdlib record's free text goes to `message`; `event` names its source, so that a
    JSON reader can select on it (APScheduler's "Run time of job ... was missed" included)."""
    capsys.readouterr()
    text = 'Run time of job "poll (trigger: interval[0:01:00])" was missed by 0:00:02'
    logging.getLogger(logger).warning(text)
    (line,) = [json.loads(raw) for raw in capsys.readouterr().out.splitlines()]
    assert (line["event"], line["message"], line["logger"]) == (event, text, logger)


def test_a_foreign_message_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """The moved text is masked like any other field."""
    capsys.readouterr()
    logging.getLogger("apprise").warning("sent with Authorization: Bearer abc.def-123")
    (line,) = [json.loads(raw) for raw in capsys.readouterr().out.splitlines()]
    assert line["message"] == f"sent with Authorization: Bearer {MASK}"


HOSTILE = "Nightly \u202egnp.exe\u2066 \x1b[31mred\x1b[0m\r\nforged_line level=info\x07\u2028\x85"


def test_escape_controls_escapes_terminal_and_bidi_controls() -> None:
    """Control characters (ESC, CR, LF, BEL, C1) and bidi overrides become visible escapes;
    other text, non-Latin scripts and emoji included, is left as it is."""
    assert logs.escape_controls(HOSTILE) == (
        "Nightly \\u202egnp.exe\\u2066 \\x1b[31mred\\x1b[0m\\r\\nforged_line level=info"
        "\\x07\\u2028\\x85"
    )
    plain = "Checkout \u2013 \u7d50\u5e33 \u2705 tab\there"
    assert logs.escape_controls(plain) == plain.replace("\t", "\\t")


def console_line(**event: Any) -> str:
    line: Any = event
    for processor in logs.rendering("console", colors=False):
        line = processor(None, "info", line)
    return str(line)


def test_console_lines_escape_the_event_and_every_field_once() -> None:
    """Every control and bidi character of a console line is written as an escape, once,
    whichever field holds it (the event, a text, a list)."""
    line = console_line(
        event="job_event\u202e", name=HOSTILE, bare="gnp.exe\u202e\x1b", rules=["a\x1bb"]
    )
    assert not set("\u202e\u2066\x1b\r\n\x07\u2028\x85") & set(line), line
    assert "job_event\\u202e" in line
    assert "name='Nightly \\u202egnp.exe\\u2066 \\x1b[31mred" in line
    assert "bare='gnp.exe\\u202e\\x1b'" in line
    assert "rules=['a\\x1bb']" in line


def test_a_console_traceback_keeps_its_line_breaks() -> None:
    """A traceback is printed on its lines, with other controls escaped."""
    line = console_line(event="crashed", exception="Traceback\n  File x\nError: \u202eab\x1b")
    assert line.endswith("Traceback\n  File x\nError: \\u202eab\\x1b"), line


def test_json_lines_escape_controls(capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON renderer writes every control and bidi character as a \\u escape: one
    event stays one line, and the value reads back unchanged."""
    capsys.readouterr()
    structlog.get_logger("test").info("job_event", name=HOSTILE)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert not set("\u202e\u2066\x1b\r\x07\u2028\x85") & set(out)
    assert json.loads(out)["name"] == HOSTILE
